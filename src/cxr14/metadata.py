"""The project's image table, whatever the data set: names, patients and 0/1 labels.

A layout (``cxr14.layouts``) parses its own files into this table (``cxr14.entries`` adds where
each image is on disk). Every later stage reads the label list from the table's columns
(``label_columns``), never from a layout. This module imports no layout: layouts build on it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pandas as pd

from cxr14.errors import DataError

log = logging.getLogger(__name__)

# The first columns of results/metadata/labels.csv, in order; one 0/1 column per label follows.
META_COLUMNS = ["image", "patient", "follow_up", "view", "age_years", "sex"]
# Row name of the images without any finding (in NIH's metadata, too).
NO_FINDING = "No Finding"
# Columns a stage may add after the meta columns that are not labels.
NOT_LABELS = {"path"}


def label_columns(table: pd.DataFrame) -> list[str]:
    """The label columns of an image table, in order (all columns after the meta columns)."""
    return [c for c in table.columns if c not in META_COLUMNS and c not in NOT_LABELS]


def read_labels(labels_csv: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """``labels.csv`` and its label list."""
    table = pd.read_csv(labels_csv)
    return table, label_columns(table)


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
