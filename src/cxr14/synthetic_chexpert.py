"""The synthetic data set in CheXpert's exact layout (``data.source: synthetic_chexpert``).

The same patients, planted findings and renderer as the NIH-layout demo (``cxr14.synthetic``),
written as a CheXpert-v1.0-small release folder:

- ``train.csv`` / ``valid.csv``: CheXpert's header and value conventions (``1.0``, ``0.0``,
  ``-1.0``, blank; ``No Finding`` only ``1.0`` or blank; ``Sex`` Male/Female; integer ``Age``;
  ``Frontal/Lateral``, ``AP/PA`` blank for laterals), LF endings, ``Path`` starting with the
  release folder's name;
- ``train/patientNNNNN/studyN/view1_frontal.jpg`` (and ``view2_lateral.jpg`` for a share of
  studies): 8-bit grayscale JPEGs, portrait like CheXpert's (width 0.8 of the height);
- the test-list patients form ``valid/`` (renumbered after the training patients, as CheXpert's
  are), labelled 0/1 only, as its radiologists' consensus is.

Each CheXpert observation is read off planted findings (``OBSERVED_AS``); a share of its
positives is written uncertain and most of its negatives are left blank, as CheXpert's labeler
does (rates in ``VALUE_NOISE``). Deterministic in ``seed``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxr14.layouts.chexpert import LABELS, VALID_FILE, SyntheticCheXpert
from cxr14.metadata import NO_FINDING
from cxr14.synthetic import labelled, render_all

log = logging.getLogger(__name__)

RELEASE = Path(SyntheticCheXpert.DIR).name  # the release folder's name
HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *LABELS]
# Planted findings (the renderer's NIH names) that make each observation positive. Fracture and
# Support Devices have no pattern of their own: they borrow two the other labels do not use.
OBSERVED_AS = {
    "Enlarged Cardiomediastinum": ("Cardiomegaly",),
    "Cardiomegaly": ("Cardiomegaly",),
    "Lung Opacity": ("Consolidation", "Pneumonia", "Infiltration", "Edema", "Mass", "Nodule"),
    "Lung Lesion": ("Mass", "Nodule"),
    "Edema": ("Edema",),
    "Consolidation": ("Consolidation",),
    "Pneumonia": ("Pneumonia",),
    "Atelectasis": ("Atelectasis",),
    "Pneumothorax": ("Pneumothorax",),
    "Pleural Effusion": ("Effusion",),
    "Pleural Other": ("Pleural_Thickening",),
    "Fracture": ("Fibrosis",),
    "Support Devices": ("Hernia",),
}
# Per training label: P(positive written -1.0), P(negative written 0.0), P(negative written
# -1.0); the remaining negatives are blank.
VALUE_NOISE = (0.25, 0.15, 0.03)
LATERAL_SHARE = 0.15
VALID_PATIENT_OFFSET = 64540  # CheXpert's validation patients follow its training ones


def observation_cells(found: set[str], rng: np.random.Generator, noisy: bool) -> list[str]:
    """One image's (or study's) 14 observation cells, as a labeller writes them when `noisy`
    (uncertain positives, blank or uncertain negatives), else as radiologists do (0/1)."""
    cells = []
    for label in LABELS:
        if label == NO_FINDING:
            cells.append("1.0" if not found else "")
            continue
        positive = bool(found.intersection(OBSERVED_AS[label]))
        u = rng.random()
        if not noisy:
            cells.append("1.0" if positive else "0.0")
        elif positive:
            cells.append("-1.0" if u < VALUE_NOISE[0] else "1.0")
        elif u < VALUE_NOISE[1]:
            cells.append("0.0")
        else:
            cells.append("-1.0" if u < VALUE_NOISE[1] + VALUE_NOISE[2] else "")
    return cells


def _rows(meta: pd.DataFrame, seed: int) -> list[dict]:
    """One row per image to write: its path, findings, patient, study and CSV cells."""
    rng = np.random.default_rng([seed, 1901])
    rows = []
    for r in meta.to_dict("records"):
        found = set() if r["Finding Labels"] == NO_FINDING else set(r["Finding Labels"].split("|"))
        valid = bool(r["_test"])
        patient = int(r["Patient ID"]) + (VALID_PATIENT_OFFSET if valid else 0)
        study = int(r["Follow-up #"]) + 1
        views = ["frontal"] + (["lateral"] if rng.random() < LATERAL_SHARE else [])
        for k, view in enumerate(views, start=1):
            part = "valid" if valid else "train"
            rel = f"{part}/patient{patient:05d}/study{study}/view{k}_{view}.jpg"
            sex = {"M": "Male", "F": "Female"}[r["Patient Gender"]]
            age = str(int(r["Patient Age"][:-1]) // (12 if r["Patient Age"].endswith("M") else 1))
            frontal = view == "frontal"
            cells = [f"{RELEASE}/{rel}", sex, age, "Frontal" if frontal else "Lateral"]
            cells += [
                r["View Position"] if frontal else "",
                *observation_cells(labelled(found, meta), rng, not valid),
            ]
            rows.append(
                {
                    "rel": rel,
                    "found": sorted(found),
                    "patient": patient,
                    "study": study,
                    "valid": valid,
                    "cells": cells,
                }
            )
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    lines = [",".join(HEADER)] + [",".join(r["cells"]) for r in rows]
    path.write_text("\n".join(lines) + "\n")


def write(
    out_dir: str | os.PathLike, meta: pd.DataFrame, image_size: int, seed: int, workers: int = 1
) -> pd.DataFrame:
    """Write the synthetic data set as a CheXpert release folder ``out_dir``; returns the
    rows written (path, findings, patient, study, whether in ``valid/``)."""
    out_dir = Path(out_dir)
    for part in ("train", "valid"):
        (out_dir / part).mkdir(parents=True, exist_ok=True)
    rows = _rows(meta, seed)
    shape = (round(0.8 * image_size), image_size)
    jobs = [
        (r["rel"], r["found"], r["patient"], r["study"], shape, str(out_dir), seed) for r in rows
    ]
    render_all(jobs, workers, f"{SyntheticCheXpert.name} JPEGs of {shape[0]}x{shape[1]}")
    _write_csv(out_dir / "train.csv", [r for r in rows if not r["valid"]])
    _write_csv(out_dir / VALID_FILE, [r for r in rows if r["valid"]])
    table = pd.DataFrame(rows).drop(columns="cells")
    log.info(
        "%s: %d images (%d in valid/), %d patients in %s",
        SyntheticCheXpert.name,
        len(table),
        table["valid"].sum(),
        table["patient"].nunique(),
        out_dir,
    )
    return table
