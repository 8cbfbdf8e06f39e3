"""The MIMIC-CXR-JPG layout (Johnson et al., PhysioNet, v2.0.0 and v2.1.0).

``data.mimic_dir`` is the release folder: ``mimic-cxr-2.0.0-metadata.csv.gz`` (one row per
image: ``dicom_id``, ``subject_id``, ``study_id``, ``ViewPosition``, ``StudyDate``, ...), the
labels of each *study* in ``mimic-cxr-2.0.0-chexpert.csv.gz`` or ``-negbio.csv.gz``
(``data.mimic_labels``; ``subject_id``, ``study_id`` and 14 observations, values 1.0 / 0.0 /
-1.0 / blank), the official split ``mimic-cxr-2.0.0-split.csv.gz`` (``train``, ``validate``,
``test``), and the JPEGs at ``files/p<first two digits of subject_id>/p<subject_id>/
s<study_id>/<dicom_id>.jpg``. Every image of a study gets its study's labels. Sex and age come
from MIMIC-IV's ``patients.csv.gz`` (``gender``; ``anchor_age`` in ``anchor_year``, ages over
89 written as 91) when ``data.mimic_patients_csv`` names it, else they are unknown. The data
set is credentialed: no real file is in this repository; docs/data.md says where each format
fact comes from, and the synthetic copy (``cxr14.synthetic_mimic_cxr``) writes them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxr14.errors import DataError
from cxr14.layouts.base import Layout, Wording, views_phrase
from cxr14.layouts.chexpert import LABELS
from cxr14.layouts.synthetic import Generated
from cxr14.metadata import META_COLUMNS, csv_line, parse_label_cells, read_text_csv

METADATA = "mimic-cxr-2.0.0-metadata.csv.gz"
LABEL_FILES = {
    "chexpert": "mimic-cxr-2.0.0-chexpert.csv.gz",
    "negbio": "mimic-cxr-2.0.0-negbio.csv.gz",
}
SPLIT = "mimic-cxr-2.0.0-split.csv.gz"
IDS = ("subject_id", "study_id")
# ViewPosition values of the real metadata (blank for 15,769 images: "unknown" here).
VIEWS = ("PA", "AP", "LATERAL", "LL", "AP AXIAL", "AP LLD", "AP RLD", "PA LLD", "PA RLD")
VIEWS += ("LAO", "RAO", "LPO", "XTABLE LATERAL", "SWIMMERS", "unknown")
SPLITS = {"train": "train_val_list", "validate": "train_val_list", "test": "test_list"}
# MIMIC-IV writes every age over 89 as 91.
AGE_CAP = 91


def _read(path, columns) -> pd.DataFrame:
    raw = read_text_csv(path)
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")
    for c in IDS:
        if c in columns and not raw[c].str.fullmatch(r"\d+").all():
            idx = (~raw[c].str.fullmatch(r"\d+")).idxmax()
            raise DataError(f"{path}, line {csv_line(idx)}, column {c!r}: {raw[c][idx]!r}")
    return raw


def read_study_labels(path) -> pd.DataFrame:
    """A labels file: one row per study, ``subject_id``, ``study_id`` and the 14 observations'
    raw values (1, 0, -1, NaN); a study listed twice names its lines."""
    raw = _read(path, (*IDS, *LABELS))
    twice = raw.duplicated(list(IDS))
    if twice.any():
        raise DataError(f"{path}, line {csv_line(twice.idxmax())}: study listed twice")
    out = raw[list(IDS)].astype(np.int64)
    out[list(LABELS)] = parse_label_cells(raw, LABELS, path, csv_line)
    return out


def _ages(meta: pd.DataFrame, patients_csv) -> tuple[pd.Series, pd.Series]:
    """Sex and age at the study (anchor_age + years since anchor_year, capped) per image."""
    if not patients_csv:
        return pd.Series("", index=meta.index), pd.Series(np.nan, index=meta.index)
    cols = ("subject_id", "gender", "anchor_age", "anchor_year")
    patients = _read(patients_csv, cols).drop_duplicates("subject_id").set_index("subject_id")
    p = patients.reindex(meta["subject_id"])
    year = pd.to_numeric(meta["StudyDate"].str[:4], errors="coerce").to_numpy()
    age = pd.to_numeric(p["anchor_age"], errors="coerce").to_numpy()
    age = age + year - pd.to_numeric(p["anchor_year"], errors="coerce").to_numpy()
    sex = p["gender"].fillna("").map(lambda g: g if g in ("M", "F") else "")
    return pd.Series(sex.to_numpy(), index=meta.index), pd.Series(
        np.minimum(age, AGE_CAP), index=meta.index
    )


def read_mimic(files: dict[str, str]) -> pd.DataFrame:
    """The image table: ``metadata`` joined with its study's ``labels`` (images of a study
    without labels get blanks) and, given ``patients``, sex and age; sorted by image name
    (``dicom_id``)."""
    path = files["metadata"]
    meta = _read(path, ("dicom_id", *IDS, "ViewPosition", "StudyDate"))
    if meta.empty:
        raise DataError(f"{path}: no data rows")
    twice = meta["dicom_id"].duplicated()
    if twice.any():
        idx = twice.idxmax()
        raise DataError(
            f"{path}, line {csv_line(idx)}: image {meta['dicom_id'][idx]!r} listed twice"
        )
    ids = meta[list(IDS)].astype(np.int64)
    labels = ids.merge(read_study_labels(files["labels"]), on=list(IDS), how="left")
    sex, age = _ages(meta, files.get("patients"))
    # Follow-up: the study's order among the patient's studies by date (0 = first).
    date = meta["StudyDate"].where(meta["StudyDate"].ne(""), "0")
    order = ids.assign(date=date.astype(np.int64))
    follow_up = order.groupby("subject_id")["date"].rank(method="dense").astype(np.int64) - 1
    sid, study, dicom = meta["subject_id"], meta["study_id"], meta["dicom_id"]
    table = pd.DataFrame(
        {
            "image": dicom,
            "patient": ids["subject_id"],
            "follow_up": follow_up,
            "view": meta["ViewPosition"].str.strip().replace("", "unknown"),
            "age_years": age,
            "sex": sex,
            "path": "files/p" + sid.str[:2] + "/p" + sid + "/s" + study + "/" + dicom + ".jpg",
        }
    )
    table[list(LABELS)] = labels[list(LABELS)].to_numpy()
    table = table[[*META_COLUMNS, "path", *LABELS]]
    return table.sort_values("image", kind="stable").reset_index(drop=True)


def official_lists(files: dict[str, str]) -> dict[str, list[str]]:
    """The official split file: ``train`` and ``validate`` images for training and validation
    (the split stage carves its own validation patients), ``test`` as the test set."""
    raw = _read(files["split"], ("dicom_id", *IDS, "split"))
    unknown = ~raw["split"].isin(SPLITS)
    if unknown.any():
        idx = unknown.idxmax()
        raise DataError(
            f"{files['split']}, line {csv_line(idx)}, column 'split': {raw['split'][idx]!r} is "
            f"none of {', '.join(SPLITS)}"
        )
    kind = raw["split"].map(SPLITS)
    return {k: sorted(raw.loc[kind == k, "dicom_id"]) for k in ("train_val_list", "test_list")}


class MimicCXR(Layout):
    """A MIMIC-CXR-JPG release folder at ``data.mimic_dir``."""

    name = "mimic_cxr"
    vocabulary = "chexpert"  # the CheXpert and NegBio labellers' 14 observations
    folder_key = "mimic_dir"
    labels = LABELS
    views = VIEWS
    uncertain_labels = True
    image_formats = ("JPEG",)
    image_places = "files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg"
    official_lists_in_metadata = True
    published_dataset = "MIMIC-CXR-JPG"
    wording = Wording(
        labels="MIMIC-CXR's labels",
        official_split="MIMIC-CXR-JPG's official split (mimic-cxr-2.0.0-split.csv.gz)",
        official_test="MIMIC-CXR-JPG's official test split",
        label_note=(
            "MIMIC-CXR-JPG labels were extracted from the radiology reports by the CheXpert or "
            "NegBio labeller (Johnson et al. 2019), per study, with uncertain and unmentioned "
            "findings; test AUROCs measure agreement with them where they are known."
        ),
    )

    def data_dir(self, config: dict) -> str:
        return config["data"]["mimic_dir"]

    def metadata_file(self, config: dict) -> str:
        return os.path.join(self.data_dir(config), METADATA)

    def parse_inputs(self, config: dict) -> dict[str, str]:
        d = self.data_dir(config)
        files = {"metadata": self.metadata_file(config)}
        files["labels"] = os.path.join(d, LABEL_FILES[config["data"]["mimic_labels"]])
        files["split"] = os.path.join(d, SPLIT)
        if config["data"]["mimic_patients_csv"]:
            files["patients"] = config["data"]["mimic_patients_csv"]
        return files

    def missing_paths(self, config: dict) -> list[str]:
        d = Path(self.data_dir(config))
        if not d.is_dir():
            return [f"data.mimic_dir: folder {d} does not exist"]
        keys = {"labels": "data.mimic_labels", "patients": "data.mimic_patients_csv"}
        return [
            f"{keys.get(k, 'data.mimic_dir')}: file {p} does not exist"
            for k, p in self.parse_inputs(config).items()
            if not Path(p).is_file()
        ]

    def display_label(self, config: dict) -> str:
        labeller = config["data"]["mimic_labels"]
        return f"MIMIC-CXR-JPG ({labeller} labels), {views_phrase(config)}, " + (
            f"{config['split']['method']} split"
        )

    def metadata_release(self, path, sha256: str | None = None) -> str:
        return "MIMIC-CXR-JPG metadata (v2.0.0 file name; sha256 not checked against a reference)"

    def count_patients(self, config: dict) -> int | None:
        return int(pd.read_csv(self.metadata_file(config), usecols=["subject_id"]).nunique()[0])

    def read_table(self, files: dict[str, str], **options) -> pd.DataFrame:
        return read_mimic(files)

    official_lists = staticmethod(official_lists)


class SyntheticMimicCXR(Generated, MimicCXR):
    """The synthetic demo set in MIMIC-CXR-JPG's layout (``cxr14.synthetic_mimic_cxr``),
    written by the workflow into ``results/synthetic_mimic_cxr``."""

    name = "synthetic_mimic_cxr"
    results_caveat = "results on the synthetic demo set are never MIMIC-CXR results"
    writer = "cxr14.synthetic_mimic_cxr"
    DIR = "results/synthetic_mimic_cxr"
    wording = Wording(
        labels="the synthetic set's labels",
        official_split="the synthetic set's fixed split (its split file)",
        official_test="the synthetic set's test split",
        label_note=(
            "The synthetic set's labels are read off the findings planted in its images, per "
            "study, with uncertain and blank values written at set rates: not any real data set's."
        ),
    )

    def written_files(self, config: dict) -> dict[str, str]:
        files = {"metadata": METADATA, "labels": LABEL_FILES["chexpert"]}
        files |= {"negbio": LABEL_FILES["negbio"], "split": SPLIT}
        files |= {"patients": "patients.csv.gz", "images": "files"}
        return {k: f"{self.DIR}/{f}" for k, f in files.items()}

    def parse_inputs(self, config: dict) -> dict[str, str]:
        files = self.written_files(config)
        files["labels"] = f"{self.DIR}/{LABEL_FILES[config['data']['mimic_labels']]}"
        return {k: v for k, v in files.items() if k != "negbio"}

    def display_label(self, config: dict) -> str:
        return (
            f"synthetic demo data in MIMIC-CXR-JPG's layout (not MIMIC-CXR), {views_phrase(config)}"
        )
