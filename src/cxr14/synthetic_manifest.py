"""The synthetic data set as a user's own manifest (``data.source: synthetic_manifest``).

The same patients, planted findings and renderer as the NIH-layout demo, written the way a
user would bring their own images (``cxr14.layouts.manifest``):

- ``manifest.csv``: ``path``, ``patient`` (text ids), ``study``, ``view``, ``sex``
  (male/female), ``age``, ``split`` (train/val/test, patient-disjoint), then the label columns
  ``SyntheticManifest.labels`` (1/0, a few -1 and blanks);
- ``images/<patient>/<study>.<ext>``: in turn 8-bit PNG, 16-bit PNG, JPEG and DICOM (12-bit,
  MONOCHROME2), so the store's every decoder runs;
- ``boxes.csv``: ``image, label, x, y, w, h`` as fractions of the image's sides, ``image``
  being the manifest path.

Deterministic in ``seed``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cxr14.layouts.manifest import SyntheticManifest
from cxr14.metadata import NO_FINDING
from cxr14.synthetic import labelled, render_all

log = logging.getLogger(__name__)

LABELS = SyntheticManifest.labels
# Planted findings (the renderer's names) that make each label positive.
OBSERVED_AS = {
    "cardiomegaly": ("Cardiomegaly",),
    "effusion": ("Effusion",),
    "pneumothorax": ("Pneumothorax",),
    "nodule_or_mass": ("Nodule", "Mass"),
    "opacity": ("Consolidation", "Pneumonia", "Infiltration", "Edema", "Atelectasis"),
}
FORMATS = ("png", "png16", "jpg", "dcm")
UNCERTAIN_SHARE, BLANK_SHARE, VAL_SHARE = 0.05, 0.05, 0.1


def _cells(found: set[str], rng: np.random.Generator) -> list[str]:
    out = []
    for label in LABELS:
        u = rng.random()
        value = "1" if found.intersection(OBSERVED_AS[label]) else "0"
        out.append(
            "-1" if u < UNCERTAIN_SHARE else "" if u < UNCERTAIN_SHARE + BLANK_SHARE else value
        )
    return out


def _rows(meta: pd.DataFrame, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, 4242])
    patients = meta["Patient ID"].unique()
    val = set(rng.choice(patients, size=max(1, round(VAL_SHARE * len(patients))), replace=False))
    rows = []
    for i, r in enumerate(meta.to_dict("records")):
        found = set() if r["Finding Labels"] == NO_FINDING else set(r["Finding Labels"].split("|"))
        fmt = FORMATS[i % len(FORMATS)]
        ext = {"png16": "png"}.get(fmt, fmt)
        patient = f"P{int(r['Patient ID']):04d}"
        split = "test" if r["_test"] else "val" if r["Patient ID"] in val else "train"
        age = int(r["Patient Age"][:-1]) // (12 if r["Patient Age"].endswith("M") else 1)
        sex = {"M": "male", "F": "female"}[r["Patient Gender"]]
        path = f"images/{patient}/{int(r['Follow-up #'])}.{ext}"
        cells = [path, patient, str(int(r["Follow-up #"])), r["View Position"], sex, str(age)]
        rows.append(
            {
                "path": path,
                "format": fmt,
                "found": sorted(found),
                "patient": int(r["Patient ID"]),
                "study": int(r["Follow-up #"]),
                "cells": [*cells, split, *_cells(labelled(found, meta), rng)],
            }
        )
    return rows


def _convert(out: Path, row: dict) -> None:
    """Rewrite a rendered 8-bit image as 16-bit PNG or 12-bit DICOM where its row asks."""
    path = out / row["path"]
    if row["format"] == "png16":
        arr = np.asarray(Image.open(path), dtype=np.uint16) * 257
        Image.fromarray(arr).save(path)
    elif row["format"] == "dcm":
        rendered = path.with_suffix(".png")
        _write_dicom(path, np.asarray(Image.open(rendered), dtype=np.uint16) * 16)
        rendered.unlink()


def _write_dicom(path: Path, pixels: np.ndarray) -> None:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path.name)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.PhotometricInterpretation, ds.SamplesPerPixel = "DX", "MONOCHROME2", 1
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _boxes(rows: list[dict], written: list[dict], shape) -> list[str]:
    lines = ["image,label,x,y,w,h"]
    for row, found in zip(rows, written, strict=True):
        for label, planted in OBSERVED_AS.items():
            for name in planted:
                if name in found:
                    x0, y0, x1, y1 = np.array(found[name]) / np.array([*shape, *shape])
                    lines.append(
                        f"{row['path']},{label},{x0:.5f},{y0:.5f},{x1 - x0:.5f},{y1 - y0:.5f}"
                    )
    return lines


def write(
    out_dir: str | os.PathLike, meta: pd.DataFrame, image_size: int, seed: int, workers: int = 1
) -> pd.DataFrame:
    """Write the synthetic data set as a manifest folder ``out_dir``; returns the manifest."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = _rows(meta, seed)
    shape = (image_size, image_size)
    rendered = [r["path"].replace(".dcm", ".png") for r in rows]
    jobs = [
        (p, r["found"], r["patient"], r["study"], shape, str(out), seed)
        for p, r in zip(rendered, rows, strict=True)
    ]
    written = render_all(jobs, workers, f"synthetic images of {image_size}x{image_size}")
    for row in rows:
        _convert(out, row)
    header = ["path", "patient", "study", "view", "sex", "age", "split", *LABELS]
    (out / "manifest.csv").write_text(
        "\n".join(",".join(x) for x in [header, *(r["cells"] for r in rows)]) + "\n"
    )
    (out / "boxes.csv").write_text("\n".join(_boxes(rows, written, shape)) + "\n")
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    log.info(
        "synthetic manifest: %d images of %d patients in %s",
        len(manifest),
        manifest["patient"].nunique(),
        out,
    )
    return manifest
