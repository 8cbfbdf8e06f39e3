"""The synthetic data set in MIMIC-CXR-JPG's exact layout (``data.source:
synthetic_mimic_cxr``).

The same patients, planted findings and renderer as the NIH-layout demo, written as a
MIMIC-CXR-JPG release folder (formats as documented by PhysioNet for v2.0.0/v2.1.0; docs/data.md
says which fact comes from where):

- ``mimic-cxr-2.0.0-metadata.csv.gz``: one row per image, the 12 columns of the real file
  (``dicom_id``, ``subject_id``, ``study_id``, ``ViewPosition`` with a few blanks, ``StudyDate``
  as YYYYMMDD in shifted years, ...);
- ``mimic-cxr-2.0.0-chexpert.csv.gz`` and ``-negbio.csv.gz``: one row per *study*, ``subject_id``,
  ``study_id`` and the 14 observations in the file's alphabetical order, values ``1.0``,
  ``0.0``, ``-1.0`` or blank (the two labellers differ by their draws);
- ``mimic-cxr-2.0.0-split.csv.gz``: ``dicom_id, study_id, subject_id, split`` with ``train``,
  ``validate`` and ``test`` (the NIH-layout demo's test patients), patient-disjoint;
- ``patients.csv.gz``: MIMIC-IV's ``subject_id, gender, anchor_age, anchor_year,
  anchor_year_group, dod`` (ages over 89 written as 91);
- ``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg``: a frontal JPEG per study and a lateral for half of
  them, portrait (width 0.83 of the height).

Deterministic in ``seed``; gzip headers carry no time stamp.
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxr14.layouts.chexpert import LABELS
from cxr14.layouts.mimic_cxr import LABEL_FILES, METADATA, SPLIT, SyntheticMimicCXR
from cxr14.metadata import NO_FINDING
from cxr14.synthetic import labelled, render_all
from cxr14.synthetic_chexpert import observation_cells

log = logging.getLogger(__name__)

METADATA_COLUMNS = (
    "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,"
    "StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
    "PatientOrientationCodeSequence_CodeMeaning"
)
LABEL_ORDER = sorted(LABELS)  # the real files list the observations alphabetically
LATERAL_SHARE, NO_VIEW_SHARE, VALIDATE_SHARE = 0.5, 0.04, 0.1
VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral"}


def _write_gz(path: Path, lines: list[str]) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode())


def _dicom_id(rng: np.random.Generator) -> str:
    return "-".join(f"{v:08x}" for v in rng.integers(0, 2**32, 5))


def _planted(r: dict) -> set[str]:
    return set() if r["Finding Labels"] == NO_FINDING else set(r["Finding Labels"].split("|"))


def _studies(meta: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One row per study: ids, date, findings, split, images (dicom id, view)."""
    rng = np.random.default_rng([seed, 2019, 7])
    patients = meta["Patient ID"].unique()
    validate = set(rng.choice(patients, size=round(VALIDATE_SHARE * len(patients)), replace=False))
    study_ids = rng.permutation(9_000_000)[: len(meta)] + 50_000_000
    rows = []
    for k, r in enumerate(meta.to_dict("records")):
        pid, fu = int(r["Patient ID"]), int(r["Follow-up #"])
        split = "test" if r["_test"] else ("validate" if r["Patient ID"] in validate else "train")
        views = [r["View Position"]] + (["LATERAL"] if rng.random() < LATERAL_SHARE else [])
        images = [(_dicom_id(rng), "" if rng.random() < NO_VIEW_SHARE else v) for v in views]
        year = 2100 + (pid * 7) % 90
        rows.append(
            {
                "subject_id": 10_000_000 + pid,
                "study_id": int(study_ids[k]),
                "date": f"{year + fu // 2}{1 + fu % 12:02d}{1 + (pid + fu) % 28:02d}",
                "found": (found := _planted(r)),
                "labelled": labelled(found, meta),
                "split": split,
                "images": images,
                "sex": r["Patient Gender"],
                "age": int(r["Patient Age"][:-1]) // (12 if r["Patient Age"].endswith("M") else 1),
                "year": year,
            }
        )
    return pd.DataFrame(rows)


def _write_tables(out: Path, studies: pd.DataFrame, seed: int, shape) -> None:
    meta = [METADATA_COLUMNS]
    split = ["dicom_id,study_id,subject_id,split"]
    for s in studies.to_dict("records"):
        for dicom, view in s["images"]:
            desc = "CHEST (PA AND LAT)" if view != "AP" else "CHEST (PORTABLE AP)"
            cells = [dicom, str(s["subject_id"]), str(s["study_id"]), desc, view]
            cells += [str(shape[1]), str(shape[0]), s["date"], "101010.5", desc]
            cells += [VIEW_MEANING.get(view, ""), "Erect"]
            meta.append(",".join(cells))
            split.append(f"{dicom},{s['study_id']},{s['subject_id']},{s['split']}")
    _write_gz(out / METADATA, meta)
    _write_gz(out / SPLIT, split)
    for labeller, salt in (("chexpert", 1), ("negbio", 2)):
        rng = np.random.default_rng([seed, 2019, salt])
        lines = [",".join(["subject_id", "study_id", *LABEL_ORDER])]
        for s in studies.to_dict("records"):
            cells = dict(zip(LABELS, observation_cells(s["labelled"], rng, True), strict=True))
            lines.append(
                ",".join(
                    [str(s["subject_id"]), str(s["study_id"])] + [cells[c] for c in LABEL_ORDER]
                )
            )
        _write_gz(out / LABEL_FILES[labeller], lines)
    first = studies.sort_values("date").drop_duplicates("subject_id")
    patients = ["subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod"]
    for s in first.sort_values("subject_id").to_dict("records"):
        age = s["age"] if s["age"] <= 89 else 91
        group = f"{2008 + 3 * (s['subject_id'] % 5)} - {2010 + 3 * (s['subject_id'] % 5)}"
        patients.append(f"{s['subject_id']},{s['sex']},{age},{s['date'][:4]},{group},")
    _write_gz(out / "patients.csv.gz", patients)


def write_tables(out_dir: str | os.PathLike, meta: pd.DataFrame, image_size: int, seed: int):
    """The release's tables of the drawn metadata ``meta``, without its images: what a dry run
    reads (the planning benchmark's full-size folder); returns one row per study."""
    out = Path(out_dir)
    (out / "files").mkdir(parents=True, exist_ok=True)
    studies = _studies(meta, seed)
    _write_tables(out, studies, seed, (round(0.83 * image_size), image_size))
    return studies


def write(
    out_dir: str | os.PathLike, meta: pd.DataFrame, image_size: int, seed: int, workers: int = 1
) -> pd.DataFrame:
    """Write the synthetic data set as a MIMIC-CXR-JPG release folder ``out_dir``; returns one
    row per study."""
    out = Path(out_dir)
    (out / "files").mkdir(parents=True, exist_ok=True)
    studies = _studies(meta, seed)
    shape = (round(0.83 * image_size), image_size)
    jobs = []
    for s in studies.to_dict("records"):
        sid = str(s["subject_id"])
        for dicom, _ in s["images"]:
            rel = f"files/p{sid[:2]}/p{sid}/s{s['study_id']}/{dicom}.jpg"
            jobs.append(
                (rel, sorted(s["found"]), s["subject_id"], s["study_id"], shape, str(out), seed)
            )
    render_all(jobs, workers, f"{SyntheticMimicCXR.name} JPEGs of {shape[0]}x{shape[1]}")
    _write_tables(out, studies, seed, shape)
    log.info(
        "%s: %d images of %d studies of %d patients in %s",
        SyntheticMimicCXR.name,
        len(jobs),
        len(studies),
        studies["subject_id"].nunique(),
        out,
    )
    return studies
