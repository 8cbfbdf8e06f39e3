"""Scoring a model against expert re-read labels instead of the data set's own ones.

Some data sets have images re-read by radiologists (NIH: Majkowska et al., Radiology 2020, 4,376
images, four findings); the parse stage writes them as ``expert_labels.csv``. A model is scored on
the images of that file that lie in its test split: each expert finding by the highest probability
of the classes mapped to it (``eval.expert_mapping``), with AUROC against the expert labels and
against the data set's original labels (the same mapping) on the same images, side by side with
the same patient-bootstrap replicates (docs/evaluation.md).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from cxr14.logs import CONSOLE
from cxr14.metrics import (
    NO_CI_NOTE,
    bootstrap_auroc,
    cohen_kappa,
    nanmean,
    patient_resamples,
    per_class_auroc,
    percentile_ci,
)

log = logging.getLogger(__name__)


def mapped_arrays(merged: pd.DataFrame, findings, mapping) -> tuple[np.ndarray, ...]:
    """Per expert finding (columns): the model's score (highest probability of its mapped
    classes), the expert label and the original label (1 if any mapped class is labelled)."""
    labels = [c.removeprefix("prob_") for c in merged.columns if c.startswith("prob_")]
    for finding in findings:
        unknown = [c for c in mapping[finding] if c not in labels]
        if unknown:
            raise ValueError(
                f"eval.expert_mapping: {finding} -> {unknown}: not classes of this model "
                f"({', '.join(labels)})"
            )
    score = np.column_stack(
        [merged[[f"prob_{c}" for c in mapping[f]]].max(axis=1) for f in findings]
    )
    original = np.column_stack(
        [merged[[f"label_{c}" for c in mapping[f]]].max(axis=1) for f in findings]
    )
    return score, merged[list(findings)].to_numpy(), original


def paired_difference(y_a, y_b, score, groups, n_boot=1000, seed=0):
    """AUROC of ``score`` against labels ``y_b`` minus against ``y_a`` on the same images, per
    column and for the mean over columns, with percentile 95% CIs from one patient bootstrap
    (both AUROCs of a replicate on the same resampled patients): (values, low, high)."""

    def stat(idx):
        a, b = per_class_auroc(y_a[idx], score[idx]), per_class_auroc(y_b[idx], score[idx])
        return np.r_[b - a, nanmean(b) - nanmean(a)]

    value = stat(np.arange(len(score)))
    if not len(score):
        return value, value, value
    reps = np.array([stat(idx) for idx in patient_resamples(groups, n_boot, seed)])
    low, high = percentile_ci(reps)
    return value, low, high


def expert_table(predictions: pd.DataFrame, expert: pd.DataFrame, mapping, n_boot=1000, seed=0):
    """One row per expert finding (skipped ones say why) and a ``mean`` row over the scored
    ones: images, patients, positives by each reader, Cohen's kappa of the original labels vs.
    the experts', AUROC with patient-bootstrap 95% CIs against each, and their paired
    difference (experts minus original) with its CI."""
    merged = predictions.merge(expert, on="image", how="inner")
    all_findings = [c for c in expert.columns if c not in ("image", "set_id")]
    unknown = sorted(set(mapping) - set(all_findings))
    if unknown or not mapping:
        raise ValueError(
            f"eval.expert_mapping: {unknown or 'empty'}; the expert findings are {all_findings}"
        )
    scored = [f for f in all_findings if mapping.get(f)]
    score, y_exp, y_orig = mapped_arrays(merged, scored, mapping)
    groups = merged["patient"].to_numpy()
    result = {}
    for name, y in (("expert", y_exp), ("original", y_orig)):
        values = per_class_auroc(y, score)
        low = high = np.full(len(scored) + 1, np.nan)
        if len(merged):
            low, high = bootstrap_auroc(y, score, groups, n_boot, seed)  # same replicates
        result[name] = (np.r_[values, nanmean(values)], low, high)
    difference = paired_difference(y_orig, y_exp, score, groups, n_boot, seed)
    sets = merged["set_id"].value_counts().sort_index()
    common = {
        "n_images": len(merged),
        "n_patients": merged["patient"].nunique(),
        "sets": ", ".join(f"{k}: {v}" for k, v in sets.items()),
    }
    rows = []
    for k, finding in enumerate([*scored, "mean"]):
        row = {"finding": finding, "classes": "|".join(mapping.get(finding, [])), **common}
        if finding != "mean":
            row.update(n_pos_expert=int(y_exp[:, k].sum()), n_pos_original=int(y_orig[:, k].sum()))
            row["kappa_original_vs_expert"] = cohen_kappa(y_orig[:, k], y_exp[:, k])
        for name, (values, low, high) in [*result.items(), ("difference", difference)]:
            row.update({f"auroc_{name}": values[k], f"auroc_{name}_ci_low": low[k]})
            row[f"auroc_{name}_ci_high"] = high[k]
        row["note"] = "" if len(merged) else "no image of the expert file in this test split"
        if any(not np.isnan(v[k]) and np.isnan(lo[k]) for v, lo, _ in result.values()):
            row["note"] = NO_CI_NOTE
        rows.append(row)
    skipped = [
        {"finding": f, **common, "note": "no class of this model maps to it: skipped"}
        for f in all_findings
        if f not in scored
    ]
    return pd.DataFrame([*rows[:-1], *skipped, rows[-1]])


def alternative_rows(predictions, expert, alternatives: dict, n_boot=1000, seed=0) -> list:
    """Rows ``<finding> [<variant>]`` scoring an expert finding with other class mappings
    (``alternatives``: finding -> {variant: classes}), to show how much the choice matters;
    ``mapping_variant`` names the variant. A variant naming a class this model lacks, or a
    finding the expert file lacks, is listed and skipped."""
    labels = {c.removeprefix("prob_") for c in predictions.columns if c.startswith("prob_")}
    rows = []
    for finding, variants in alternatives.items():
        for variant, classes in variants.items():
            name = f"{finding} [{variant}]"
            missing = sorted(set(classes) - labels) or ([finding] if finding not in expert else [])
            if missing:
                note = f"not scored: {', '.join(missing)} not in this model or expert file"
                rows.append({"finding": name, "mapping_variant": variant, "note": note})
                continue
            table = expert_table(
                predictions, expert[["image", "set_id", finding]], {finding: classes}, n_boot, seed
            )
            row = table.iloc[0].to_dict() | {"finding": name, "mapping_variant": variant}
            rows.append(row)
    return rows


def evaluate_expert_labels(
    predictions_csv, expert_csv, mapping: dict, out_csv, n_boot=1000, seed=0, alternatives=None
) -> pd.DataFrame:
    """Score one model's test predictions against the expert re-read labels (the parse stage's
    ``expert_labels.csv``), and with the ``alternatives`` mappings (``alternative_rows``),
    listed before the ``mean`` row, which is of the main mapping only."""
    expert = pd.read_csv(expert_csv)
    predictions = pd.read_csv(predictions_csv)
    table = expert_table(predictions, expert, mapping, n_boot, seed)
    extra = alternative_rows(predictions, expert, alternatives or {}, n_boot, seed)
    if extra:
        table = pd.concat(
            [table.iloc[:-1], pd.DataFrame(extra), table.iloc[-1:]], ignore_index=True
        )
    table.to_csv(out_csv, index=False, float_format="%.6g")
    m = table.iloc[-1]
    log.info(
        "%d test images with expert labels: mean AUROC %.4f against the experts (95%% CI "
        "%.4f-%.4f), %.4f against the data set's own labels on the same images",
        m["n_images"],
        m["auroc_expert"],
        m["auroc_expert_ci_low"],
        m["auroc_expert_ci_high"],
        m["auroc_original"],
        extra=CONSOLE,
    )
    return table
