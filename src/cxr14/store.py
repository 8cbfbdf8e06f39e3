"""The HDF5 image store: downsample shards of the data set in parallel, then merge them.

Layout of the merged store (``results/hdf5/images_<size>.h5``):

- ``images``: (N, size, size) uint8, rows in the order of ``results/metadata/labels.csv``;
- ``image_index``: (N,) file names, the same order;
- attributes: source, data_dir, size, resize method, label order, creating package version,
  ``content_sha256`` (``content_sha256``: what provenance records name the store by).

Each shard job streams its rows in blocks (memory stays flat however large the data set) and
writes to a temporary file that is renamed only when complete, so an interrupted run leaves no
half-written shard that could pass as finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

import cxr14
from cxr14.dicom import decode_images
from cxr14.errors import DataError
from cxr14.files import replacing
from cxr14.logs import console_progress
from cxr14.metadata import META_COLUMNS, label_columns

log = logging.getLogger(__name__)

BLOCK = 256  # images per HDF5 write; 16 MiB at 256x256
STR = h5py.string_dtype()
SKIPPED_FIELDS = ("image", "path", "reason")  # columns of results/tables/skipped_images.csv


def shard_bounds(n_rows: int, shard: int, n_shards: int) -> tuple[int, int]:
    """Contiguous [start, stop) rows of shard ``shard`` of ``n_shards`` (sizes differ by <= 1)."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range for {n_shards} shards")
    base, extra = divmod(n_rows, n_shards)
    start = shard * base + min(shard, extra)
    return start, start + base + (shard < extra)


class _ShardWriter:
    """Appends images to a resizable HDF5 dataset in blocks of BLOCK rows."""

    def __init__(self, h5: h5py.File, size: int, chunk_rows: int):
        self.ds = h5.create_dataset(
            "images",
            shape=(0, size, size),
            maxshape=(None, size, size),
            dtype=np.uint8,
            chunks=(max(1, min(BLOCK, chunk_rows)), size, size),
        )
        self.buf = np.empty((BLOCK, size, size), np.uint8)
        self.n = 0

    def add(self, arr: np.ndarray) -> None:
        self.buf[self.n] = arr
        self.n += 1
        if self.n == BLOCK:
            self.flush()

    def flush(self) -> None:
        if self.n:
            n0 = self.ds.shape[0]
            self.ds.resize(n0 + self.n, axis=0)
            self.ds[n0:] = self.buf[: self.n]
            self.n = 0


def downsample_shard(
    entries_csv: str | os.PathLike,
    data_dir: str | os.PathLike,
    shard: int,
    n_shards: int,
    out_h5: str | os.PathLike,
    size: int = 256,
    resample: str = "bilinear",
    on_bad_image: str = "error",
    threads: int = 1,
    formats=("PNG",),
) -> int:
    """Downsample shard ``shard`` of the rows in ``entries_csv`` into ``out_h5``, decoding the
    layout's ``formats`` (PNG, JPEG, DICOM: ``cxr14.dicom.load_image``).

    Returns the number of images written. Bad images stop the run (``on_bad_image: error``)
    with a message naming the file, or are recorded in the shard's ``skipped_*`` datasets.
    """
    entries = pd.read_csv(entries_csv, usecols=["image", "path"], dtype=str)
    start, stop = shard_bounds(len(entries), shard, n_shards)
    part = entries.iloc[start:stop]
    paths = [os.path.join(data_dir, p) for p in part["path"]]
    names: list[str] = []
    skipped: list[tuple[str, str, str]] = []
    with replacing(out_h5, ".partial") as tmp, h5py.File(tmp, "w") as h5:
        writer = _ShardWriter(h5, size, len(part))
        # One thread decodes in the loop's own thread (no pool).
        decoded = decode_images(paths, size, resample, threads if threads > 1 else 0, formats)
        rows = zip(part["image"], part["path"], paths, decoded, strict=True)
        desc = f"shard {shard + 1}/{n_shards}"
        bar = tqdm(rows, total=len(paths), desc=desc, mininterval=5)
        for name, rel, path, (arr, reason) in console_progress(bar, len(paths), f"{desc}, images"):
            if arr is not None:
                writer.add(arr)
                names.append(name)
            elif on_bad_image == "skip":
                log.warning("skipping %s: %s", path, reason)
                skipped.append((name, rel, reason))
            else:
                raise DataError(
                    f"{path}: {reason} (image {name}; set preprocess.on_bad_image: skip "
                    "to drop bad images and list them in results/tables/skipped_images.csv)"
                )
        writer.flush()
        h5.create_dataset("image_index", data=np.array(names, dtype=object), dtype=STR)
        for i, field in enumerate(SKIPPED_FIELDS):
            column = np.array([s[i] for s in skipped], dtype=object)
            h5.create_dataset(f"skipped_{field}", data=column, dtype=STR)
        h5.attrs["rows"] = json.dumps([start, stop])
    log.info(
        "shard %d/%d: %d images written, %d skipped", shard + 1, n_shards, len(names), len(skipped)
    )
    return len(names)


def _read_shards(shard_paths) -> tuple[list[str], list[pd.DataFrame], int]:
    """Names of the stored images, the skipped-image tables and the common image size."""
    kept: list[str] = []
    skipped, shapes = [], []
    for p in shard_paths:
        with h5py.File(p, "r") as h5:
            kept.extend(h5["image_index"].asstr()[:])
            skipped.append(pd.DataFrame({f: h5[f"skipped_{f}"].asstr()[:] for f in SKIPPED_FIELDS}))
            shapes.append(h5["images"].shape)
    if len(set(s[1:] for s in shapes)) > 1:
        raise DataError(f"shards have different image sizes: {sorted(set(shapes))}")
    return kept, skipped, shapes[0][1]


def _write_store(tmp: Path, shard_paths, kept: list[str], size: int, attrs: dict) -> None:
    n = len(kept)
    # track_times=False: identical inputs give an identical store, byte for byte.
    with h5py.File(tmp, "w", track_order=True) as out:
        ds = out.create_dataset(
            "images",
            shape=(n, size, size),
            dtype=np.uint8,
            chunks=(min(64, n), size, size),
            track_times=False,
        )
        # The content hash is taken of the blocks as they are copied: the store is read once.
        digest = _content_digest(_copy_blocks(shard_paths, ds), kept)
        out.create_dataset(
            "image_index", data=np.array(kept, dtype=object), dtype=STR, track_times=False
        )
        for k, v in {**attrs, "content_sha256": digest}.items():
            out.attrs[k] = v


def _copy_blocks(shard_paths, ds) -> Iterator[np.ndarray]:
    """Copy the shards' images into ``ds`` in order, BLOCK rows at a time; yield each block."""
    row = 0
    for p in shard_paths:
        with h5py.File(p, "r") as h5:
            src = h5["images"]
            for i in range(0, src.shape[0], BLOCK):
                block = src[i : i + BLOCK]
                ds[row : row + len(block)] = block
                row += len(block)
                yield block


def _content_digest(blocks: Iterable[np.ndarray], names: Iterable[str]) -> str:
    """sha256 of the images' bytes in store order, then their names (one per line)."""
    digest = hashlib.sha256()
    for block in blocks:
        digest.update(np.ascontiguousarray(block).tobytes())
    digest.update("\n".join(names).encode())
    return digest.hexdigest()


def content_sha256(store_h5) -> str:
    """The hash of a store's content (``_content_digest``), recomputed from the file; the
    merge records it as the ``content_sha256`` attribute."""
    with h5py.File(store_h5, "r") as h5:
        images = h5["images"]
        blocks = (images[i : i + BLOCK] for i in range(0, images.shape[0], BLOCK))
        return _content_digest(blocks, h5["image_index"].asstr()[:])


def merge_shards(
    shard_paths: Sequence[str | os.PathLike],
    entries_csv: str | os.PathLike,
    missing_csv: str | os.PathLike,
    out_h5: str | os.PathLike,
    out_labels: str | os.PathLike,
    out_skipped: str | os.PathLike,
    attrs: dict | None = None,
) -> int:
    """Concatenate shards (in order) into the final store and write the matching label table.

    ``out_labels`` has exactly the stored images, in store order; ``out_skipped`` lists every
    image left out (missing at parse time or bad at decode time) with its reason. The store's
    ``labels`` attribute is the label list of ``entries_csv``.
    """
    entries = pd.read_csv(entries_csv)
    label_list = label_columns(entries)
    kept, skipped, size = _read_shards(shard_paths)
    missing = pd.read_csv(missing_csv, dtype=str, keep_default_na=False)
    skipped_df = pd.concat([missing, *skipped], ignore_index=True)[list(SKIPPED_FIELDS)]
    if not kept:
        raise DataError("no images left to store (every image was skipped)")
    store_attrs = {
        "labels": json.dumps(label_list),
        "size": size,
        "n_skipped": len(skipped_df),
        "cxr14_version": cxr14.__version__,
        **(attrs or {}),
    }
    with replacing(out_h5, ".partial") as tmp:
        _write_store(tmp, shard_paths, kept, size, store_attrs)
    labels = entries.set_index("image").loc[kept].reset_index()
    labels[[*META_COLUMNS, *label_list]].to_csv(out_labels, index=False)
    skipped_df.to_csv(out_skipped, index=False)
    n = len(kept)
    log.info("store %s: %d images of %dx%d, %d skipped", out_h5, n, size, size, len(skipped_df))
    return n


def foreign_stores(store_dir: str | os.PathLike, source: str, data_dir: str) -> list[str]:
    """The stores in ``store_dir`` built from another data set than ``source`` at
    ``data_dir`` (their ``source`` and ``data_dir`` attributes), each as a one-line problem:
    a configuration of one data set run in a folder holding another's results would mix or
    overwrite them."""
    problems = []
    for path in sorted(Path(store_dir).glob("images_*.h5")):
        with h5py.File(path, "r") as h5:
            theirs = (str(h5.attrs.get("source", "")), str(h5.attrs.get("data_dir", "")))
        if theirs[0] and (theirs[0], os.path.abspath(theirs[1])) != (
            source,
            os.path.abspath(data_dir),
        ):
            problems.append(
                f"{path} holds the data set {theirs[0]!r} at {theirs[1]}, this configuration's "
                f"is {source!r} at {data_dir}: run each data set in its own folder "
                "(snakemake --directory <folder> ...; docs/outputs.md), or move results/ away"
            )
    return problems
