"""Repeat-factor oversampling: the formula by hand, and its effect on the real metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr14.layouts.nih import LABELS, read_data_entry
from cxr14.oversample import (
    class_repeat_factors,
    image_repeat_factors,
    make_oversample_index,
    oversample_index,
)
from cxr14.splits import make_splits


def test_repeat_factors_by_hand():
    # 100 images, 3 classes with frequencies 0.5, 0.04, 0.01 (and one class absent).
    y = np.zeros((100, 4), np.uint8)
    y[:50, 0] = 1
    y[:4, 1] = 1
    y[99, 2] = 1
    r_c = class_repeat_factors(y, threshold=0.16, power=0.5)
    np.testing.assert_allclose(r_c, [1.0, 2.0, 4.0, 1.0])  # sqrt(0.16/0.04), sqrt(0.16/0.01)
    r_i = image_repeat_factors(y, threshold=0.16, power=0.5, max_repeat=3)
    assert r_i[0] == 2.0  # max over its classes (1 and 2)
    assert r_i[99] == 3.0  # capped
    assert r_i[60] == 1.0  # no finding
    np.testing.assert_allclose(class_repeat_factors(y, 0.16, power=1.0)[1:3], [4, 16])


def test_stochastic_rounding_has_the_right_expectation():
    y = np.zeros((20_000, 2), np.uint8)
    y[:2_000, 0] = 1  # frequency 0.1 -> r = sqrt(0.25 / 0.1) = 1.58
    idx = oversample_index(np.arange(20_000), y, threshold=0.25, seed=0)
    copies = np.bincount(idx, minlength=20_000)
    assert set(copies[2_000:]) == {1}
    assert set(copies[:2_000]) == {1, 2}
    assert copies[:2_000].mean() == pytest.approx(np.sqrt(2.5), abs=0.03)


def test_real_metadata(nih_dir, tmp_path):
    labels = tmp_path / "labels.csv"
    read_data_entry(nih_dir / "Data_Entry_2017.csv").to_csv(labels, index=False)
    make_splits(labels, tmp_path / "splits.csv", tmp_path / "counts.csv", seed=42)
    out = tmp_path / "idx.npy", tmp_path / "table.csv"
    idx = make_oversample_index(labels, tmp_path / "splits.csv", *out, threshold=0.1, seed=0)
    splits = pd.read_csv(tmp_path / "splits.csv")
    train = np.flatnonzero(splits["split"] == "train")
    assert idx.dtype == np.int64 and set(np.unique(idx)) == set(train)  # every image kept
    assert np.all(np.diff(idx) >= 0)
    table = pd.read_csv(out[1], index_col=0)
    # Hernia (0.2%) is raised by the cap (8x expected); Infiltration (17.7%) is not repeated.
    assert table.loc["Hernia", "after"] / table.loc["Hernia", "before"] == pytest.approx(7, rel=0.1)
    assert table.loc["Hernia", "after_%"] > 4 * table.loc["Hernia", "before_%"]
    assert table.loc["Infiltration", "class_repeat_factor"] == 1.0
    assert table.loc["images", "after"] == len(idx)
    # The same seed gives the same index; a different one differs.
    again = make_oversample_index(labels, tmp_path / "splits.csv", *out, threshold=0.1, seed=0)
    np.testing.assert_array_equal(idx, again)
    other = make_oversample_index(labels, tmp_path / "splits.csv", *out, threshold=0.1, seed=1)
    assert len(other) != len(idx) or not np.array_equal(other, idx)
    plain = make_oversample_index(labels, tmp_path / "splits.csv", *out, enabled=False)
    np.testing.assert_array_equal(plain, train)
    assert (pd.read_csv(out[1], index_col=0).loc[list(LABELS), "class_repeat_factor"] == 1).all()
