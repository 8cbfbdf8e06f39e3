"""Paired comparison of two models scored on the same test images.

The difference in AUROC (model b minus model a) per class and in mean AUROC, with a 95% CI from
a **paired** patient bootstrap: every replicate resamples the same patients for both models, so
what the two have in common (the images, their difficulty) cancels and only the difference
varies. Two-sided p-values: from the bootstrap distribution of the difference, and per class
from DeLong's test (DeLong et al. 1988, Biometrics 44:837; the fast form of Sun and Xu 2014,
IEEE SPL 21:1389), which treats images as independent and so is the less conservative of the
two when patients have several images. Statistics: docs/evaluation.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

from cxr14.metrics import nanmean, patient_resamples, per_class_auroc, percentile_ci


def delong_test(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray) -> tuple[float, float]:
    """DeLong's test of AUROC(b) - AUROC(a) for one class on the same images.

    Returns (difference, two-sided p). NaN when the class has only one label value.
    """
    y = np.asarray(y).astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return float("nan"), float("nan")
    scores = np.vstack([p_a, p_b])
    pos, neg = scores[:, y], scores[:, ~y]
    # Structural components from midranks (ties count one half).
    tz = rankdata(np.hstack([pos, neg]), axis=1)
    tx, ty = rankdata(pos, axis=1), rankdata(neg, axis=1)
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1) / (2 * n)
    v10 = (tz[:, :m] - tx) / n  # per positive: share of negatives ranked below it
    v01 = 1 - (tz[:, m:] - ty) / m  # per negative: share of positives ranked above it
    cov = np.cov(v10) / m + np.cov(v01) / n
    diff = float(aucs[1] - aucs[0])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 1e-15:
        return diff, 1.0 if abs(diff) < 1e-12 else 0.0
    return diff, float(2 * norm.sf(abs(diff) / np.sqrt(var)))


def _bootstrap_p(diffs: np.ndarray) -> np.ndarray:
    """Two-sided p per column: twice the smaller share of replicates on either side of 0."""
    valid = ~np.isnan(diffs)
    count = valid.sum(axis=0)
    below = np.where(valid, diffs <= 0, False).sum(axis=0)
    above = np.where(valid, diffs >= 0, False).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.minimum(1.0, 2 * np.minimum(below, above) / count)
    return np.where(count > 0, p, np.nan)


def paired_bootstrap(y, p_a, p_b, groups, n_boot=1000, seed=0) -> np.ndarray:
    """Replicates (n_boot, classes + 1) of AUROC(b) - AUROC(a), per class and of the mean,
    each on the same resampled patients for both models."""
    diffs = np.full((n_boot, y.shape[1] + 1), np.nan)
    for b, idx in enumerate(patient_resamples(groups, n_boot, seed)):
        a_auc, b_auc = per_class_auroc(y[idx], p_a[idx]), per_class_auroc(y[idx], p_b[idx])
        diffs[b, :-1] = b_auc - a_auc
        diffs[b, -1] = nanmean(b_auc) - nanmean(a_auc)
    return diffs


def compare_models(y, p_a, p_b, groups, labels, n_boot=1000, seed=0, alpha=0.05) -> pd.DataFrame:
    """One row per class and a ``mean`` row: both AUROCs, their difference (b - a) with a
    paired patient-bootstrap CI and p-value, and DeLong's p-value per class."""
    auc_a, auc_b = per_class_auroc(y, p_a), per_class_auroc(y, p_b)
    diffs = paired_bootstrap(y, p_a, p_b, groups, n_boot, seed)
    low, high = percentile_ci(diffs, alpha)
    p_boot = _bootstrap_p(diffs)
    delong = [delong_test(y[:, k], p_a[:, k], p_b[:, k])[1] for k in range(y.shape[1])]
    table = pd.DataFrame(
        {
            "label": [*labels, "mean"],
            "n_pos": [*y.sum(axis=0).astype(int), int(y.sum())],
            "auroc_a": [*auc_a, nanmean(auc_a)],
            "auroc_b": [*auc_b, nanmean(auc_b)],
            "difference": [*(auc_b - auc_a), nanmean(auc_b) - nanmean(auc_a)],
            "ci_low": low,
            "ci_high": high,
            "p_bootstrap": p_boot,
            "p_delong": [*delong, np.nan],
        }
    )
    return table
