"""Evaluation of a trained model on the test split: predictions, metrics with patient-bootstrap
confidence intervals, and operating points chosen on validation (docs/evaluation.md).

Metrics come from scikit-learn (AUROC from ``cxr14.metrics``' rank form, equal to it). A model
that predicts no positives (the reference study's ResNet18) shows as ``predicted_pos = 0``,
recall 0, precision NaN and a note, never as a high accuracy.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cxr14.calibration import calibrate, calibration_slope_intercept, fit_calibration
from cxr14.checkpoint import write_model_facts
from cxr14.data import read_rows
from cxr14.inference import Scorer
from cxr14.logs import CONSOLE
from cxr14.metadata import label_targets, read_labels
from cxr14.metrics import (
    METRICS,
    NO_CI_NOTE,
    bootstrap_metrics,
    nanmean,
    operating_functions,
    operating_point,
    per_class_brier,
    per_class_ece,
    sensitivity_thresholds,
    youden_thresholds,
)
from cxr14.predictions import prediction_table

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- metrics


def _class_row(label, y, p, values: dict, thresholds: dict) -> dict:
    """One class's row: the metrics with their CIs (``values``: metric -> (value, low, high)),
    the prevalence (a random model's AP), the operating points at 0.5 and at the class's
    validation-chosen ``thresholds`` (name -> threshold). Images whose label is unknown (NaN)
    are counted in ``n_unknown`` and scored nowhere."""
    known = y[~np.isnan(y)]
    row = {
        "label": label,
        "n_pos": int((known == 1).sum()),
        "n_neg": int((known == 0).sum()),
        "n_unknown": int(len(y) - len(known)),
        "prevalence": float(known.mean()) if len(known) else np.nan,
    }
    for m, (value, low, high) in values.items():
        row.update({m: value, f"{m}_ci_low": low, f"{m}_ci_high": high})
    notes = []
    if row["n_pos"] == 0 or row["n_neg"] == 0:
        notes.append("AUROC undefined: only one label value in the test split")
    elif np.isnan(row["auroc_ci_low"]):
        notes.append(NO_CI_NOTE)
    for name, thr in (("0.5", 0.5), *thresholds.items()):
        op = operating_point(y, p, thr)
        row.update({f"{m}_at_{name}": v for m, v in op.items()})
        if op["predicted_pos"] == 0:
            notes.append(f"predicts no positives at threshold {name}")
    row["note"] = "; ".join(notes)
    return row


def _mean_row(table: pd.DataFrame, values: dict) -> dict:
    mean = {
        "label": "mean",
        "n_pos": table["n_pos"].sum(),
        "n_neg": table["n_neg"].sum(),
        "n_unknown": table["n_unknown"].sum(),
        "prevalence": table["prevalence"].mean(),
    }
    for m, (value, low, high) in values.items():
        mean.update({m: value, f"{m}_ci_low": low, f"{m}_ci_high": high})
    for c in table.columns:
        if c in mean or "_ci_" in c:  # a bootstrapped metric: its mean and CI are given
            continue
        if c.startswith(("tp_", "tn_", "fp_", "fn_", "predicted_pos_")):
            mean[c] = table[c].sum()
        elif c.startswith(("precision_", "recall_", "specificity_", "f1_", "threshold_")):
            mean[c] = table[c].mean()  # NaN (undefined) for any class makes the mean NaN
    never = int((table["predicted_pos_at_0.5"] == 0).sum())
    mean["note"] = (
        f"{never} of {len(table)} classes never predicted positive at 0.5" if never else ""
    )
    return mean


def scaled_calibration(y, p, recalibration) -> pd.DataFrame:
    """Per class and ``mean``: the recalibration fitted on validation (``recal_slope``,
    ``recal_intercept``: NaN for isotonic) and the test Brier score, calibration error and
    calibration slope and intercept after it (``*_scaled``). ``recalibration``: a
    ``calibration.fit_calibration`` dict, or (slopes, intercepts)."""
    if not isinstance(recalibration, dict):
        recalibration = dict(zip(("slopes", "intercepts"), recalibration, strict=True))
    scaled = calibrate(p, recalibration)
    none = [np.nan] * p.shape[1]
    slopes = recalibration.get("slopes", none)
    intercepts = recalibration.get("intercepts", none)
    brier, ece = per_class_brier(y, scaled), per_class_ece(y, scaled)
    cal_slope, cal_intercept = calibration_slope_intercept(y, scaled)
    columns = {"recal_slope": slopes, "recal_intercept": intercepts, "brier_scaled": brier}
    columns |= {"ece_scaled": ece, "cal_slope_scaled": cal_slope}
    columns["cal_intercept_scaled"] = cal_intercept
    return pd.DataFrame(
        {k: [*v, np.nan if k.startswith("recal") else nanmean(v)] for k, v in columns.items()}
    )


def metrics_table(
    y, p, groups, thresholds, labels, n_boot=1000, seed=0, recalibration=None, fixed_rates=()
) -> pd.DataFrame:
    """One row per class (``labels``) and a ``mean`` row: prevalence, AUROC, average precision,
    Brier score, expected calibration error and calibration slope and intercept with
    patient-bootstrap 95% CIs; the operating points at 0.5 (``*_at_0.5``) and at each set of
    thresholds chosen on validation (``thresholds``: name -> per-class array, e.g. ``val`` for
    Youden's, ``sens`` for a fixed sensitivity; an array alone is ``val``), their sensitivity,
    specificity, PPV and NPV on test with CIs; sensitivity at fixed specificity and specificity
    at fixed sensitivity on the test set's own curve, for each of ``fixed_rates``, with CIs;
    and, given the validation ``recalibration`` (``scaled_calibration``), calibration after
    it."""
    thresholds = thresholds if isinstance(thresholds, dict) else {"val": thresholds}
    functions = {**METRICS, **operating_functions(thresholds, fixed_rates)}
    values = {m: fn(y, p) for m, fn in functions.items()}
    cis = bootstrap_metrics(y, p, groups, n_boot, seed, functions=functions)
    rows = [
        _class_row(
            label,
            y[:, k],
            p[:, k],
            {m: (values[m][k], cis[m][0][k], cis[m][1][k]) for m in functions},
            {name: t[k] for name, t in thresholds.items()},
        )
        for k, label in enumerate(labels)
    ]
    table = pd.DataFrame(rows)
    mean = _mean_row(table, {m: (nanmean(values[m]), *(c[-1] for c in cis[m])) for m in functions})
    table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)
    if recalibration is not None:
        table = pd.concat([table, scaled_calibration(y, p, recalibration)], axis=1)
    return table


def read_split_labels(scorer: Scorer, checkpoint, labels_csv, splits_csv, blank=None):
    """The label table (labels as scored: 1, 0 or NaN), its label order, the labels as an array
    and each image's split, refusing a model whose outputs are in another label order.

    An uncertain label is never scored, whatever the training policy: a model is not judged
    against a label its report hedges. A blank one is negative or unknown by ``blank``
    (``data.blank``; None for a data set whose labels are all known)."""
    table, labels = read_labels(labels_csv)
    if labels != scorer.labels:
        raise ValueError(f"{checkpoint} predicts {scorer.labels}, but {labels_csv} has {labels}")
    split = pd.read_csv(splits_csv)["split"].to_numpy()
    policy = ("ignore", blank) if blank else ()
    y = label_targets(table[labels], *policy).astype(np.float64)
    table = table.copy()
    table[labels] = y
    return table, labels, y, split


def evaluate_model(
    checkpoint,
    store_h5,
    labels_csv,
    splits_csv,
    average_npy,
    stats_json,
    out_predictions,
    out_metrics,
    out_val_predictions,
    out_model,
    out_filters,
    out_calibration=None,
    n_boot=1000,
    seed=0,
    device="auto",
    batch_size=128,
    blank=None,
    calibration="platt",
    sensitivity=0.9,
    fixed_rates=(0.9, 0.95),
) -> pd.DataFrame:
    """Predict the validation and test splits, choose per-class thresholds and the
    recalibration (``calibration``: ``cxr14.calibration.METHODS``) on validation, write both
    splits' predictions and the test metrics; and what the figures and tables say of the model
    (``checkpoint.write_model_facts``). ``blank``: how a blank label is scored
    (``read_split_labels``); ``sensitivity``: the validation sensitivity of the second set of
    thresholds (``*_at_sens``); ``fixed_rates``: see ``metrics_table``."""
    scorer = Scorer.load(checkpoint, average_npy, stats_json, device)
    write_model_facts(scorer.model, scorer.checkpoint, out_model, out_filters)
    table, labels, y, split = read_split_labels(scorer, checkpoint, labels_csv, splits_csv, blank)
    val, test = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")
    p_val = scorer.predict(read_rows(store_h5, val), batch_size)
    p_test = scorer.predict(read_rows(store_h5, test), batch_size)
    thresholds, recalibration = validation_choices(y[val], p_val, sensitivity, calibration)
    if out_calibration:  # what the calibration figure applies (isotonic knots included)
        Path(out_calibration).write_text(json.dumps(recalibration))
    prediction_table(table, val, labels, p_val).to_csv(out_val_predictions, index=False)
    pred = prediction_table(table, test, labels, p_test)
    pred.to_csv(out_predictions, index=False)
    groups = pred["patient"].to_numpy()
    metrics = metrics_table(
        y[test], p_test, groups, thresholds, labels, n_boot, seed, recalibration, fixed_rates
    )
    metrics.to_csv(out_metrics, index=False, float_format="%.6g")
    _log_result(scorer, len(test), metrics.iloc[-1], calibration)
    return metrics


def validation_choices(y_val, p_val, sensitivity: float, calibration: str):
    """What is chosen on the validation split: the thresholds (``val``: Youden's J; ``sens``:
    the highest reaching ``sensitivity``) and the recalibration (``fit_calibration``)."""
    thresholds = {
        "val": youden_thresholds(y_val, p_val),
        "sens": sensitivity_thresholds(y_val, p_val, sensitivity),
    }
    return thresholds, fit_calibration(y_val, p_val, calibration)


def _log_result(scorer: Scorer, n_test: int, m: pd.Series, calibration: str) -> None:
    log.info(
        "%s on %d test images: mean AUROC %.4f (95%% CI %.4f-%.4f), mean AP %.4f (random "
        "%.4f), mean ECE %.4f (%.4f after %s scaling), weights: %s",
        scorer.name,
        n_test,
        m["auroc"],
        m["auroc_ci_low"],
        m["auroc_ci_high"],
        m["ap"],
        m["prevalence"],
        m["ece"],
        m["ece_scaled"],
        calibration,
        scorer.checkpoint.get("weights_used"),
        extra=CONSOLE,
    )
