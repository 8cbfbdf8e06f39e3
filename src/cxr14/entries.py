"""The parse stage: a data set's metadata through its layout, the views kept, and where each
image is on disk (``entries.csv``); and what the store records of that metadata. It sits above
``cxr14.layouts``, which sits above ``cxr14.metadata`` (no import cycle)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from cxr14.errors import DataError
from cxr14.layouts import get_layout
from cxr14.metadata import sha256_of

log = logging.getLogger(__name__)


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


def provenance(layout: str, metadata_csv: str | os.PathLike, views) -> dict[str, str]:
    """What a result must say about the metadata it came from: the file's name and sha256,
    the release the layout recognises it as, and the views kept (the store's attributes)."""
    sha256 = sha256_of(metadata_csv)
    return {
        "metadata_file": Path(metadata_csv).name,
        "metadata_sha256": sha256,
        "metadata_release": get_layout(layout).metadata_release(metadata_csv, sha256),
        "views": ", ".join(views),
    }
