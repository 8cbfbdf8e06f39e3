"""Helpers that tests import (conftest.py holds only fixtures: a module named conftest exists
once per test folder, so none is imported by name)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cxr14.testing.workflow import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def full_settings(settings: dict) -> dict:
    """Training settings as the workflow passes them: ``settings`` (with ``arch``) as a run's
    overrides, over the defaults (config/config.yaml)."""
    from cxr14.settings import train_settings, with_defaults

    arch, seed = settings["arch"], settings.get("seed", 0)
    run = {k: v for k, v in settings.items() if k != "seed"}
    config = with_defaults({"runs": [{"name": arch, **run}]}, SCHEMA)
    return train_settings(config, arch, seed)


def write_dicom(path, pixels: np.ndarray, bits=12, frames=1, syntax=ExplicitVRLittleEndian, **tags):
    """A digital X-ray DICOM file (written with pydicom) of ``pixels``; under a compressed
    ``syntax`` the pixel data are one fragment of bytes that are not a valid codestream."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = tags.pop("photometric", "MONOCHROME2")
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    for k, v in tags.items():
        setattr(ds, k, v)
    if syntax == ExplicitVRLittleEndian:
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    else:
        ds.PixelData = pydicom.encaps.encapsulate([b"not a codestream"])
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


# Small variants of every architecture (scoring does not depend on the size), random weights.
SMALL = {
    "simple_cnn": {"channels": [4, 8]},
    "vgg_like": {"widths": [4, 8], "fc": 16},
    "resnet18": {"weights": "none"},
    "densenet121": {"weights": "none"},
    "convnext_tiny": {"weights": "none"},
    "efficientnet_b0": {"weights": "none"},
    "vit_small_patch16_224": {"weights": "none"},
    "timm": {"timm_name": "resnet10t", "weights": "none"},
}


def small_bundle(path, arch: str = "simple_cnn", seed: int = 0):
    """A bundle (store 48x48, network input 32x32) of ``arch`` with random weights (``seed``),
    saved to ``path``; returns ``path``."""
    import torch

    from cxr14.bundle import build_bundle
    from cxr14.checkpoint import atomic_save
    from cxr14.data import Normalizer
    from cxr14.inference import Scorer
    from cxr14.layouts.nih import LABELS
    from cxr14.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, len(LABELS), **SMALL[arch], input_size=32).eval()
    average = np.random.default_rng(0).uniform(0, 255, (48, 48)).astype(np.float32)
    config = {"arch": arch, "run": "r", "input_size": 32, **SMALL[arch]}
    ckpt = {"config": config, "labels": list(LABELS), "weights_used": "none", "best_epoch": 1}
    scorer = Scorer(model, Normalizer(average, 50.0, 32), torch.device("cpu"), ckpt)
    y = np.tile([[0, 1]], (1, 7)).repeat(10, axis=0)
    test = {
        c: {"auroc": 0.5, "auroc_ci_low": 0.4, "auroc_ci_high": 0.6, "n_pos": 1, "n_neg": 9}
        | {"ece": 0.1, "ece_scaled": 0.05}
        for c in [*LABELS, "mean"]
    }
    provenance = {"run": "r", "split": "holdout", "seed": 0, "split_method": "patient_random"}
    provenance |= {"dataset": "test", "caveat": ""}
    p_val = np.random.default_rng(1).random(y.shape)
    preprocess = {"store_size": 48, "resample": "bilinear"}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_save(build_bundle(scorer, y, p_val, preprocess, provenance, test, 0.9), path)
    return path


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {t: [(e.step, e.value) for e in events.Scalars(t)] for t in events.Tags()["scalars"]}
