"""The parse stage: a data set's metadata through its layout, the views kept, and where each
image is on disk (``entries.csv``); its expert boxes and re-read labels in the project's own
formats (``boxes.csv``, ``expert_labels.csv``); and what the store records of that metadata.
Later stages read only these tables, never a data set's raw files. It sits above
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
    files: dict | None = None,
    options: dict | None = None,
) -> pd.DataFrame:
    """Parse the metadata, keep the images of ``views``, find each on disk and write the table
    the image stage reads.

    ``out_entries`` holds the image table plus ``path`` (relative to ``data_dir``). Images of
    other views are left out before anything else (listed in ``out_missing`` with their
    view); images listed in the metadata but absent on disk stop the run
    (``on_bad_image: error``) or are written to ``out_missing`` and left out (``skip``).
    ``files``: the layout's other parse inputs (``Layout.parse_inputs``), by their keys;
    ``options``: its ``parse_options``.
    """
    if on_bad_image not in ("error", "skip"):
        raise ValueError(f"on_bad_image must be 'error' or 'skip', not {on_bad_image!r}")
    lay = get_layout(layout)
    table = lay.read_table({**(files or {}), "metadata": metadata_csv}, **(options or {}))
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
    paths = lay.locate_images(data_dir, table)
    table = table.drop(columns="path", errors="ignore")
    table.insert(1, "path", paths.to_numpy())
    missing = table["path"].isna()
    if missing.any() and on_bad_image == "error":
        names = table.loc[missing, "image"].tolist()
        raise DataError(
            f"{len(names)} image(s) listed in {metadata_csv} not found under {data_dir} "
            f"({lay.image_places}), first: {names[0]!r} "
            "(set preprocess.on_bad_image: skip to drop them)"
        )
    skipped = pd.DataFrame(
        {"image": table.loc[missing, "image"], "path": "", "reason": "missing file"}
    )
    pd.concat([by_view, skipped], ignore_index=True).to_csv(out_missing, index=False)
    if missing.any():
        log.warning("%d image(s) missing on disk, skipped (see %s)", missing.sum(), out_missing)
    table = table.loc[~missing].reset_index(drop=True)
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


# The project's box table: one expert box per row, in the pixels of the stored images.
BOX_COLUMNS = ["image", "label", "x", "y", "w", "h"]


def write_boxes(layout: str, bbox_csv, box_space: int, size: int, out_csv) -> pd.DataFrame:
    """The layout's expert boxes, rescaled from its ``box_space`` pixels to the store's
    ``size`` (square images: the store keeps the whole image), as ``BOX_COLUMNS``."""
    boxes = get_layout(layout).read_boxes(bbox_csv)
    scale = size / box_space
    boxes[["x", "y", "w", "h"]] = boxes[["x", "y", "w", "h"]] * scale
    boxes[BOX_COLUMNS].to_csv(out_csv, index=False, float_format="%.4f")
    log.info("%d boxes of %d images, in %d-pixel images", len(boxes), boxes.image.nunique(), size)
    return boxes


def write_expert_labels(layout: str, expert_csv, out_csv) -> pd.DataFrame:
    """The layout's expert re-read labels as ``image, set_id`` and one 0/1 column per expert
    finding."""
    expert = get_layout(layout).read_expert_labels(expert_csv)
    expert.to_csv(out_csv, index=False)
    log.info("expert labels of %d images: %s", len(expert), ", ".join(expert.columns[2:]))
    return expert


def write_official_lists(layout: str, files: dict, out_train_val, out_test, out_val=None) -> None:
    """The official split of a layout that keeps it in its metadata (read from its parse
    inputs ``files``), as list files (one image name per line) that the split stage reads; an
    empty ``out_val`` where the layout does not fix the validation images."""
    lists = get_layout(layout).official_lists(files)
    outs = {"train_val_list": out_train_val, "test_list": out_test, "val_list": out_val}
    for key, out in outs.items():
        if out:
            Path(out).write_text("".join(f"{n}\n" for n in lists.get(key, [])))
    log.info("official split: %s", ", ".join(f"{len(v)} in {k}" for k, v in lists.items()))
