"""Classification metrics (scikit-learn), tolerant of classes without positives."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import roc_auc_score


def per_class_auroc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """AUROC per column; NaN where a column has only one label value (AUROC undefined)."""
    out = np.full(y_true.shape[1], np.nan)
    for k in range(y_true.shape[1]):
        if 0 < y_true[:, k].sum() < len(y_true):
            out[k] = roc_auc_score(y_true[:, k], y_score[:, k])
    return out


def nanmean(values: np.ndarray) -> float:
    """Mean over the defined (non-NaN) values; NaN if none is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(values))


def mean_auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean over the classes where AUROC is defined (NaN if none is)."""
    return nanmean(per_class_auroc(y_true, y_score))
