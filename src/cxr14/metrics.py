"""Classification metrics (scikit-learn; AUROC in its rank form), tolerant of classes without
positives, and the patient bootstrap."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score


def per_class_auroc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """AUROC per column; NaN where a column has only one label value (AUROC undefined).

    All columns at once in the Mann-Whitney form (midranks: a tie counts one half), which
    equals scikit-learn's ``roc_auc_score`` (tested) without its per-call checks: bootstraps
    call this thousands of times."""
    if not np.isin(y_true, (0, 1)).all():  # NaN or -1 would count as positives below
        raise ValueError("labels must be 0 or 1 (NaN or other values found)")
    y = np.asarray(y_true).astype(bool)
    score = np.asarray(y_score, dtype=np.float64)
    if np.isnan(score).any():
        raise ValueError("scores contain NaN: AUROC undefined (did the model diverge?)")
    n_pos = y.sum(axis=0)
    n_neg = len(y) - n_pos
    rank_sum = (rankdata(score, axis=0) * y).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


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


def defined_share(stats: np.ndarray) -> np.ndarray:
    """Per column, the share of replicates (rows) in which the statistic is defined (not NaN):
    below 1 where a resample can miss every positive patient of a class."""
    return (~np.isnan(stats)).mean(axis=0) if len(stats) else np.zeros(stats.shape[1])


# The note of a value whose interval ``percentile_ci`` leaves empty.
NO_CI_NOTE = "no 95% CI: too few positive patients for a bootstrap interval"


def percentile_ci(stats: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the (alpha/2, 1 - alpha/2) percentiles over replicates (rows), NaN ignored.

    A column defined in fewer than 1 - alpha of the replicates gets NaN: a 95% interval cannot
    be read off the 90% of replicates that happened to draw a positive (with n positive
    patients about exp(-n) of the resamples draw none: 2 or fewer always lose the interval,
    3 sometimes, by the draw of the replicates, 4 or more practically never)."""
    ok = defined_share(stats) >= 1 - alpha
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanpercentile(stats, 100 * alpha / 2, axis=0)
        high = np.nanpercentile(stats, 100 * (1 - alpha / 2), axis=0)
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def per_class_brier(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Brier score (mean squared error of the probability) per column: 0 is perfect, a model
    always predicting the prevalence q scores q(1 - q). Defined for any labels."""
    return (
        ((y_score - y_true) ** 2).mean(axis=0) if len(y_true) else np.full(y_true.shape[1], np.nan)
    )


def calibration_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10):
    """One class's predictions in ``n_bins`` equal-width probability bins ([0, 0.1), ...,
    [0.9, 1.0]): the count, mean predicted probability and observed positive fraction per
    bin (NaN where a bin is empty)."""
    idx = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=p, minlength=n_bins) / count
        frac_pos = np.bincount(idx, weights=y, minlength=n_bins) / count
    return count, mean_p, frac_pos


def per_class_ece(y_true: np.ndarray, y_score: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Expected calibration error per column (Guo et al. 2017, binary form): the count-weighted
    mean over equal-width bins of |observed positive fraction - mean predicted probability|.
    0 is perfect; NaN for no rows."""
    out = np.full(y_true.shape[1], np.nan)
    if not len(y_true):
        return out
    for k in range(y_true.shape[1]):
        count, mean_p, frac_pos = calibration_bins(y_true[:, k], y_score[:, k], n_bins)
        filled = count > 0
        out[k] = (count[filled] * np.abs(frac_pos[filled] - mean_p[filled])).sum() / count.sum()
    return out
