"""The project's image table, whatever the data set: names, patients and 0/1 labels.

A layout (``cxr14.layouts``) parses its own files into this table; ``build_entries`` adds where
each image is on disk. Every later stage reads the label list from the table's columns
(``label_columns``), never from a layout.
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


def build_entries(
    layout: str,
    data_dir: str | os.PathLike,
    metadata_csv: str | os.PathLike,
    on_bad_image: str,
    out_entries: str | os.PathLike,
    out_missing: str | os.PathLike,
    views=("PA", "AP"),
) -> pd.DataFrame:
    """Parse the metadata, keep the images of ``views``, find each on disk and write the table
    the image stage reads.

    ``out_entries`` holds the image table plus ``path`` (relative to ``data_dir``). Images of
    other views are left out before anything else (listed in ``out_missing`` with their
    view); images listed in the metadata but absent on disk stop the run
    (``on_bad_image: error``) or are written to ``out_missing`` and left out (``skip``).
    """
    from cxr14.layouts import get_layout

    if on_bad_image not in ("error", "skip"):
        raise ValueError(f"on_bad_image must be 'error' or 'skip', not {on_bad_image!r}")
    lay = get_layout(layout)
    table = lay.read_metadata(metadata_csv)
    other_view = ~table["view"].isin(views)
    by_view = pd.DataFrame(
        {
            "image": table.loc[other_view, "image"],
            "path": "",
            "reason": "view " + table.loc[other_view, "view"].astype(str) + " not in data.views",
        }
    )
    if other_view.any():
        log.info("%d image(s) of other views than %s left out", other_view.sum(), list(views))
    table = table.loc[~other_view].reset_index(drop=True)
    if table.empty:
        raise DataError(f"no image of the views {list(views)} in {metadata_csv} (data.views)")
    paths = lay.locate_images(data_dir)
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
    pd.concat([by_view, skipped], ignore_index=True).to_csv(out_missing, index=False)
    if missing.any():
        log.warning("%d image(s) missing on disk, skipped (see %s)", missing.sum(), out_missing)
    table = table.loc[~missing].reset_index(drop=True)
    if len(paths) > len(table):
        log.info("%d image file(s) on disk are not in the metadata", len(paths) - len(table))
    table.to_csv(out_entries, index=False)
    log.info("%d images from %d patients in %s", len(table), table.patient.nunique(), out_entries)
    return table


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance(layout: str, metadata_csv: str | os.PathLike, views) -> dict[str, str]:
    """What a result must say about the metadata it came from: the file's name and sha256,
    the release the layout recognises it as, and the views kept (the store's attributes)."""
    from cxr14.layouts import get_layout

    sha256 = sha256_of(metadata_csv)
    return {
        "metadata_file": Path(metadata_csv).name,
        "metadata_sha256": sha256,
        "metadata_release": get_layout(layout).metadata_release(metadata_csv, sha256),
        "views": ", ".join(views),
    }
