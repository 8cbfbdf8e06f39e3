"""The average image and pixel std, streamed from the store."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from cxr14.average_image import compute_average_image


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1100, 16, 16), dtype=np.uint8)
    with h5py.File(tmp_path / "s.h5", "w") as h5:
        h5["images"] = images
    split = np.where(rng.random(1100) < 0.8, "train", "test")
    pd.DataFrame({"image": np.arange(1100), "split": split}).to_csv(tmp_path / "sp.csv")
    return tmp_path, images, split


@pytest.mark.parametrize("over", ["train", "all"])
def test_average_image_matches_numpy(store, over):
    tmp, images, split = store
    sel = images[split == "train"] if over == "train" else images
    out = compute_average_image(tmp / "s.h5", tmp / "a.npy", tmp / "p.json", tmp / "sp.csv", over)
    assert out.dtype == np.float32 and out.shape == (16, 16)
    np.testing.assert_allclose(np.load(tmp / "a.npy"), sel.mean(axis=0), rtol=1e-6)
    stats = json.loads((tmp / "p.json").read_text())
    assert stats["n_images"] == len(sel) and stats["over"] == over
    assert stats["mean"] == pytest.approx(sel.mean())
    assert stats["std"] == pytest.approx(sel.std(), rel=1e-9)


def test_train_average_excludes_test_images(store):
    tmp, images, split = store
    images[split == "test"] = 255  # test images would pull the mean to white
    with h5py.File(tmp / "s.h5", "w") as h5:
        h5["images"] = images
    out = compute_average_image(tmp / "s.h5", tmp / "a.npy", tmp / "p.json", tmp / "sp.csv")
    assert out.max() < 200


def test_mismatched_splits_are_refused(store):
    tmp, _, _ = store
    pd.read_csv(tmp / "sp.csv").iloc[:-1].to_csv(tmp / "short.csv")
    with pytest.raises(ValueError, match="has 1099 rows"):
        compute_average_image(tmp / "s.h5", tmp / "a.npy", tmp / "p.json", tmp / "short.csv")
