"""Performance by patient subgroup on the test split: sex, age band and view position.

Models trained on NIH ChestX-ray14 are known to perform unequally across such groups
(Larrazabal et al. 2020, PNAS 117:12592; Seyyed-Kalantari et al. 2021, Nature Medicine
27:2176, on under-diagnosis). Each group is scored against the rest of the test split on the
same patient-bootstrap replicates: the mean AUROC over classes, its gap to the rest with a
95% CI, and the true- and false-positive rates at the validation thresholds (a lower
true-positive rate is under-diagnosis). Details: docs/evaluation.md#subgroups.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from cxr14.evaluate import read_predictions
from cxr14.logs import CONSOLE
from cxr14.metadata import read_labels
from cxr14.metrics import nanmean, patient_resamples, per_class_auroc, percentile_ci

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


def rates(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    """Mean over classes of the true- and false-positive rates at ``thresholds`` (classes
    without positives, or without negatives, left out of that mean)."""
    pred = p >= thresholds[None, :]
    n_pos, n_neg = y.sum(axis=0), (1 - y).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.where(n_pos > 0, (pred & (y == 1)).sum(axis=0) / n_pos, np.nan)
        fpr = np.where(n_neg > 0, (pred & (y == 0)).sum(axis=0) / n_neg, np.nan)
    return nanmean(tpr), nanmean(fpr)


def _scores(y, p, thresholds, member: np.ndarray) -> np.ndarray:
    """Mean AUROC of the members, of the others, and the members' mean TPR and FPR."""
    inside, outside = member, ~member
    return np.array(
        [
            nanmean(per_class_auroc(y[inside], p[inside])),
            nanmean(per_class_auroc(y[outside], p[outside])),
            *rates(y[inside], p[inside], thresholds),
        ]
    )


def _levels(column: pd.Series) -> list:
    """The levels present, in category order for a categorical column, else sorted."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [c for c in column.cat.categories if (column == c).any()]
    return sorted(column.unique())


def subgroup_table(
    y, p, groups, columns: pd.DataFrame, thresholds, n_boot=1000, seed=0, labels=None
):
    """A row for the whole split (``all``), then one per subgroup (``columns``: variable ->
    level per image): images, patients, positive image-label pairs, mean AUROC with its CI,
    the gap to the rest of the split (AUROC of the group minus that of the others) with its
    CI, mean TPR and FPR at the validation ``thresholds`` with CIs (all CIs from the same
    patient resamples), and given class ``labels``, each class's AUROC (``auroc_<class>``)."""
    cells = [("all", "all")]
    cells += [(v, level) for v in columns for level in _levels(columns[v])]
    masks = [np.ones(len(y), bool)]
    masks += [(columns[v] == level).to_numpy() for v, level in cells[1:]]
    values = np.array([_scores(y, p, thresholds, m) for m in masks])
    reps = np.full((n_boot, len(cells), 4), np.nan)
    for b, idx in enumerate(patient_resamples(groups, n_boot, seed)):
        for c, m in enumerate(masks):
            reps[b, c] = _scores(y[idx], p[idx], thresholds, m[idx])
    gap = reps[:, :, 0] - reps[:, :, 1]
    cis = {
        "auroc": percentile_ci(reps[:, :, 0]),
        "gap": percentile_ci(gap),
        "tpr": percentile_ci(reps[:, :, 2]),
        "fpr": percentile_ci(reps[:, :, 3]),
    }
    table = pd.DataFrame(cells, columns=["variable", "level"])
    table["n_images"] = [int(m.sum()) for m in masks]
    table["n_patients"] = [len(np.unique(groups[m])) for m in masks]
    table["n_pos"] = [int(y[m].sum()) for m in masks]
    point = {"auroc": values[:, 0], "gap": values[:, 0] - values[:, 1]}
    point |= {"tpr": values[:, 2], "fpr": values[:, 3]}
    for name, (low, high) in cis.items():
        table[name], table[f"{name}_ci_low"], table[f"{name}_ci_high"] = point[name], low, high
    if labels is not None:
        per_class = np.array([per_class_auroc(y[m], p[m]) for m in masks])
        table[[f"auroc_{c}" for c in labels]] = per_class
    return table


def evaluate_subgroups(
    predictions_csv, labels_csv, metrics_csv, out_csv, age_edges, n_boot=1000, seed=0
) -> pd.DataFrame:
    """Score one model's test predictions by subgroup (``subgroup_table``), reading the
    groups from the label table and the validation thresholds from ``metrics.csv``."""
    meta, labels = read_labels(labels_csv)
    pred = pd.read_csv(predictions_csv)
    y, p = read_predictions(predictions_csv, labels)
    meta = meta.set_index("image").reindex(pred["image"])
    missing = meta.index[meta["patient"].isna()]
    if len(missing):
        raise ValueError(f"{predictions_csv}: {missing[0]!r} is not in {labels_csv}")
    thresholds = pd.read_csv(metrics_csv).set_index("label").loc[labels, "threshold_at_val"]
    columns = subgroup_columns(meta.reset_index(drop=True), age_edges)
    groups = pred["patient"].to_numpy()
    table = subgroup_table(y, p, groups, columns, thresholds.to_numpy(), n_boot, seed, labels)
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
