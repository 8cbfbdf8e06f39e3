"""The project's image table, whatever the data set: names, patients and labels.

A label is 1 (positive), 0 (negative), -1 (uncertain: the report hedges) or blank (the report
does not mention it); NIH has only 1 and 0. ``label_targets`` turns them into what training and
evaluation use under the configured policy (``data.uncertain``, ``data.blank``): 1, 0 or NaN
(unknown: masked out of every loss and metric). The table keeps the raw values, so changing the
policy reruns training and evaluation, never the store.

A layout (``cxr14.layouts``) parses its own files into this table (``cxr14.entries`` adds where
each image is on disk). Every later stage reads the label list from the table's columns
(``label_columns``), never from a layout. This module imports no layout: layouts build on it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxr14.errors import DataError

log = logging.getLogger(__name__)

# The first columns of results/metadata/labels.csv, in order; one 0/1 column per label follows.
META_COLUMNS = ["image", "patient", "follow_up", "view", "age_years", "sex"]
# Row name of the images without any finding (in NIH's metadata, too).
NO_FINDING = "No Finding"
# Columns a stage may add after the meta columns that are not labels.
NOT_LABELS = {"path"}
# The raw value of an uncertain label.
UNCERTAIN = -1
# What an uncertain / a blank label becomes (the CheXpert paper's U-Ignore, U-Zeros, U-Ones).
UNCERTAIN_POLICIES = {"ignore": np.nan, "zeros": 0.0, "ones": 1.0}
BLANK_POLICIES = {"negative": 0.0, "unknown": np.nan}


def label_columns(table: pd.DataFrame) -> list[str]:
    """The label columns of an image table, in order (all columns after the meta columns)."""
    return [c for c in table.columns if c not in META_COLUMNS and c not in NOT_LABELS]


def read_labels(labels_csv: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """``labels.csv`` (raw label values) and its label list."""
    table = pd.read_csv(labels_csv)
    return table, label_columns(table)


def label_targets(values, uncertain: str | None = None, blank: str | None = None) -> np.ndarray:
    """Raw labels (1, 0, -1, NaN for blank) as float32 targets under a policy: uncertain
    (-1) -> ``UNCERTAIN_POLICIES[uncertain]``, blank -> ``BLANK_POLICIES[blank]``. Without a
    policy (a data set whose labels are all known, such as NIH's) every label must be 0 or 1."""
    y = np.asarray(values, dtype=np.float64)
    if uncertain is None and blank is None:
        if not np.isin(y, (0, 1)).all():
            raise ValueError(
                "labels hold uncertain (-1) or blank values, but no label policy was given "
                "(data.uncertain, data.blank)"
            )
        return y.astype(np.float32)
    if uncertain not in UNCERTAIN_POLICIES or blank not in BLANK_POLICIES:
        raise ValueError(
            f"label policy uncertain={uncertain!r}, blank={blank!r}: expected one of "
            f"{list(UNCERTAIN_POLICIES)} and one of {list(BLANK_POLICIES)}"
        )
    bad = ~np.isnan(y) & ~np.isin(y, (0, 1, UNCERTAIN))
    if bad.any():
        raise ValueError(f"label value {y[bad][0]!r} is none of 1, 0, -1 or blank")
    out = np.where(y == UNCERTAIN, UNCERTAIN_POLICIES[uncertain], y)
    out = np.where(np.isnan(y), BLANK_POLICIES[blank], out)
    return out.astype(np.float32)


def positives(table: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """Where each label is positive (1), whatever the policy: what splits stratify on and
    count, so that changing the policy keeps the splits."""
    return (table[labels].to_numpy(dtype=np.float64) == 1).astype(np.int64)


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


def csv_line(index) -> int:
    """1-based file line of a data row of a CSV read with pandas (the header is line 1)."""
    return int(index) + 2


def read_text_csv(path, **kwargs) -> pd.DataFrame:
    """A CSV (gzipped too) with every cell a string and blanks kept as ''; an unreadable or
    empty file is a DataError naming it."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: file is empty") from exc


def parse_label_cells(raw: pd.DataFrame, labels, path, line_of) -> np.ndarray:
    """Label columns of a CSV read as strings into floats: ``1``/``1.0``, ``0``/``0.0``,
    ``-1``/``-1.0`` (uncertain) or blank (NaN); any other value is a DataError naming
    ``path``, the line (``line_of(row index)``) and the column."""
    out = np.empty((len(raw), len(labels)))
    for k, label in enumerate(labels):
        text = raw[label].astype(str).str.strip()
        values = pd.to_numeric(text.replace("", "nan"), errors="coerce")
        bad = (values.notna() & ~values.isin((1, 0, UNCERTAIN))) | (values.isna() & text.ne(""))
        if bad.any():
            idx = bad.idxmax()
            raise DataError(
                f"{path}, line {line_of(idx)}, column {label!r}: value {raw[label][idx]!r} is "
                "none of 1, 0, -1 (uncertain) or blank"
            )
        out[:, k] = values.to_numpy(dtype=np.float64)
    return out


def read_image_list(path: str | os.PathLike) -> list[str]:
    """Read an official split list: one image name per line (final newline optional, CRLF
    tolerated), as NIH ships them."""
    path = Path(path)
    names = [line.strip() for line in path.read_text().splitlines()]
    names = [n for n in names if n]
    for i, n in enumerate(names):
        check_image_name(n, f"{path}, line {i + 1}")
    return names


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
