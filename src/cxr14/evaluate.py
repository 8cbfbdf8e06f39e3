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
from cxr14.findings import read_findings, shared_labels
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
from cxr14.pooling import as_list
from cxr14.predictions import prediction_arrays, prediction_table, read_predictions

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


def scored_labels(
    scorer: Scorer, labels_csv, splits_csv, blank=None, vocabulary=None, findings_csv=None
):
    """The label table (with the labels as scored: 1, 0 or NaN, on the model's classes), the
    classes it can be scored on, those targets as an array and each image's split.

    A model is scored on the classes its data set and ``labels_csv``'s share: all of them
    when the labels are the model's own; on another data set, the findings both label
    (``cxr14.findings``; ``vocabulary``: the data set's column of the findings table). A
    model without a vocabulary (trained before models recorded one) is scored on its own
    labels only. An uncertain label is never scored, whatever the training policy: a model is
    not judged against a label its report hedges. A blank one is negative or unknown by
    ``blank`` (``data.blank``; None for a data set whose labels are all known)."""
    table, labels = read_labels(labels_csv)
    split = pd.read_csv(splits_csv)["split"].to_numpy()
    policy = ("ignore", blank) if blank else ()
    y = pd.DataFrame(label_targets(table[labels], *policy).astype(np.float64), columns=labels)
    if labels == scorer.labels:
        classes = labels
    elif vocabulary and scorer.checkpoint.get("vocabulary"):
        findings = read_findings(findings_csv)
        pairs = shared_labels(
            scorer.labels, scorer.checkpoint["vocabulary"], labels, vocabulary, findings
        )
        classes = [c for c, _ in pairs]
        y = pd.DataFrame({c: y[label] for c, label in pairs}, index=y.index)
    else:
        raise ValueError(f"{scorer.name} predicts {scorer.labels}, but {labels_csv} has {labels}")
    if not classes:
        raise ValueError(f"{scorer.name} shares no finding with {labels_csv} ({labels})")
    table = table[["image", "patient"]].copy()
    table[classes] = y[classes].to_numpy()
    return table, classes, table[classes].to_numpy(dtype=np.float64), split


def validate_model(
    checkpoint,
    store_h5,
    labels_csv,
    splits_csv,
    out_val_predictions,
    out_model,
    out_filters,
    out_calibration,
    vocabularies=(None,),
    blanks=(None,),
    findings_csv=None,
    device="auto",
    batch_size=128,
    calibration="platt",
) -> pd.DataFrame:
    """Predict the validation split of each data set the model was trained on (one path each,
    or lists of one per set), write the predictions, the recalibration fitted on them
    (``calibration``: ``cxr14.calibration.METHODS``) and what the figures and tables say of
    the model (``checkpoint.write_model_facts``). Image and patient names of several sets are
    prefixed with their set's position (``1:``), as they may repeat across sets."""
    scorer = Scorer.load(checkpoint, device=device)
    write_model_facts(scorer.model, scorer.checkpoint, out_model, out_filters)
    files = list(zip(*(as_list(p) for p in (store_h5, labels_csv, splits_csv)), strict=True))
    frames = []
    for k, (store, labels, splits) in enumerate(files):
        vocabulary, blank = vocabularies[k], blanks[k]
        table, classes, _, split = scored_labels(
            scorer, labels, splits, blank, vocabulary, findings_csv
        )
        val = np.flatnonzero(split == "val")
        p = scorer.predict(read_rows(store, val), batch_size)
        table[[c for c in scorer.labels if c not in classes]] = np.nan  # not labelled here
        pred = prediction_table(table, val, scorer.labels, p)
        if len(files) > 1:
            pred[["image", "patient"]] = f"{k + 1}:" + pred[["image", "patient"]].astype(str)
        frames.append(pred)
    pred = pd.concat(frames, ignore_index=True)
    pred.to_csv(out_val_predictions, index=False)
    y_val, p_val = prediction_arrays(pred, scorer.labels, out_val_predictions)
    Path(out_calibration).write_text(json.dumps(fit_calibration(y_val, p_val, calibration)))
    return pred


def evaluate_model(
    checkpoint,
    val_predictions,
    store_h5,
    labels_csv,
    splits_csv,
    out_predictions,
    out_metrics,
    findings_csv=None,
    vocabulary=None,
    n_boot=1000,
    seed=0,
    device="auto",
    batch_size=128,
    blank=None,
    calibration="platt",
    sensitivity=0.9,
    fixed_rates=(0.9, 0.95),
) -> pd.DataFrame:
    """Predict a data set's test split, write the predictions and the metrics over the
    classes the model and the data set share (``scored_labels``), with the thresholds and
    the recalibration chosen on the model's own validation predictions (``val_predictions``,
    ``validate_model``): a model tested on another data set keeps what it chose on its own.
    ``blank``: how a blank label is scored; ``sensitivity``: the validation sensitivity of the
    second set of thresholds (``*_at_sens``); ``fixed_rates``: see ``metrics_table``."""
    scorer = Scorer.load(checkpoint, device=device)
    table, classes, y, split = scored_labels(
        scorer, labels_csv, splits_csv, blank, vocabulary, findings_csv
    )
    test = np.flatnonzero(split == "test")
    p_all = scorer.predict(read_rows(store_h5, test), batch_size)
    p_test = p_all[:, [scorer.labels.index(c) for c in classes]]
    y_val, p_val = read_predictions(val_predictions, classes)
    thresholds, recalibration = validation_choices(y_val, p_val, sensitivity, calibration)
    pred = prediction_table(table, test, classes, p_test)
    pred.to_csv(out_predictions, index=False)
    groups = pred["patient"].to_numpy()
    metrics = metrics_table(
        y[test], p_test, groups, thresholds, classes, n_boot, seed, recalibration, fixed_rates
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
