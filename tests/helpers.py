"""Helpers that tests import (conftest.py holds only fixtures: a module named conftest exists
once per test folder, so none is imported by name)."""

from __future__ import annotations

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
