"""Sharded downsampling into HDF5 and the merge, on the 24 real images."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from cxr14 import DataError
from cxr14.entries import build_entries
from cxr14.files import replacing
from cxr14.imageio import load_gray
from cxr14.layouts.nih import LABELS
from cxr14.store import content_sha256, downsample_shard, merge_shards, shard_bounds


@pytest.mark.parametrize("n, k", [(24, 5), (10, 10), (3, 5), (112_120, 32)])
def test_shard_bounds_cover_every_row_once(n, k):
    bounds = [shard_bounds(n, s, k) for s in range(k)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1


def _store(tmp_path, data_dir, n_shards=3, on_bad_image="error", threads=2, size=64):
    entries, missing = tmp_path / "entries.csv", tmp_path / "missing.csv"
    build_entries("nih", data_dir, data_dir / "Data_Entry_2017.csv", on_bad_image, entries, missing)
    shards = []
    for s in range(n_shards):
        shards.append(tmp_path / f"shard{s}.h5")
        downsample_shard(
            entries, data_dir, s, n_shards, shards[-1], size, "bilinear", on_bad_image, threads
        )
    out = tmp_path / "store.h5", tmp_path / "labels.csv", tmp_path / "skipped.csv"
    merge_shards(shards, entries, missing, *out, attrs={"source": "nih"})
    return out


def test_store_matches_direct_decoding(tmp_path, nih_copy):
    store, labels_csv, skipped_csv = _store(tmp_path, nih_copy)
    labels = pd.read_csv(labels_csv)
    assert list(labels.columns) == [
        "image",
        "patient",
        "follow_up",
        "view",
        "age_years",
        "sex",
        *LABELS,
    ]
    assert len(pd.read_csv(skipped_csv)) == 0
    with h5py.File(store) as h5:
        assert h5["images"].shape == (24, 64, 64) and h5["images"].dtype == np.uint8
        assert h5["image_index"].asstr()[:].tolist() == labels["image"].tolist()
        assert h5.attrs["source"] == "nih" and h5.attrs["size"] == 64
        recorded = h5.attrs["content_sha256"]
    # The content hash provenance records name the store by: its images and names, recomputed.
    assert recorded == content_sha256(store) and len(recorded) == 64
    with h5py.File(store) as h5:
        for i, name in enumerate(labels["image"]):
            expect = load_gray(nih_copy / "images" / name, 64)
            np.testing.assert_array_equal(h5["images"][i], expect)


def test_shard_count_does_not_change_the_store(tmp_path, nih_copy):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _store(tmp_path / "a", nih_copy, n_shards=1, threads=1)
    b = _store(tmp_path / "b", nih_copy, n_shards=7, threads=2)
    with h5py.File(a[0]) as ha, h5py.File(b[0]) as hb:
        np.testing.assert_array_equal(ha["images"][:], hb["images"][:])
    assert a[1].read_text() == b[1].read_text()


def _corrupt(nih_copy):
    """Three kinds of broken files among the real ones."""
    (nih_copy / "images" / "00000003_001.png").write_bytes(b"")
    real = (nih_copy / "images" / "00000005_000.png").read_bytes()
    (nih_copy / "images" / "00000005_000.png").write_bytes(real[:5000])
    (nih_copy / "images" / "00000008_000.png").write_bytes(b"GIF89a not a png")
    (nih_copy / "images" / "00000001_002.png").unlink()


def test_bad_image_stops_the_run_naming_the_file(tmp_path, nih_copy):
    _corrupt(nih_copy)
    (nih_copy / "images" / "00000001_002.png").write_bytes(b"")  # only content errors here
    entries, missing = tmp_path / "entries.csv", tmp_path / "missing.csv"
    build_entries("nih", nih_copy, nih_copy / "Data_Entry_2017.csv", "error", entries, missing)
    out = tmp_path / "shard.h5"
    with pytest.raises(DataError, match=r"00000001_002.png: zero-byte file .*on_bad_image: skip"):
        downsample_shard(entries, nih_copy, 0, 1, out, 32, "bilinear", "error", 2)
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_skip_lists_every_bad_image_and_drops_it(tmp_path, nih_copy):
    _corrupt(nih_copy)
    store, labels_csv, skipped_csv = _store(tmp_path, nih_copy, on_bad_image="skip")
    skipped = pd.read_csv(skipped_csv).set_index("image")["reason"]
    assert skipped.to_dict() == {
        "00000001_002.png": "missing file",
        "00000003_001.png": "zero-byte file",
        "00000005_000.png": skipped["00000005_000.png"],
        "00000008_000.png": skipped["00000008_000.png"],
    }
    assert skipped["00000005_000.png"].startswith("truncated or corrupt PNG")
    assert skipped["00000008_000.png"].startswith("not a PNG file")
    labels = pd.read_csv(labels_csv)
    assert len(labels) == 20 and not set(skipped.index) & set(labels["image"])
    with h5py.File(store) as h5:
        assert h5["image_index"].asstr()[:].tolist() == labels["image"].tolist()
        assert h5.attrs["n_skipped"] == 4


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path, error):
    """cxr14.files.replacing, which every output outside Snakemake's care is written through
    (stores, checkpoints, bundles, model cards, predictions, ONNX files)."""
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(error), replacing(path) as tmp:
        tmp.write_text("half")
        raise error("interrupted")
    assert path.read_text() == "old" and sorted(tmp_path.iterdir()) == [path]
    with replacing(path, ".partial") as tmp:
        assert tmp.name == "out.csv.partial"
        tmp.write_text("new")
    assert path.read_text() == "new" and sorted(tmp_path.iterdir()) == [path]
