"""The CheXpert layout (Irvin et al., AAAI 2019): a CheXpert-v1.0 or CheXpert-v1.0-small folder.

``data.chexpert_dir`` is the release folder itself: it holds ``train.csv``, ``valid.csv`` and
the JPEGs under ``train/patientNNNNN/studyN/viewN_frontal.jpg`` (``valid/`` alike). The CSVs'
``Path`` starts with the release folder's name (``CheXpert-v1.0-small/train/...``), which is
dropped, so both releases parse alike. Patient and study come from the path; ``AP/PA`` is the
view of a frontal image and ``Lateral`` the view of a lateral one. The 14 observations are the
labels, with CheXpert's values kept raw: 1 positive, 0 negative, -1 uncertain, blank not
mentioned (``data.uncertain`` and ``data.blank`` decide what they become). ``valid.csv`` (234
radiologist-labelled images of other patients) is read too: with ``split.method: official`` it
is the test split. Format traps: ``../shared/data/chexpert/README.md``; docs/data.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxr14.errors import DataError
from cxr14.layouts.base import Layout, Wording, views_phrase
from cxr14.layouts.synthetic import Generated
from cxr14.metadata import META_COLUMNS, csv_line, parse_label_cells, read_text_csv, sha256_of

# The 14 observations in the order of CheXpert's CSV header.
LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
META = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
SEX = {"Male": "M", "Female": "F", "Unknown": ""}
# Release folder / split folder / patient / study / view file.
_PATH = (
    r"^[^/]+/(?P<part>train|valid|test)/patient(?P<patient>\d+)/study(?P<study>\d+)/"
    r"(?P<view>view\d+_(?:frontal|lateral))\.jpg$"
)
VALID_FILE = "valid.csv"
PUBLISHED_AUROC = Path(__file__).with_name("chexpert_published_auroc.csv")
KNOWN_METADATA = {
    "b4bcd3d7942de233": "CheXpert-v1.0-small train.csv (sha256 starts b4bcd3d7942de233)",
}


def _read_csv(path: Path) -> pd.DataFrame:
    raw = read_text_csv(path)
    missing = [c for c in (*META, *LABELS) if c not in raw.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; is this CheXpert's "
            "train.csv or valid.csv?"
        )
    if raw.empty:
        raise DataError(f"{path}: no data rows")
    return raw


def _meta(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    parts = raw["Path"].str.strip().str.extract(_PATH)
    bad = parts["patient"].isna()
    if bad.any():
        idx = bad.idxmax()
        raise DataError(
            f"{path}, line {csv_line(idx)}, column 'Path': {raw['Path'][idx]!r} is not "
            "<release>/<train|valid>/patientN/studyN/viewN_<frontal|lateral>.jpg"
        )
    frontal = raw["Frontal/Lateral"].str.strip()
    unknown = ~frontal.isin(("Frontal", "Lateral"))
    sex = raw["Sex"].str.strip().map(SEX)
    age = pd.to_numeric(raw["Age"].str.strip(), errors="coerce")
    for column, bad in (("Frontal/Lateral", unknown), ("Sex", sex.isna()), ("Age", age.isna())):
        if bad.any():
            idx = bad.idxmax()
            raise DataError(
                f"{path}, line {csv_line(idx)}, column {column!r}: unreadable value "
                f"{raw[column][idx]!r}"
            )
    view = raw["AP/PA"].str.strip().where(frontal.eq("Frontal"), "Lateral")
    view = view.mask(view.eq(""), "Frontal")  # a frontal image without AP/PA
    return pd.DataFrame(
        {
            "image": "patient" + parts["patient"] + "_study" + parts["study"] + "_" + parts["view"],
            "patient": parts["patient"].astype(np.int64),
            "follow_up": parts["study"].astype(np.int64),
            "view": view,
            "age_years": age.astype(float),
            "sex": sex,
            "path": raw["Path"].str.strip().str.split("/", n=1).str[1],
        }
    )


def read_chexpert_csv(path: str | os.PathLike) -> pd.DataFrame:
    """One CheXpert CSV as the project's image table (``META_COLUMNS``, ``path`` relative to
    the release folder, then the 14 observations' raw values), in file order."""
    path = Path(path)
    raw = _read_csv(path)
    table = _meta(raw, path)
    table[list(LABELS)] = parse_label_cells(raw, LABELS, path, csv_line)
    duplicated = table["image"].duplicated()
    if duplicated.any():
        idx = duplicated.idxmax()
        raise DataError(f"{path}, line {csv_line(idx)}: image {raw['Path'][idx]!r} listed twice")
    return table[[*META_COLUMNS, "path", *LABELS]]


def read_metadata(path: str | os.PathLike) -> pd.DataFrame:
    """``train.csv`` and, when it is beside it, ``valid.csv``, sorted by image name. A patient
    in both stops the run (the official split would leak them)."""
    path = Path(path)
    tables = [read_chexpert_csv(path)]
    valid = path.with_name(VALID_FILE)
    if valid.is_file() and valid != path:
        tables.append(read_chexpert_csv(valid))
        both = set(tables[0]["patient"]) & set(tables[1]["patient"])
        if both:
            raise DataError(f"{path} and {valid} share patient(s), first: {min(both)}")
    table = pd.concat(tables, ignore_index=True)
    return table.sort_values("image", kind="stable").reset_index(drop=True)


def official_lists(files: dict[str, str]) -> dict[str, list[str]]:
    """CheXpert's own split: ``train.csv``'s images for training and validation,
    ``valid.csv``'s (radiologist-labelled) as the test set."""
    path = Path(files["metadata"])
    return {
        "train_val_list": read_chexpert_csv(path)["image"].tolist(),
        "test_list": read_chexpert_csv(path.with_name(VALID_FILE))["image"].tolist(),
    }


class CheXpert(Layout):
    """A CheXpert release folder at ``data.chexpert_dir``."""

    name = "chexpert"
    vocabulary = "chexpert"
    folder_key = "chexpert_dir"
    labels = LABELS
    views = ("PA", "AP", "LL", "RL", "Frontal", "Lateral")
    uncertain_labels = True
    image_formats = ("JPEG",)
    image_places = "the paths of its CSVs (train/patientN/studyN/...)"
    official_lists_in_metadata = True
    published_dataset = "CheXpert"
    published_auroc_file = PUBLISHED_AUROC
    wording = Wording(
        labels="CheXpert's labels",
        official_split="CheXpert's official split (valid.csv as test)",
        official_test=(
            "CheXpert's validation set, radiologist-labelled; published per study, this run "
            "per image"
        ),
        label_note=(
            "CheXpert labels were extracted from radiology reports by the CheXpert labeler, "
            "with uncertain and unmentioned findings (Irvin et al. 2019); test AUROCs measure "
            "agreement with them where they are known."
        ),
    )

    def data_dir(self, config: dict) -> str:
        return config["data"]["chexpert_dir"]

    def metadata_file(self, config: dict) -> str:
        return os.path.join(self.data_dir(config), "train.csv")

    def parse_inputs(self, config: dict) -> dict[str, str]:
        valid = os.path.join(self.data_dir(config), VALID_FILE)
        return {
            "metadata": self.metadata_file(config),
            **({"valid": valid} if Path(valid).is_file() else {}),
        }

    def missing_paths(self, config: dict) -> list[str]:
        d = Path(self.data_dir(config))
        if not d.is_dir():
            return [f"data.chexpert_dir: folder {d} does not exist"]
        files = [("data.chexpert_dir", self.metadata_file(config))]
        if config["split"]["method"] == "official":
            files.append(("split.method official", str(d / VALID_FILE)))
        return [f"{key}: file {p} does not exist" for key, p in files if not Path(p).is_file()]

    def display_label(self, config: dict) -> str:
        return f"CheXpert, {views_phrase(config)}, {config['split']['method']} split"

    def metadata_release(self, path, sha256: str | None = None) -> str:
        sha256 = sha256 or sha256_of(path)
        return KNOWN_METADATA.get(sha256[:16], "CheXpert train.csv format (sha256 not known)")

    def count_patients(self, config: dict) -> int | None:
        # From the Path columns alone (a dry run reads 223,414 rows): patientNNNNN parts.
        files = [Path(self.metadata_file(config))]
        files += [f for f in [files[0].with_name(VALID_FILE)] if f.is_file()]
        paths = pd.concat([pd.read_csv(f, usecols=["Path"])["Path"] for f in files])
        return int(paths.str.extract(r"/patient(\d+)/")[0].nunique())

    read_metadata = staticmethod(read_metadata)
    official_lists = staticmethod(official_lists)


class SyntheticCheXpert(Generated, CheXpert):
    """The synthetic demo set in CheXpert's layout (``cxr14.synthetic_chexpert``), written by
    the workflow into ``results/synthetic_chexpert``."""

    name = "synthetic_chexpert"
    results_caveat = "results on the synthetic demo set are never CheXpert results"
    writer = "cxr14.synthetic_chexpert"
    DIR = "results/synthetic_chexpert/CheXpert-v1.0-small"
    wording = Wording(
        labels="the synthetic set's labels",
        official_split="the synthetic set's fixed split (its valid.csv as test)",
        official_test="the synthetic set's valid.csv",
        label_note=(
            "The synthetic set's labels are read off the findings planted in its images, with "
            "uncertain and blank values written at set rates: not any real data set's."
        ),
    )

    def written_files(self, config: dict) -> dict[str, str]:
        files = {"metadata": "train.csv", "valid": VALID_FILE}
        files |= {"images": "train", "valid_images": "valid"}
        return {k: f"{self.DIR}/{f}" for k, f in files.items()}

    def parse_inputs(self, config: dict) -> dict[str, str]:
        return self.written_files(config)  # the images too: outputs of the generating rule

    def display_label(self, config: dict) -> str:
        return f"synthetic demo data in CheXpert's layout (not CheXpert), {views_phrase(config)}"
