"""Performance by patient subgroup on the test split: sex, age band and view position.

Models trained on NIH ChestX-ray14 are known to perform unequally across such groups
(Larrazabal et al. 2020, PNAS 117:12592; Seyyed-Kalantari et al. 2021, Nature Medicine
27:2176, on under-diagnosis). Each group is scored against the rest of the test split on the
same patient-bootstrap replicates, over one fixed set of classes present on both sides: the
mean AUROC and its gap to the rest, and the true- and false-positive rates at the validation
thresholds (a lower true-positive rate is under-diagnosis), with 95% CIs. Details:
docs/evaluation.md#subgroups.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from cxr14.logs import CONSOLE
from cxr14.metadata import read_labels
from cxr14.metrics import (
    bootstrap_p_value,
    holm,
    patient_resamples,
    per_class_auroc,
    percentile_ci,
)
from cxr14.predictions import prediction_arrays, prob_labels, read_thresholds

log = logging.getLogger(__name__)


def age_band(ages: pd.Series, edges) -> pd.Series:
    """Each age (years) as its band, e.g. ``40-59`` for edges [20, 40, 60, 80]: below the
    first edge ``<20``, from the last ``80+``, missing ages ``unknown``."""
    edges = sorted(edges)
    names = [f"<{edges[0]}"]
    names += [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:], strict=False)]
    names += [f"{edges[-1]}+"]
    band = pd.cut(ages, [-np.inf, *edges, np.inf], right=False, labels=names)
    # Categories keep the bands in age order (as strings "<20" would sort after "80+").
    return band.cat.add_categories("unknown").fillna("unknown")


def subgroup_columns(meta: pd.DataFrame, age_edges) -> pd.DataFrame:
    """Per image, its ``sex``, ``age`` band and ``view`` as strings (``unknown`` if missing)."""
    return pd.DataFrame(
        {
            "sex": meta["sex"].fillna("unknown").astype(str),
            "age": age_band(meta["age_years"], age_edges),
            "view": meta["view"].fillna("unknown").astype(str),
        },
        index=meta.index,
    )


def class_rates(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray):
    """Per class, the true- and false-positive rates at ``thresholds`` (NaN without positives,
    or without negatives); unknown labels (NaN) count as neither."""
    pred = p >= thresholds[None, :]
    n_pos, n_neg = (y == 1).sum(axis=0), (y == 0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.where(n_pos > 0, (pred & (y == 1)).sum(axis=0) / n_pos, np.nan)
        fpr = np.where(n_neg > 0, (pred & (y == 0)).sum(axis=0) / n_neg, np.nan)
    return tpr, fpr


def class_set(y, groups, rows_sets, min_patients: int) -> np.ndarray:
    """The classes a subgroup's means are taken over: those with at least ``min_patients``
    positive patients and a negative image in each of ``rows_sets`` (the subgroup and the
    rest). One fixed set for both sides and every replicate: a class present on one side only
    would make the gap a difference of class mix, not of performance."""
    keep = np.ones(y.shape[1], bool)
    for rows in rows_sets:
        for k in range(y.shape[1]):
            positives = len(np.unique(groups[rows][y[rows, k] == 1]))
            keep[k] &= positives >= min_patients and (y[rows, k] == 0).any()
    return keep


def _side(y, p, thresholds, classes) -> list[float]:
    """Mean AUROC, TPR and FPR over ``classes``; NaN if one of them is undefined here (as
    without rows) or there are no classes."""
    if not classes.any():
        return [np.nan] * 3
    tpr, fpr = class_rates(y, p, thresholds)
    return [float(np.mean(v[classes])) for v in (per_class_auroc(y, p), tpr, fpr)]


def _scores(y, p, thresholds, member: np.ndarray, classes) -> np.ndarray:
    """The members' mean AUROC, TPR and FPR, then the others' (NaN where there are none)."""
    inside = _side(y[member], p[member], thresholds, classes)
    return np.array(inside + _side(y[~member], p[~member], thresholds, classes))


def _levels(column: pd.Series) -> list:
    """The levels present, in category order for a categorical column, else sorted."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [c for c in column.cat.categories if (column == c).any()]
    return sorted(column.unique())


def _cells(y, groups, columns: pd.DataFrame, min_patients: int):
    """(variable, level), member mask and class set of the whole split and every subgroup."""
    everyone = np.ones(len(y), bool)
    cells = [("all", "all", everyone, class_set(y, groups, [everyone], min_patients))]
    for v in columns:
        for level in _levels(columns[v]):
            m = (columns[v] == level).to_numpy()
            cells.append((v, level, m, class_set(y, groups, [m, ~m], min_patients)))
    return cells


# Point estimates and replicates hold, per cell: AUROC, TPR, FPR of the members, then of the rest.
_COLUMNS = {"auroc": 0, "tpr": 1, "fpr": 2}
_GAPS = {"auroc": "gap", "tpr": "tpr_gap"}  # subgroup minus rest; TPR's: under-diagnosis


def subgroup_table(
    y, p, groups, columns, thresholds, n_boot=1000, seed=0, labels=None, min_patients=7
):
    """A row for the whole split (``all``), then one per subgroup (``columns``: variable ->
    level per image) with its images, patients, positive image-label pairs and ``n_classes``,
    the classes over which it has: mean AUROC, TPR and FPR at the validation ``thresholds``,
    each beside the rest of the split's (``*_rest``), with the AUROC and TPR gaps (subgroup
    minus rest) with bootstrap p-values of no gap, raw (``p_gap``, ``p_tpr_gap``) and adjusted
    over the subgroups by Holm's method (``*_holm``); CIs from the same patient resamples for
    all; given class ``labels``, those
    classes by name (``classes``, '; '-separated) and each class's AUROC in the subgroup
    (``auroc_<class>``)."""
    cells = _cells(y, groups, columns, min_patients)
    values = np.array([_scores(y, p, thresholds, m, k) for *_, m, k in cells])
    reps = np.full((n_boot, len(cells), 6), np.nan)
    for b, idx in enumerate(patient_resamples(groups, n_boot, seed)):
        yb, pb = y[idx], p[idx]  # once per replicate, shared by every cell
        for c, (*_, m, k) in enumerate(cells):
            reps[b, c] = _scores(yb, pb, thresholds, m[idx], k)
    table = pd.DataFrame([cell[:2] for cell in cells], columns=["variable", "level"])
    table["n_images"] = [int(m.sum()) for *_, m, _ in cells]
    table["n_patients"] = [len(np.unique(groups[m])) for *_, m, _ in cells]
    table["n_pos"] = [int((y[m] == 1).sum()) for *_, m, _ in cells]
    table["n_classes"] = [int(k.sum()) for *_, k in cells]
    for name, i in _COLUMNS.items():
        table[name] = values[:, i]
        table[f"{name}_ci_low"], table[f"{name}_ci_high"] = percentile_ci(reps[:, :, i])
        table[f"{name}_rest"] = values[:, i + 3]
        if gap := _GAPS.get(name):
            table[gap] = values[:, i] - values[:, i + 3]
            diff = reps[:, :, i] - reps[:, :, i + 3]
            table[f"{gap}_ci_low"], table[f"{gap}_ci_high"] = percentile_ci(diff)
            # Bootstrap p of gap = 0, and Holm's adjustment over the subgroups (the `all`
            # row has no rest: NaN).
            table[f"p_{gap}"] = bootstrap_p_value(diff, 0.05)
            table[f"p_{gap}_holm"] = holm(table[f"p_{gap}"])
    if labels is not None:
        table.insert(5, "classes", ["; ".join(np.asarray(labels)[k]) for *_, k in cells])
        per_class = np.array([per_class_auroc(y[m], p[m]) for *_, m, _ in cells])
        table[[f"auroc_{c}" for c in labels]] = per_class
    return table


def evaluate_subgroups(
    predictions_csv,
    labels_csv,
    metrics_csv,
    out_csv,
    age_edges,
    n_boot=1000,
    seed=0,
    min_patients=7,
) -> pd.DataFrame:
    """Score one model's test predictions by subgroup (``subgroup_table``), reading the
    groups from the label table and the validation thresholds from ``metrics.csv``."""
    meta, _ = read_labels(labels_csv)
    pred = pd.read_csv(predictions_csv)
    labels = prob_labels(pred)  # the classes the model was scored on in this data set
    y, p = prediction_arrays(pred, labels, predictions_csv)
    meta = meta.set_index("image").reindex(pred["image"])
    missing = meta.index[meta["patient"].isna()]
    if len(missing):
        raise ValueError(f"{predictions_csv}: {missing[0]!r} is not in {labels_csv}")
    thresholds = read_thresholds(metrics_csv, labels)
    columns = subgroup_columns(meta.reset_index(drop=True), age_edges)
    groups = pred["patient"].to_numpy()
    table = subgroup_table(
        y, p, groups, columns, thresholds, n_boot, seed, labels, min_patients=min_patients
    )
    table.to_csv(out_csv, index=False, float_format="%.6g")
    # Subgroups without an interval (too few positive patients) would top this by noise.
    rated = table[table["gap_ci_low"].notna()]
    if len(rated):
        worst = rated.loc[rated["gap"].idxmin()]
        log.info(
            "largest AUROC shortfall of a subgroup: %s %s, %.4f (95%% CI %.4f to %.4f) below "
            "the rest of the test split",
            worst["variable"],
            worst["level"],
            -worst["gap"],
            -worst["gap_ci_high"],
            -worst["gap_ci_low"],
            extra=CONSOLE,
        )
    return table
