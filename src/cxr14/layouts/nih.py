"""The NIH ChestX-ray14 layout: its 14 labels, its metadata files and their parsers.

Survives both releases of ``Data_Entry_2017.csv``: the 2017 file (CRLF line endings, a trailing
comma in the header, ages such as ``058Y``/``011M``/``001D``) and the 2020 re-release (LF, integer
ages, rows re-ordered by patient). Every error names the file and the 1-based line at fault.
Format details: docs/data.md.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cxr14.errors import DataError
from cxr14.layouts.base import Layout, Wording, views_phrase
from cxr14.metadata import (
    META_COLUMNS,
    NO_FINDING,
    check_image_name,
    csv_line,
    read_text_csv,
    sha256_of,
)

log = logging.getLogger(__name__)

# The 14 finding labels in the order NIH lists them (alphabetical). Every table, array and
# model output of a run on this layout uses this order.
LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)
# Spellings seen in NIH's own files: `BBox_List_2017.csv` writes "Infiltrate"; some
# re-distributions write "Pleural Thickening" with a space.
ALIASES: dict[str, str] = {
    "Infiltrate": "Infiltration",
    "Pleural Thickening": "Pleural_Thickening",
}
# NIH column name -> our column name. The other NIH columns (original size, pixel spacing) are
# not needed downstream and are dropped.
REQUIRED_COLUMNS = {
    "Image Index": "image",
    "Finding Labels": "findings",
    "Follow-up #": "follow_up",
    "Patient ID": "patient",
    "Patient Age": "age",
    "Patient Gender": "sex",
    "View Position": "view",
}
# Ages above this are data-entry errors in the NIH file (up to 414Y); they become missing.
MAX_PLAUSIBLE_AGE = 120
_AGE = re.compile(r"^(\d+)\s*([YMD]?)$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"": 1.0, "Y": 1.0, "M": 1 / 12, "D": 1 / 365.25}
# NIH's boxes are in the pixels of the original 1024x1024 images.
BOX_SPACE = 1024
PUBLISHED_AUROC = Path(__file__).with_name("nih_published_auroc.csv")
# sha256 of metadata files known byte for byte (the 2020 re-release is recognised by its format
# only: no reference copy was at hand to record its hash).
KNOWN_METADATA = {
    "3c3e24f0b580e4e976499473fa29d7bbee1f6be93aa0b8bc764e1688ca101d37": (
        "NIH 2017 release (Data_Entry_2017.csv, original labels; sha256 matches)"
    ),
}


def canonical_label(name: str) -> str | None:
    """The canonical label for ``name`` (one of LABELS), or None if it is unknown."""
    name = name.strip()
    if name in LABELS:
        return name
    return ALIASES.get(name)


def parse_age(value: str) -> float:
    """Age in years from NIH's encodings ('058Y', '011M', '001D', '58'); NaN if empty."""
    value = value.strip()
    if not value:
        return float("nan")
    m = _AGE.match(value)
    if m is None:
        raise ValueError(f"unreadable age {value!r}")
    return int(m.group(1)) * _AGE_UNIT_YEARS[m.group(2).upper()]


def encode_findings(findings: pd.Series, path: str | os.PathLike) -> np.ndarray:
    """One-hot encode '|'-separated NIH findings into an (n, 14) uint8 array in LABELS order."""
    tokens = findings.str.split("|")
    exploded = tokens.explode().str.strip()
    canon = exploded.map(lambda t: canonical_label(t) if t != NO_FINDING else NO_FINDING)
    unknown = canon.isna()
    if unknown.any():
        pos = int(np.argmax(unknown.to_numpy()))  # exploded rows share their row's index
        idx, token = unknown.index[pos], exploded.iloc[pos]
        raise DataError(
            f"{path}, line {csv_line(idx)}: unknown finding label {token!r} "
            f"(known: {', '.join(LABELS)}, or '{NO_FINDING}')"
        )
    mixed = canon.eq(NO_FINDING).groupby(level=0).any() & tokens.str.len().gt(1)
    if mixed.any():
        idx = mixed.idxmax()
        raise DataError(
            f"{path}, line {csv_line(idx)}: '{NO_FINDING}' combined with other findings "
            f"({findings[idx]!r})"
        )
    onehot = np.zeros((len(findings), len(LABELS)), dtype=np.uint8)
    found = canon[canon != NO_FINDING]
    col = {label: k for k, label in enumerate(LABELS)}
    onehot[found.index.to_numpy(), found.map(col).to_numpy()] = 1
    return onehot


def _read_raw(path: Path) -> pd.DataFrame:
    """The required columns of a metadata file as stripped strings, renamed to ours."""
    # index_col=False: the 2017 header has one field more than each row (trailing comma);
    # without it pandas would silently use the first column as the index.
    raw = read_text_csv(path, index_col=False)
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(repr(c) for c in raw.columns)}"
        )
    df = raw[list(REQUIRED_COLUMNS)].rename(columns=REQUIRED_COLUMNS)
    for c in df.columns:
        df[c] = df[c].str.strip()
    if df.empty:
        raise DataError(f"{path}: no data rows")
    return df


def _check_names(names: pd.Series, path: Path) -> None:
    for idx, name in names.items():
        check_image_name(name, f"{path}, line {csv_line(idx)}")
    dup = names.duplicated(keep=False)
    if dup.any():
        first = names[dup].iloc[0]
        lines = [str(csv_line(i)) for i in names.index[names == first]]
        raise DataError(
            f"{path}: duplicate image name {first!r} on lines {', '.join(lines)} "
            f"({int(dup.sum())} rows involved in duplicates)"
        )


def _ages(values: pd.Series, path: Path) -> np.ndarray:
    ages = np.empty(len(values))
    for i, (idx, value) in enumerate(values.items()):
        try:
            ages[i] = parse_age(value)
        except ValueError as exc:
            raise DataError(f"{path}, line {csv_line(idx)}: {exc}") from None
    implausible = ages > MAX_PLAUSIBLE_AGE
    if implausible.any():
        log.warning(
            "%s: %d implausible ages (> %d years) set to missing",
            path,
            implausible.sum(),
            MAX_PLAUSIBLE_AGE,
        )
        ages[implausible] = np.nan
    return np.round(ages, 3)


def read_data_entry(path: str | os.PathLike) -> pd.DataFrame:
    """Read an NIH ``Data_Entry_2017*.csv`` into a tidy table sorted by image name.

    Columns: META_COLUMNS and the 14 labels (0/1, LABELS order). Sorting by image name makes
    the 2017 and 2020 releases give the same row order.
    """
    path = Path(path)
    df = _read_raw(path)
    _check_names(df["image"], path)
    out = pd.DataFrame({"image": df["image"]})
    for col in ("patient", "follow_up"):
        num = pd.to_numeric(df[col], errors="coerce")
        if num.isna().any():
            idx = num.isna().idxmax()
            raise DataError(f"{path}, line {csv_line(idx)}: {col} {df[col][idx]!r} is not a number")
        out[col] = num.astype(np.int64)
    out["view"] = df["view"]
    out["age_years"] = _ages(df["age"], path)
    out["sex"] = df["sex"]
    out[list(LABELS)] = encode_findings(df["findings"], path)
    assert list(out.columns[: len(META_COLUMNS)]) == META_COLUMNS
    return out.sort_values("image", kind="stable").reset_index(drop=True)


def read_bbox_list(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``BBox_List_2017.csv`` into columns image, label (canonical), x, y, w, h.

    The header is ``Image Index,Finding Label,Bbox [x,y,w,h],,,``: the box header spans four
    fields, so columns are taken by position. NIH spells Infiltration 'Infiltrate' here.
    """
    path = Path(path)
    raw = pd.read_csv(path, header=None, skiprows=1, dtype=str, keep_default_na=False)
    if raw.shape[1] < 6:
        raise DataError(
            f"{path}: expected 6 columns (image, label, x, y, w, h), got {raw.shape[1]}"
        )
    raw = raw.iloc[:, :6]
    raw.columns = ["image", "label", "x", "y", "w", "h"]
    labels = raw["label"].str.strip().map(canonical_label)
    if labels.isna().any():
        idx = labels.isna().idxmax()
        raise DataError(
            f"{path}, line {csv_line(idx)}: unknown finding label {raw['label'][idx]!r}"
        )
    out = pd.DataFrame({"image": raw["image"].str.strip(), "label": labels})
    for c in ("x", "y", "w", "h"):
        num = pd.to_numeric(raw[c], errors="coerce")
        if num.isna().any():
            idx = num.isna().idxmax()
            raise DataError(
                f"{path}, line {csv_line(idx)}: box {c} {raw[c][idx]!r} is not a number"
            )
        out[c] = num.astype(float)
    return out


# The findings of the expert re-reads (Majkowska et al., Radiology 2020) in their file's order.
EXPERT_FINDINGS = ("Fracture", "Pneumothorax", "Airspace opacity", "Nodule or mass")
_EXPERT_VALUES = {"YES": 1, "NO": 0}


def read_expert_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``google2019_labels.csv`` (NIH images re-read by three radiologists) into columns
    image, set_id and one 0/1 column per ``EXPERT_FINDINGS``; every value must be YES or NO
    (errors name the file, line and column). CRLF or LF endings."""
    path = Path(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("Image Index", *EXPERT_FINDINGS, "Set Id") if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; is this google2019_labels.csv?")
    out = pd.DataFrame({"image": raw["Image Index"].str.strip(), "set_id": raw["Set Id"]})
    for c in EXPERT_FINDINGS:
        values = raw[c].str.strip().str.upper().map(_EXPERT_VALUES)
        if values.isna().any():
            idx = values.isna().idxmax()
            raise DataError(f"{path}, line {csv_line(idx)}: {c} is {raw[c][idx]!r}, not YES or NO")
        out[c] = values.astype(int)
    duplicated = out["image"].duplicated()
    if duplicated.any():
        idx = duplicated.idxmax()
        raise DataError(f"{path}, line {csv_line(idx)}: image {out['image'][idx]} listed twice")
    return out


def find_pngs(data_dir: str | os.PathLike) -> dict[str, str]:
    """Map image name -> path relative to ``data_dir`` for every PNG in the known layouts.

    Layouts: ``images/`` (NIH box download) and ``images_001/images/`` ... (the Kaggle mirror).
    One directory listing per folder: fast for 112,120 files, and no per-image ``stat``.
    """
    data_dir = Path(data_dir)
    folders = [Path("images")]
    folders += sorted(
        p.relative_to(data_dir) for p in data_dir.glob("images_*/images") if p.is_dir()
    )
    found: dict[str, str] = {}
    for folder in folders:
        if not (data_dir / folder).is_dir():
            continue
        with os.scandir(data_dir / folder) as it:
            for entry in it:
                if not entry.name.lower().endswith(".png"):
                    continue
                rel = str(folder / entry.name)
                if entry.name in found:
                    raise DataError(
                        f"{data_dir}: image {entry.name!r} found twice: "
                        f"{found[entry.name]} and {rel}"
                    )
                found[entry.name] = rel
    return found


class NIH(Layout):
    """An NIH download (box or Kaggle mirror) at ``data.nih_dir``."""

    name = "nih"
    vocabulary = "nih"
    folder_key = "nih_dir"
    labels = LABELS
    published_auroc_file = PUBLISHED_AUROC
    published_dataset = "NIH ChestX-ray14"
    wording = Wording(
        labels="NIH's labels",
        official_split="NIH's official split",
        official_test="NIH's official test list",
        label_note=(
            "NIH ChestX-ray14 labels were mined from radiology reports by NLP and are noisy "
            "(Wang et al. 2017; Oakden-Rayner 2019); test AUROCs measure agreement with them."
        ),
        expert_source="Majkowska et al., Radiology 2020: three radiologists per image",
    )

    image_places = "images/ or images_*/images/"
    views = ("PA", "AP")

    def data_dir(self, config: dict) -> str:
        return config["data"]["nih_dir"]

    def metadata_file(self, config: dict) -> str:
        return os.path.join(self.data_dir(config), config["data"]["metadata_csv"])

    def missing_paths(self, config: dict) -> list[str]:
        d = Path(self.data_dir(config))
        if not d.is_dir():
            return [f"data.nih_dir: folder {d} does not exist"]
        files = [("data.metadata_csv", self.metadata_file(config))]
        if config["split"]["method"] == "official":
            files += [("split.method official", p) for p in self.split_list_files(config).values()]
        missing = [f"{key}: file {p} does not exist" for key, p in files if not Path(p).is_file()]
        if not (d / "images").is_dir() and not any(d.glob("images_*/images")):
            missing.append(f"data.nih_dir: no image folder {d}/images or {d}/images_*/images")
        return missing

    def split_list_files(self, config: dict) -> dict[str, str]:
        d = self.data_dir(config)
        return {
            "train_val_list": os.path.join(d, "train_val_list.txt"),
            "test_list": os.path.join(d, "test_list.txt"),
        }

    def bbox_file(self, config: dict) -> str | None:
        path = os.path.join(self.data_dir(config), "BBox_List_2017.csv")
        return path if Path(path).is_file() else None

    def box_space(self, config: dict) -> int:
        return BOX_SPACE

    def expert_labels_file(self, config: dict) -> str | None:
        path = os.path.join(self.data_dir(config), config["data"]["expert_labels_csv"])
        return path if Path(path).is_file() else None

    def display_label(self, config: dict) -> str:
        return f"NIH ChestX-ray14, {views_phrase(config)}, {config['split']['method']} split"

    def metadata_release(self, path, sha256: str | None = None) -> str:
        known = KNOWN_METADATA.get(sha256 or sha256_of(path))
        if known:
            return known
        with open(path, "rb") as f:
            header = f.readline()
        if header.endswith(b",\r\n"):
            return "2017 release format (CRLF, trailing header comma), but not the original file"
        return "2020 re-release format (LF endings; sha256 not checked against a reference)"

    def count_patients(self, config: dict) -> int | None:
        path = self.metadata_file(config)
        return int(pd.read_csv(path, usecols=["Patient ID"])["Patient ID"].nunique())

    def locate_images(self, data_dir, table: pd.DataFrame) -> pd.Series:
        return table["image"].map(find_pngs(data_dir))

    read_metadata = staticmethod(read_data_entry)
    read_boxes = staticmethod(read_bbox_list)
    read_expert_labels = staticmethod(read_expert_labels)
