"""Parsers for the NIH ChestX-ray14 metadata files.

Survives both releases of ``Data_Entry_2017.csv``: the 2017 file (CRLF line endings, a trailing
comma in the header, ages such as ``058Y``/``011M``/``001D``) and the 2020 re-release (LF, integer
ages, rows re-ordered by patient). Every error names the file and the 1-based line at fault.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cxr14.errors import DataError
from cxr14.labels import LABELS, NO_FINDING, canonical_label

log = logging.getLogger(__name__)

# NIH column name -> our column name. Other NIH columns (original size, pixel spacing) are
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
# Columns of results/metadata/labels.csv, in order.
LABEL_TABLE_COLUMNS = ["image", "patient", "follow_up", "view", "age_years", "sex", *LABELS]
# Ages above this are data-entry errors in the NIH file (up to 414Y); they become missing.
MAX_PLAUSIBLE_AGE = 120
_AGE = re.compile(r"^(\d+)\s*([YMD]?)$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"": 1.0, "Y": 1.0, "M": 1 / 12, "D": 1 / 365.25}
METADATA_NAMES = ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv")


def _line(index: int) -> int:
    """1-based file line of a data row (the header is line 1)."""
    return int(index) + 2


def check_image_name(name: str, where: str) -> None:
    """Reject an image name that is empty or could address a file outside the data directory."""
    bad = (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or os.path.isabs(name)
    )
    if bad:
        raise DataError(
            f"{where}: image name {name!r} is not a plain file name; it would escape the "
            "data directory or is empty"
        )


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
            f"{path}, line {_line(idx)}: unknown finding label {token!r} "
            f"(known: {', '.join(LABELS)}, or '{NO_FINDING}')"
        )
    mixed = canon.eq(NO_FINDING).groupby(level=0).any() & tokens.str.len().gt(1)
    if mixed.any():
        idx = mixed.idxmax()
        raise DataError(
            f"{path}, line {_line(idx)}: '{NO_FINDING}' combined with other findings "
            f"({findings[idx]!r})"
        )
    onehot = np.zeros((len(findings), len(LABELS)), dtype=np.uint8)
    found = canon[canon != NO_FINDING]
    col = {label: k for k, label in enumerate(LABELS)}
    onehot[found.index.to_numpy(), found.map(col).to_numpy()] = 1
    return onehot


def read_data_entry(path: str | os.PathLike) -> pd.DataFrame:
    """Read an NIH ``Data_Entry_2017*.csv`` into a tidy table sorted by image name.

    Columns: image, patient, follow_up, view, age_years, sex and the 14 labels (0/1, LABELS
    order). Sorting by image name makes the 2017 and 2020 releases give the same row order.
    """
    path = Path(path)
    try:
        # index_col=False: the 2017 header has one field more than each row (trailing comma);
        # without it pandas would silently use the first column as the index.
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: file is empty") from exc
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

    for idx, name in df["image"].items():
        check_image_name(name, f"{path}, line {_line(idx)}")
    dup = df["image"].duplicated(keep=False)
    if dup.any():
        first = df.loc[dup, "image"].iloc[0]
        lines = [str(_line(i)) for i in df.index[df["image"] == first]]
        raise DataError(
            f"{path}: duplicate image name {first!r} on lines {', '.join(lines)} "
            f"({int(dup.sum())} rows involved in duplicates)"
        )

    out = pd.DataFrame({"image": df["image"]})
    for col in ("patient", "follow_up"):
        num = pd.to_numeric(df[col], errors="coerce")
        if num.isna().any():
            idx = num.isna().idxmax()
            raise DataError(f"{path}, line {_line(idx)}: {col} {df[col][idx]!r} is not a number")
        out[col] = num.astype(np.int64)
    out["view"] = df["view"]
    ages = np.empty(len(df))
    for i, (idx, value) in enumerate(df["age"].items()):
        try:
            ages[i] = parse_age(value)
        except ValueError as exc:
            raise DataError(f"{path}, line {_line(idx)}: {exc}") from None
    implausible = ages > MAX_PLAUSIBLE_AGE
    if implausible.any():
        log.warning(
            "%s: %d implausible ages (> %d years) set to missing",
            path,
            implausible.sum(),
            MAX_PLAUSIBLE_AGE,
        )
        ages[implausible] = np.nan
    out["age_years"] = np.round(ages, 3)
    out["sex"] = df["sex"]
    out[list(LABELS)] = encode_findings(df["findings"], path)
    return out.sort_values("image", kind="stable").reset_index(drop=True)


def read_image_list(path: str | os.PathLike) -> list[str]:
    """Read an NIH split list (one image name per line; no final newline; CRLF tolerated)."""
    path = Path(path)
    names = [line.strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n]
    for i, n in enumerate(names):
        check_image_name(n, f"{path}, line {i + 1}")
    return names


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
        raise DataError(f"{path}, line {_line(idx)}: unknown finding label {raw['label'][idx]!r}")
    out = pd.DataFrame({"image": raw["image"].str.strip(), "label": labels})
    for c in ("x", "y", "w", "h"):
        num = pd.to_numeric(raw[c], errors="coerce")
        if num.isna().any():
            idx = num.isna().idxmax()
            raise DataError(f"{path}, line {_line(idx)}: box {c} {raw[c][idx]!r} is not a number")
        out[c] = num.astype(float)
    return out


def find_metadata_csv(data_dir: str | os.PathLike) -> Path:
    """The metadata table in an NIH download: the 2017 release, else the 2020 one."""
    for name in METADATA_NAMES:
        if (Path(data_dir) / name).is_file():
            return Path(data_dir) / name
    raise DataError(f"{data_dir}: none of {', '.join(METADATA_NAMES)} found")


def locate_images(data_dir: str | os.PathLike) -> dict[str, str]:
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
        full = data_dir / folder
        if not full.is_dir():
            continue
        with os.scandir(full) as it:
            for entry in it:
                if entry.name.lower().endswith(".png"):
                    rel = str(folder / entry.name)
                    if entry.name in found:
                        raise DataError(
                            f"{data_dir}: image {entry.name!r} found twice: "
                            f"{found[entry.name]} and {rel}"
                        )
                    found[entry.name] = rel
    return found


def build_entries(
    data_dir: str | os.PathLike,
    metadata_csv: str | os.PathLike,
    on_bad_image: str,
    out_entries: str | os.PathLike,
    out_missing: str | os.PathLike,
) -> pd.DataFrame:
    """Parse the metadata, find each image on disk and write the table the image stage reads.

    ``out_entries`` holds LABEL_TABLE_COLUMNS plus ``path`` (relative to ``data_dir``).
    Images listed in the metadata but absent on disk stop the run (``on_bad_image: error``) or
    are written to ``out_missing`` and left out (``skip``).
    """
    if on_bad_image not in ("error", "skip"):
        raise ValueError(f"on_bad_image must be 'error' or 'skip', not {on_bad_image!r}")
    table = read_data_entry(metadata_csv)
    paths = locate_images(data_dir)
    table.insert(1, "path", table["image"].map(paths))
    missing = table["path"].isna()
    if missing.any() and on_bad_image == "error":
        names = table.loc[missing, "image"].tolist()
        raise DataError(
            f"{len(names)} image(s) listed in {metadata_csv} not found under {data_dir}/images "
            f"or {data_dir}/images_*/images, first: {names[0]!r} "
            "(set preprocess.on_bad_image: skip to drop them)"
        )
    skipped = pd.DataFrame(
        {"image": table.loc[missing, "image"], "path": "", "reason": "missing file"}
    )
    skipped.to_csv(out_missing, index=False)
    if missing.any():
        log.warning("%d image(s) missing on disk, skipped (see %s)", missing.sum(), out_missing)
    table = table.loc[~missing].reset_index(drop=True)
    extra = len(paths) - len(table)
    if extra > 0:
        log.info("%d PNG file(s) on disk are not in the metadata and are ignored", extra)
    table.to_csv(out_entries, index=False)
    log.info("%d images from %d patients in %s", len(table), table.patient.nunique(), out_entries)
    return table
