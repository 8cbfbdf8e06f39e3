"""Oversampling index for the class imbalance: LVIS's repeat-factor sampling (Gupta et al.,
CVPR 2019) over the training split, with seeded stochastic rounding. The formula and its
effect on the real metadata: docs/method.md.

The index holds row numbers of ``labels.csv`` (= rows of the HDF5 store), sorted; the training
sampler shuffles it every epoch.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from cxr14.metadata import positives, read_labels

log = logging.getLogger(__name__)


def class_repeat_factors(labels: np.ndarray, threshold: float, power: float = 0.5) -> np.ndarray:
    """r_c for each class (1 for classes at or above the threshold, or absent)."""
    freq = labels.mean(axis=0)
    with np.errstate(divide="ignore"):
        r = np.where(freq > 0, (threshold / np.maximum(freq, 1e-12)) ** power, 1.0)
    return np.maximum(r, 1.0)


def image_repeat_factors(
    labels: np.ndarray, threshold: float, power: float = 0.5, max_repeat: float = 10.0
) -> np.ndarray:
    """r_i for each image: the largest repeat factor among its positive classes."""
    r_c = class_repeat_factors(labels, threshold, power)
    r_i = np.max(np.where(labels > 0, r_c[None, :], 1.0), axis=1, initial=1.0)
    return np.minimum(r_i, max_repeat)


def oversample_index(
    rows: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    power: float = 0.5,
    max_repeat: float = 10.0,
    seed: int = 0,
) -> np.ndarray:
    """Row numbers ``rows`` repeated by their stochastically rounded image repeat factors."""
    r = image_repeat_factors(labels, threshold, power, max_repeat)
    rng = np.random.default_rng(seed)
    copies = np.floor(r).astype(np.int64) + (rng.random(len(r)) < r - np.floor(r))
    return np.repeat(np.asarray(rows, dtype=np.int64), copies)


def make_oversample_index(
    labels_csv: str | os.PathLike,
    splits_csv: str | os.PathLike,
    out_index: str | os.PathLike,
    out_table: str | os.PathLike,
    enabled: bool = True,
    threshold: float = 0.1,
    power: float = 0.5,
    max_repeat: float = 10.0,
    seed: int = 0,
) -> np.ndarray:
    """Write the training index (``.npy``, int64 rows of labels.csv) and a before/after table.
    Rare classes are counted by their definite positives (uncertain labels are not), so the
    index is the same under every label policy."""
    table, labels = read_labels(labels_csv)
    splits = pd.read_csv(splits_csv)
    if not table["image"].equals(splits["image"]):
        raise ValueError(f"{splits_csv} does not list the images of {labels_csv} in order")
    rows = np.flatnonzero(splits["split"].to_numpy() == "train")
    y_all = positives(table, labels)
    y = y_all[rows]
    if enabled:
        index = oversample_index(rows, y, threshold, power, max_repeat, seed)
    else:
        index = rows.astype(np.int64)
    np.save(out_index, index)
    after = y_all[index]
    out = pd.DataFrame(
        {
            "before": y.sum(0),
            "before_%": 100 * y.mean(0),
            "after": after.sum(0),
            "after_%": 100 * after.mean(0),
            "class_repeat_factor": class_repeat_factors(y, threshold, power)
            if enabled
            else np.ones(len(labels)),
        },
        index=pd.Index(labels, name="label"),
    )
    total = pd.DataFrame(
        {"before": [len(rows)], "after": [len(index)]}, index=pd.Index(["images"], name="label")
    )
    pd.concat([out.round(3), total]).to_csv(out_table)
    log.info("training index: %d rows -> %d samples (enabled=%s)", len(rows), len(index), enabled)
    return index
