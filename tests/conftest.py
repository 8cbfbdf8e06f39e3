"""Shared fixtures: the real NIH files in ../shared/data/nih and a Snakemake runner."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import hangguard
import numpy as np
import pydicom
import pytest
import yaml
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parents[1]
NIH_DIR = Path(os.environ.get("CXR14_NIH_SAMPLE", REPO.parent / "shared" / "data" / "nih"))
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def full_settings(settings: dict) -> dict:
    """Training settings as the workflow passes them: ``settings`` (with ``arch``) over the
    schema's defaults."""
    from cxr14.settings import train_settings, with_defaults

    arch, seed = settings["arch"], settings.get("seed", 0)
    train = {k: v for k, v in settings.items() if k not in ("arch", "seed")}
    config = with_defaults({"train": train, "runs": [{"name": arch, "arch": arch}]}, SCHEMA)
    return train_settings(config, arch, seed)


@pytest.fixture(scope="session")
def nih_dir() -> Path:
    """The real NIH metadata and 24 images; skipped where the shared folder is absent."""
    if not (NIH_DIR / "Data_Entry_2017.csv").is_file():
        pytest.skip(
            f"real NIH sample files not found at {NIH_DIR} (they sit in ../shared/data/nih "
            "beside the project's clone; set CXR14_NIH_SAMPLE to point elsewhere)"
        )
    return NIH_DIR


@pytest.fixture
def nih_copy(tmp_path, nih_dir) -> Path:
    """A writable NIH-layout folder: the real metadata rows of the 24 sample images."""
    import pandas as pd

    out = tmp_path / "nih"
    (out / "images").mkdir(parents=True)
    names = sorted(p.name for p in (nih_dir / "images").glob("*.png"))
    for n in names:
        shutil.copy(nih_dir / "images" / n, out / "images" / n)
    raw = (nih_dir / "Data_Entry_2017.csv").read_bytes().split(b"\r\n")
    keep = [raw[0]] + [line for line in raw[1:] if line.split(b",")[0].decode() in names]
    (out / "Data_Entry_2017.csv").write_bytes(b"\r\n".join(keep) + b"\r\n")
    assert len(pd.read_csv(out / "Data_Entry_2017.csv", index_col=False)) == len(names)
    return out


# A tiny configuration: the whole data pipeline runs in seconds.
TINY_CONFIG = {
    "data": {"source": "synthetic"},
    "synthetic": {"n_images": 60, "image_size": 128, "seed": 3},
    "preprocess": {"size": 32, "shards": 3, "threads": 1, "on_bad_image": "error"},
    "average_image": {"over": "train"},
    "split": {"method": "patient_random", "seed": 1},
    "oversample": {"enabled": True},
    "train": {
        "threads": 2,
        "epochs": 2,
        "milestones": [1],
        "input_size": 32,
        "batch_size": 8,
        "device": "cpu",
    },
    "models": {
        "vgg_like": {"widths": [4, 8], "fc": 16},
        "resnet18": {"weights": "none"},
        "densenet121": {"weights": "none", "epochs": 1},
    },
    "runs": [
        {"name": "simple_cnn", "arch": "simple_cnn"},
        {"name": "vgg_like", "arch": "vgg_like"},
        {"name": "resnet18", "arch": "resnet18"},
        {"name": "densenet121", "arch": "densenet121"},
    ],
    "compare": [],
    "eval": {"bootstrap": 20, "cam_images": 2, "device": "cpu"},
}

DATA_TARGETS = (
    "results/splits/holdout/oversample_index.npy",
    "results/stats/holdout/pixel_stats.json",
)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """The data stages of the tiny configuration, run once: train()'s path arguments."""
    wd = tmp_path_factory.mktemp("tiny")
    write_config(wd, {"synthetic": {"n_images": 160}, "preprocess": {"size": 64}})
    snakemake(wd, *DATA_TARGETS, guard=hangguard.PARTIAL_RUN)
    r = wd / "results"
    return {
        "store_h5": r / "hdf5/images_64.h5",
        "labels_csv": r / "metadata/labels.csv",
        "splits_csv": r / "splits/holdout/splits.csv",
        "index_npy": r / "splits/holdout/oversample_index.npy",
        "average_npy": r / "stats/holdout/average_image.npy",
        "stats_json": r / "stats/holdout/pixel_stats.json",
    }


def write_config(workdir: Path, overrides: dict | None = None, base: dict | None = None) -> Path:
    """Write a config file into ``workdir``; ``overrides`` are merged one level deep (lists,
    such as ``runs`` and ``compare``, are replaced)."""
    cfg = {k: dict(v) if isinstance(v, dict) else list(v) for k, v in (base or TINY_CONFIG).items()}
    for k, v in (overrides or {}).items():
        if isinstance(v, dict):
            cfg.setdefault(k, {}).update(v)
        else:
            cfg[k] = v
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command that runs the project's workflow in ``workdir`` with its config.yaml."""
    config = ["--configfile", str(workdir / "config.yaml")]  # takes every word up to "-s"
    return [sys.executable, "-m", "snakemake", *config, "-s", str(REPO / "Snakefile"), *args]


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    guard: hangguard.Guard = hangguard.DRY_RUN,
    env: dict | None = None,
):
    """Run the project's workflow in ``workdir`` with ``workdir/config.yaml`` on 2 cores
    under ``guard`` (tests/hangguard.py): pass the one for what the run builds."""
    cmd = snakemake_command(workdir, "--cores", "2", *args)
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    return hangguard.run(cmd, cwd=workdir, env=env, guard=guard, check=check)


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Job counts per rule of a dry run (empty when there is nothing to do)."""
    proc = snakemake(workdir, *args, "-n", "--quiet", "rules")  # --quiet takes several words
    jobs: dict[str, int] = {}
    in_table = False
    for line in (proc.stdout + proc.stderr).splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] != "total":
                jobs[parts[0]] = int(parts[1])
    return jobs


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
