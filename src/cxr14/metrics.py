"""Classification metrics (scikit-learn), tolerant of classes without positives."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def per_class_auroc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """AUROC per column; NaN where a column has only one label value (AUROC undefined)."""
    out = np.full(y_true.shape[1], np.nan)
    for k in range(y_true.shape[1]):
        if 0 < y_true[:, k].sum() < len(y_true):
            out[k] = roc_auc_score(y_true[:, k], y_score[:, k])
    return out


def per_class_ap(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Average precision (area under the precision-recall curve, step-wise as scikit-learn)
    per column; NaN where a column has no positives. A random model's AP is the prevalence."""
    out = np.full(y_true.shape[1], np.nan)
    for k in range(y_true.shape[1]):
        if y_true[:, k].sum() > 0:
            out[k] = average_precision_score(y_true[:, k], y_score[:, k])
    return out


def nanmean(values: np.ndarray) -> float:
    """Mean over the defined (non-NaN) values; NaN if none is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values))


def mean_auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean over the classes where AUROC is defined (NaN if none is)."""
    return nanmean(per_class_auroc(y_true, y_score))


def patient_resamples(groups: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of ``n_boot`` bootstrap replicates that resample groups (patients) with
    replacement, keeping each group's rows together: images of one patient are correlated, so
    resampling them one by one would make the intervals too narrow. Seeded."""
    rng = np.random.default_rng(seed)
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        yield np.concatenate([members[g] for g in pick])


def percentile_ci(stats: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the (alpha/2, 1 - alpha/2) percentiles over replicates (rows), NaN ignored;
    an all-NaN column (e.g. a class without positives) stays NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanpercentile(stats, 100 * alpha / 2, axis=0)
        high = np.nanpercentile(stats, 100 * (1 - alpha / 2), axis=0)
    return low, high
