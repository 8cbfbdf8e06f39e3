"""The project's statistics, in one place: classification and calibration metrics
(scikit-learn; AUROC in its rank form) tolerant of classes without positives and of unknown
labels (NaN: each class is scored over the images where its label is known), the patient
bootstrap and its percentile CIs, operating points (Youden, fixed sensitivity), DeLong's test of
two AUROCs, bootstrap p-values and Wilson intervals. Stage modules (evaluate, expert, subgroups,
compare, localization, bundle) call these; derivations are in docs/evaluation.md.

SciPy and scikit-learn are imported by the functions that use them: a job that only draws or
tabulates (``calibration_bins``, ``roc_points``) starts without them."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np


def known_rows(y_true: np.ndarray, k: int) -> np.ndarray:
    """Rows where column ``k``'s label is known (not NaN)."""
    return ~np.isnan(np.asarray(y_true, dtype=np.float64)[:, k])


def per_class_auroc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """AUROC per column over the rows where its label is known (NaN: unknown); NaN where a
    column has only one label value (AUROC undefined).

    All columns at once in the Mann-Whitney form (midranks: a tie counts one half), which
    equals scikit-learn's ``roc_auc_score`` (tested) without its per-call checks: bootstraps
    call this thousands of times. Columns with unknown labels are ranked one by one."""
    y_true = np.asarray(y_true, dtype=np.float64)
    score = np.asarray(y_score, dtype=np.float64)
    if np.isnan(score).any():
        raise ValueError("scores contain NaN: AUROC undefined (did the model diverge?)")
    unknown = np.isnan(y_true)
    if unknown.any():
        out = np.full(y_true.shape[1], np.nan)
        for k in range(y_true.shape[1]):
            m = ~unknown[:, k]
            out[k] = per_class_auroc(y_true[m, k : k + 1], score[m, k : k + 1])[0]
        return out
    if not np.isin(y_true, (0, 1)).all():  # -1 would count as a positive below
        raise ValueError("labels must be 0, 1 or NaN (unknown); other values found")
    y = y_true.astype(bool)
    from scipy.stats import rankdata

    n_pos = y.sum(axis=0)
    n_neg = len(y) - n_pos
    rank_sum = (rankdata(score, axis=0) * y).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def per_class_ap(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Average precision (area under the precision-recall curve, step-wise as scikit-learn)
    per column over its known labels; NaN where a column has no positives. A random model's
    AP is the prevalence."""
    from sklearn.metrics import average_precision_score

    out = np.full(y_true.shape[1], np.nan)
    for k in range(y_true.shape[1]):
        m = known_rows(y_true, k)
        if y_true[m, k].sum() > 0:
            out[k] = average_precision_score(y_true[m, k], y_score[m, k])
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


def stratified_resamples(
    groups: np.ndarray, strata: np.ndarray, n_boot: int, seed: int
) -> Iterator[np.ndarray]:
    """``patient_resamples`` within each stratum (a cross-validation fold): every replicate
    draws each fold's own number of patients from that fold, so a fold model is always scored
    on patients of its own fold (Efron and Tibshirani 1993, section 8.3: the stratified
    bootstrap). Seeded."""
    levels = np.unique(strata)
    rows = [np.flatnonzero(strata == s) for s in levels]
    streams = [patient_resamples(groups[r], n_boot, seed + i) for i, r in enumerate(rows)]
    for picks in zip(*streams, strict=True):
        yield np.concatenate([r[pick] for r, pick in zip(rows, picks, strict=True)])


def fold_resamples(groups, folds, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """``patient_resamples``, or ``stratified_resamples`` within the ``folds`` when given."""
    if folds is None:
        return patient_resamples(groups, n_boot, seed)
    return stratified_resamples(groups, folds, n_boot, seed)


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
    always predicting the prevalence q scores q(1 - q). Over each column's known labels; NaN
    for none."""
    return np.array([nanmean((y_score[:, k] - y_true[:, k]) ** 2) for k in range(y_true.shape[1])])


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
    0 is perfect. Over each column's known labels; NaN for none."""
    out = np.full(y_true.shape[1], np.nan)
    for k in range(y_true.shape[1]):
        m = known_rows(y_true, k)
        if not m.any():
            continue
        count, mean_p, frac_pos = calibration_bins(y_true[m, k], y_score[m, k], n_bins)
        filled = count > 0
        out[k] = (count[filled] * np.abs(frac_pos[filled] - mean_p[filled])).sum() / count.sum()
    return out


# ------------------------------------------------------------- bootstrap CIs of metrics


# The last calibration fit and the arrays it was of: slope and intercept come from one fit, and
# the bootstrap asks for both of the same replicate in turn (the arrays are kept, so their
# identity is not reused).
_LAST_FIT: list = [None, None, None]


def _calibration_fit(y_true: np.ndarray, y_score: np.ndarray):
    from cxr14.calibration import calibration_slope_intercept

    if _LAST_FIT[0] is not y_true or _LAST_FIT[1] is not y_score:
        _LAST_FIT[:] = [y_true, y_score, calibration_slope_intercept(y_true, y_score)]
    return _LAST_FIT[2]


def per_class_cal_slope(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Calibration slope per column (1 when calibrated; below 1: too extreme)."""
    return _calibration_fit(y_true, y_score)[0]


def per_class_cal_intercept(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Calibration intercept per column (0 when calibrated; negative: predicted too high),
    fitted jointly with the slope."""
    return _calibration_fit(y_true, y_score)[1]


# Per-class metrics reported with a patient-bootstrap CI: discrimination (AUROC, average
# precision) and calibration (Brier score, expected calibration error: lower is better; the
# calibration slope and intercept: 1 and 0 are calibrated).
METRICS = {
    "auroc": per_class_auroc,
    "ap": per_class_ap,
    "brier": per_class_brier,
    "ece": per_class_ece,
    "cal_slope": per_class_cal_slope,
    "cal_intercept": per_class_cal_intercept,
}


def bootstrap_metrics(
    y, p, groups, n_boot=1000, seed=0, alpha=0.05, metrics=None, functions=None
) -> dict:
    """Percentile CIs of the ``metrics`` (names of ``METRICS``; all by default) and of the
    further ``functions`` (name -> fn(y, p) -> per-class values) per class and of their mean
    over classes, resampling patients (not images) with replacement: {metric: (low, high)},
    arrays of length classes + 1 (the last: the mean). All metrics use the same replicates."""
    chosen = {m: METRICS[m] for m in metrics or METRICS} | (functions or {})
    stats = {m: np.full((n_boot, y.shape[1] + 1), np.nan) for m in chosen}
    for b, idx in enumerate(patient_resamples(groups, n_boot, seed)):
        yb, pb = y[idx], p[idx]  # once per replicate, shared by every metric
        for m, fn in chosen.items():
            values = fn(yb, pb)
            stats[m][b, :-1] = values
            stats[m][b, -1] = nanmean(values)
    return {m: percentile_ci(s, alpha) for m, s in stats.items()}


def bootstrap_auroc(y, p, groups, n_boot=1000, seed=0, alpha=0.05):
    """Percentile CIs of per-class and mean AUROC (``bootstrap_metrics``' AUROC part: the same
    replicates as there)."""
    return bootstrap_metrics(y, p, groups, n_boot, seed, alpha, ["auroc"])["auroc"]


# --------------------------------------------------------------------- operating points


def youden_thresholds(y_val: np.ndarray, p_val: np.ndarray) -> np.ndarray:
    """Per class, the validation threshold maximising Youden's J = sensitivity + specificity
    - 1 over its known labels (0.5 where the validation split has no positives or no
    negatives)."""
    out = np.full(y_val.shape[1], 0.5)
    for k in range(y_val.shape[1]):
        m = known_rows(y_val, k)
        if 0 < y_val[m, k].sum() < m.sum():
            fpr, tpr, thr = roc_points(y_val[m, k], p_val[m, k])
            out[k] = min(float(thr[np.argmax(tpr - fpr)]), 1.0)
    return out


def _roc_counts(y: np.ndarray, p: np.ndarray):
    """True and false positives at every distinct score, from the highest, and the scores."""
    order = np.argsort(p, kind="mergesort")[::-1]
    score, label = np.asarray(p, dtype=np.float64)[order], np.asarray(y)[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # each distinct score's end
    tps = np.cumsum(label)[last].astype(np.float64)
    return tps, 1 + last - tps, score[last]


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One class's ROC curve as scikit-learn's ``roc_curve`` gives it (equal, tested): false
    and true positive rates at each distinct score from the highest, collinear points dropped,
    starting at (0, 0) with threshold inf. In NumPy: figures draw it without scikit-learn."""
    tps, fps, thr = _roc_counts(y, p)
    if len(fps) > 2:
        bends = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        keep = np.flatnonzero(np.r_[True, bends, True])
        tps, fps, thr = tps[keep], fps[keep], thr[keep]
    tps, fps, thr = np.r_[0, tps], np.r_[0, fps], np.r_[np.inf, thr]
    with np.errstate(invalid="ignore", divide="ignore"):
        return fps / fps[-1], tps / tps[-1], thr


def rates_at(y: np.ndarray, p: np.ndarray, thresholds) -> dict[str, np.ndarray]:
    """Per class at its threshold (predicted positive: p >= threshold), over the known labels:
    ``recall`` (sensitivity), ``specificity``, ``precision`` (PPV) and ``npv`` at this test
    set's prevalence; NaN where a rate has no denominator."""
    pred = p >= np.asarray(thresholds)[None, :]
    pos, neg = y == 1, y == 0
    tp, fn = (pred & pos).sum(axis=0), (~pred & pos).sum(axis=0)
    fp, tn = (pred & neg).sum(axis=0), (~pred & neg).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "recall": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
            "specificity": np.where(tn + fp > 0, tn / (tn + fp), np.nan),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
            "npv": np.where(tn + fn > 0, tn / (tn + fn), np.nan),
        }


def rate_at_fixed(y: np.ndarray, p: np.ndarray, target: float, fixed: str) -> np.ndarray:
    """Per class, a point of this set's own ROC curve: the highest sensitivity among the
    thresholds reaching specificity >= ``target`` (``fixed="specificity"``), or the highest
    specificity reaching sensitivity >= ``target`` (``fixed="sensitivity"``); over the known
    labels, NaN without positives or negatives. Every distinct threshold counts (none dropped
    as collinear, which would lose achievable points)."""
    out = np.full(y.shape[1], np.nan)
    for k in range(y.shape[1]):
        m = known_rows(y, k)
        yk, pk = y[m, k], p[m, k]
        n_pos, n_neg = (yk == 1).sum(), (yk == 0).sum()
        if not n_pos or not n_neg:
            continue
        tps, fps, _ = _roc_counts(yk, pk)
        tpr, spec = np.r_[0, tps] / n_pos, 1 - np.r_[0, fps] / n_neg
        ok = (spec >= target) if fixed == "specificity" else (tpr >= target)
        out[k] = (tpr if fixed == "specificity" else spec)[ok].max()
    return out


def operating_functions(thresholds: dict, fixed_rates=()) -> dict:
    """The bootstrapped operating-point metrics (``bootstrap_metrics``' ``functions``): each
    rate of ``rates_at`` at each named set of per-class thresholds (``recall_at_val``, ...),
    and ``sensitivity_at_spec_<r>`` / ``specificity_at_sens_<r>`` for each of ``fixed_rates``."""
    out = {}
    for name, t in thresholds.items():
        for rate in ("recall", "specificity", "precision", "npv"):
            out[f"{rate}_at_{name}"] = lambda y, p, t=t, rate=rate: rates_at(y, p, t)[rate]
    for r in fixed_rates:
        out[f"sensitivity_at_spec_{r:g}"] = lambda y, p, r=r: rate_at_fixed(y, p, r, "specificity")
        out[f"specificity_at_sens_{r:g}"] = lambda y, p, r=r: rate_at_fixed(y, p, r, "sensitivity")
    return out


def sensitivity_thresholds(y_val: np.ndarray, p_val: np.ndarray, sensitivity: float) -> np.ndarray:
    """Per class, the highest threshold at which at least ``sensitivity`` of the validation
    positives are predicted positive (0.5 where the validation split has no positives)."""
    out = np.full(y_val.shape[1], 0.5)
    for k in range(y_val.shape[1]):
        pos = np.sort(p_val[y_val[:, k] == 1, k])[::-1]
        if len(pos):
            out[k] = float(pos[int(np.ceil(sensitivity * len(pos))) - 1])
    return out


def operating_point(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Confusion counts and rates of one class at one threshold, over its known labels."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

    known = ~np.isnan(np.asarray(y, dtype=np.float64))
    y, p = np.asarray(y)[known].astype(int), np.asarray(p)[known]
    if not len(y):  # no image with this label known: nothing to count
        counts = dict.fromkeys(("tp", "tn", "fp", "fn", "predicted_pos"), 0)
        rates = dict.fromkeys(("precision", "recall", "specificity", "f1"), np.nan)
        return {"threshold": float(threshold), **counts, **rates}
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "threshold": float(threshold),
        "tp": int(tp),
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "predicted_pos": int(tp + fp),
        "precision": precision_score(y, pred, zero_division=np.nan),
        "recall": recall_score(y, pred, zero_division=np.nan),
        "specificity": recall_score(y, pred, pos_label=0, zero_division=np.nan),
        "f1": f1_score(y, pred, zero_division=np.nan),
    }


# ---------------------------------------------------------------- tests and intervals


def delong_test(
    y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, groups=None
) -> tuple[float, float]:
    """DeLong's test of AUROC(b) - AUROC(a) for one class on the same images, over the images
    where the label is known.

    Returns (difference, two-sided p). With ``groups`` (the patient of each image) the variance
    is Obuchowski's (1997) for clustered data: each patient's structural components are summed
    before their covariance is taken, so several images of one patient are not counted as
    independent evidence (DeLong's own variance, without groups, rejects a true null too often
    then; docs/evaluation.md). The difference is NaN without positives or negatives; the p-value
    is NaN with fewer than two of either, or when the variance is zero (``DELONG_UNDEFINED``).
    """
    from scipy.stats import norm

    known = ~np.isnan(np.asarray(y, dtype=np.float64))
    y, p_a, p_b = np.asarray(y)[known].astype(bool), np.asarray(p_a)[known], np.asarray(p_b)[known]
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return float("nan"), float("nan")
    aucs, v10, v01 = _structural_components(y, np.vstack([p_a, p_b]))
    diff = float(aucs[1] - aucs[0])
    if m < 2 or n < 2:
        return diff, float("nan")
    if groups is None:
        cov = np.cov(v10) / m + np.cov(v01) / n
    else:
        cov = _clustered_covariance(y, np.asarray(groups)[known], aucs, v10, v01)
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if not var > 1e-15:
        return diff, float("nan")
    return diff, float(2 * norm.sf(abs(diff) / np.sqrt(var)))


# Said where ``delong_test`` gives no p-value.
DELONG_UNDEFINED = "DeLong undefined: fewer than 2 positives or negatives, or no variance"


def _structural_components(y: np.ndarray, scores: np.ndarray):
    """AUROCs of the score rows, and DeLong's structural components from midranks (ties count
    one half): per positive the share of negatives ranked below it (``v10``), per negative the
    share of positives ranked above it (``v01``)."""
    from scipy.stats import rankdata

    m, n = int(y.sum()), int((~y).sum())
    pos, neg = scores[:, y], scores[:, ~y]
    tz = rankdata(np.hstack([pos, neg]), axis=1)
    tx, ty = rankdata(pos, axis=1), rankdata(neg, axis=1)
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1) / (2 * n)
    return aucs, (tz[:, :m] - tx) / n, 1 - (tz[:, m:] - ty) / m


def _clustered_covariance(y, groups, aucs, v10, v01) -> np.ndarray:
    """Obuchowski (1997), equations (2)-(5): with I clusters, M positives and N negatives,
    S10 = I/((I-1)M) sum_i (V10_i - m_i A)(V10_i - m_i A)', S01 alike over negatives,
    S11 = I/(I-1) sum_i (V10_i - m_i A)(V01_i - n_i A)', and
    cov(A) = S10/M + S01/N + (S11 + S11')/(MN), where V10_i sums cluster i's positive
    components (m_i of them) and V01_i its negative ones (n_i)."""
    _, cluster = np.unique(groups, return_inverse=True)
    n_clusters = int(cluster.max()) + 1
    if n_clusters < 2:  # one patient: no variance between patients to estimate
        return np.full((len(aucs), len(aucs)), np.nan)
    m, n = v10.shape[1], v01.shape[1]
    sums = []
    for rows, comp in ((y, v10), (~y, v01)):
        total = np.zeros((len(aucs), n_clusters))
        np.add.at(total.T, cluster[rows], comp.T)
        count = np.bincount(cluster[rows], minlength=n_clusters)
        sums.append(total - count[None, :] * aucs[:, None])
    d10, d01 = sums
    f = n_clusters / (n_clusters - 1)
    s10, s01, s11 = f / m * d10 @ d10.T, f / n * d01 @ d01.T, f * d10 @ d01.T
    return s10 / m + s01 / n + (s11 + s11.T) / (m * n)


def bootstrap_p_value(diffs: np.ndarray, alpha: float) -> np.ndarray:
    """Two-sided p per column: twice the smaller of (1 + replicates at or below 0) and (1 +
    replicates at or above 0), over (replicates + 1), at most 1 (Davison and Hinkley 1997, eq.
    4.11: a Monte-Carlo p-value is never 0); NaN where the difference is undefined in more
    replicates than ``percentile_ci`` accepts."""
    valid = ~np.isnan(diffs)
    count = valid.sum(axis=0)
    below = np.where(valid, diffs <= 0, False).sum(axis=0)
    above = np.where(valid, diffs >= 0, False).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.minimum(1.0, 2 * (1 + np.minimum(below, above)) / (count + 1))
    return np.where((count > 0) & (defined_share(diffs) >= 1 - alpha), p, np.nan)


def holm(p_values) -> np.ndarray:
    """Holm's (1979) step-down adjustment of a family of p-values for the family-wise error
    rate: the i-th smallest of the m defined ones is multiplied by m - i + 1, made
    non-decreasing, capped at 1. NaN stays NaN and does not count in m."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    order = defined[np.argsort(p[defined], kind="stable")]
    m = len(order)
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Agreement of two raters' 0/1 labels beyond chance (Cohen's kappa, scikit-learn's) where
    both are known; NaN where both give one value only (undefined)."""
    from sklearn.metrics import cohen_kappa_score

    known = ~(np.isnan(np.asarray(a, dtype=np.float64)) | np.isnan(np.asarray(b, dtype=np.float64)))
    a, b = np.asarray(a)[known], np.asarray(b)[known]
    return float(cohen_kappa_score(a, b)) if len(np.unique(np.r_[a, b])) > 1 else np.nan


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion k/n (NaN for n = 0): unlike the normal
    approximation it stays inside [0, 1] and has width at 0/n and n/n."""
    if n == 0:
        return (np.nan, np.nan)
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence, method="wilson")
    return (float(ci.low), float(ci.high))


# ------------------------------------------------------- runs: stacks of seeds and folds


def as_stack(p) -> np.ndarray:
    """Predictions as a stack of replicates (S, n, C); a 2-D array is one replicate."""
    p = np.asarray(p, dtype=float)
    if p.ndim == 2:
        return p[None]
    if p.ndim != 3:
        raise ValueError(f"predictions must be (n, C) or (S, n, C), not of shape {p.shape}")
    return p


def stack_auroc(y: np.ndarray, stack: np.ndarray, folds=None) -> tuple[np.ndarray, float]:
    """AUROC of a stack of replicates: per class the mean over replicates, and the mean over
    replicates of the mean over classes (NaN classes, without positives, left out). With
    ``folds`` (each image's cross-validation fold) every AUROC is the mean of the folds' own
    AUROCs (each fold's model on its own test patients; a class undefined in a fold is averaged
    over the others), never one AUROC of the pooled predictions of different models (Forman and
    Scholz 2010: pooling biases it)."""
    parts = [np.arange(len(y))] if folds is None else [folds == f for f in np.unique(folds)]
    # (replicates, folds, classes)
    per = np.array([[per_class_auroc(y[m], p[m]) for m in parts] for p in stack])
    with warnings.catch_warnings():  # a class undefined in every fold stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        per_class = np.nanmean(per, axis=1).mean(axis=0)
    mean = float(np.mean([nanmean([nanmean(f) for f in rep]) for rep in per]))
    return per_class, mean


def hierarchical_interval(
    y, stack, groups, folds=None, n_boot=1000, seed=0, alpha=0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CIs of a run's AUROC per class and of its mean (length classes + 1) that
    combine the spread between its training seeds and the sampling of test patients: each
    replicate draws the seeds (the stack's rows) with replacement, then the patients (within
    folds, under k-fold), and averages the drawn seeds' AUROCs on the drawn patients (a
    two-stage bootstrap, Davison and Hinkley 1997, section 3.8). With one seed it is the
    patient bootstrap."""
    stack = as_stack(stack)
    rng = np.random.default_rng([seed, 7])
    if folds is not None and len(np.unique(folds)) < 2:
        folds = None
    stats = np.full((n_boot, y.shape[1] + 1), np.nan)
    for b, idx in enumerate(fold_resamples(groups, folds, n_boot, seed)):
        pick = rng.integers(0, len(stack), len(stack))
        per_class, mean = stack_auroc(
            y[idx], stack[pick][:, idx], None if folds is None else folds[idx]
        )
        stats[b] = np.r_[per_class, mean]
    return percentile_ci(stats, alpha)


def cross_set_difference(a, b, n_boot=1000, seed=0, alpha=0.05) -> tuple[float, float, float]:
    """The mean AUROC of a stack of replicates on one test set minus that of the same
    replicates on another, each set given as ``(y, stack, groups, folds)`` over the same
    classes, and its percentile CI: every bootstrap replicate draws the same replicates (seeds)
    for both sets, and each set's patients (within its folds) on their own, as the two sets
    are different people."""

    def mean(part, rows, pick):
        y, stack, _, folds = part
        folds = None if folds is None else folds[rows]
        return stack_auroc(y[rows], as_stack(stack)[pick][:, rows], folds)[1]

    n = len(as_stack(a[1]))
    value = mean(a, slice(None), np.arange(n)) - mean(b, slice(None), np.arange(n))
    rng = np.random.default_rng([seed, 11])
    stats = np.full((n_boot, 1), np.nan)
    draws = zip(
        fold_resamples(a[2], a[3], n_boot, seed),
        fold_resamples(b[2], b[3], n_boot, seed + 1),
        strict=True,
    )
    for i, (rows_a, rows_b) in enumerate(draws):
        pick = rng.integers(0, n, n)
        stats[i, 0] = mean(a, rows_a, pick) - mean(b, rows_b, pick)
    low, high = percentile_ci(stats, alpha)
    return value, low[0], high[0]
