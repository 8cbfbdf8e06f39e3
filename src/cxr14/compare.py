"""Paired comparison of two models scored on the same test images.

The difference in AUROC (model b minus model a) per class and in mean AUROC, with a 95% CI from
a **paired** patient bootstrap: every replicate resamples the same patients for both models, so
what the two have in common (the images, their difficulty) cancels and only the difference
varies. Two-sided p-values: from the bootstrap distribution of the difference, and per class
from DeLong's test with patients as clusters (Obuchowski 1997), both also Holm-adjusted over
the classes. Statistics: docs/experiments.md.

A model may be a stack of replicates (seeds) of one training run, shape (S, n, C): its AUROC is
then the mean over the replicates, so the comparison is of the two runs and not of two lucky
or unlucky seeds. Under k-fold each fold's images were scored by that fold's model: AUROCs are
per fold and averaged, and the bootstrap resamples within folds. ``compare_runs`` reads the
folds of each seed of two runs from their prediction files, checks that both were scored on
the same test images, and adds how many images each run predicts positive at its
validation-chosen thresholds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cxr14.findings import read_findings, to_findings
from cxr14.logs import CONSOLE
from cxr14.metrics import (
    DELONG_UNDEFINED,
    as_stack,
    bootstrap_p_value,
    delong_test,
    fold_resamples,
    holm,
    percentile_ci,
    stack_auroc,
)
from cxr14.predictions import aligned_runs, on_shared_findings, pool_seeds, prob_labels

log = logging.getLogger(__name__)


def paired_bootstrap(y, p_a, p_b, groups, n_boot=1000, seed=0, folds=None) -> np.ndarray:
    """Replicates (n_boot, classes + 1) of AUROC(b) - AUROC(a), per class and of the mean,
    each on the same resampled patients for both models and all their replicates; with
    ``folds``, patients are resampled within each fold (``metrics.stratified_resamples``)."""
    p_a, p_b = as_stack(p_a), as_stack(p_b)
    diffs = np.full((n_boot, y.shape[1] + 1), np.nan)
    for b, idx in enumerate(fold_resamples(groups, folds, n_boot, seed)):
        f = None if folds is None else folds[idx]
        a_auc, a_mean = stack_auroc(y[idx], p_a[:, idx], f)
        b_auc, b_mean = stack_auroc(y[idx], p_b[:, idx], f)
        diffs[b, :-1] = b_auc - a_auc
        diffs[b, -1] = b_mean - a_mean
    return diffs


def compare_models(
    y, p_a, p_b, groups, labels, n_boot=1000, seed=0, alpha=0.05, folds=None
) -> pd.DataFrame:
    """One row per class and a ``mean`` row: both AUROCs, their difference (b - a) with a
    paired patient-bootstrap CI and p-value, and the patient-clustered DeLong p-value per class
    (``metrics.delong_test`` with the patients as clusters; ``note`` says where it is undefined).

    ``p_a``, ``p_b``: (n, C), or stacks (S, n, C) of replicates whose AUROCs are averaged.
    ``folds``: each image's cross-validation fold, where each fold was scored by its own model:
    AUROCs are then per fold and averaged, and the bootstrap resamples within folds. DeLong's
    test is for two fixed score vectors, so ``p_delong`` is NaN unless both models are a single
    replicate of a single split.
    """
    p_a, p_b = as_stack(p_a), as_stack(p_b)
    if folds is not None and len(np.unique(folds)) < 2:
        folds = None
    (auc_a, mean_a), (auc_b, mean_b) = stack_auroc(y, p_a, folds), stack_auroc(y, p_b, folds)
    diffs = paired_bootstrap(y, p_a, p_b, groups, n_boot, seed, folds)
    if len(np.unique(groups)) < 2:
        # Resampling one patient always draws the same images: no sampling distribution.
        diffs[:] = np.nan
    low, high = percentile_ci(diffs, alpha)
    p_boot = bootstrap_p_value(diffs, alpha)
    delong, notes = [np.nan] * y.shape[1], [""] * (y.shape[1] + 1)
    if len(p_a) == len(p_b) == 1 and folds is None:
        delong = [
            delong_test(y[:, k], p_a[0, :, k], p_b[0, :, k], groups)[1] for k in range(y.shape[1])
        ]
        notes = [DELONG_UNDEFINED if np.isnan(v) else "" for v in delong] + [""]
    table = pd.DataFrame(
        {
            "label": [*labels, "mean"],
            "n_pos": [*(y == 1).sum(axis=0), int((y == 1).sum())],
            "auroc_a": [*auc_a, mean_a],
            "auroc_b": [*auc_b, mean_b],
            "difference": [*(auc_b - auc_a), mean_b - mean_a],
            "ci_low": low,
            "ci_high": high,
            "p_bootstrap": p_boot,
            "p_delong": [*delong, np.nan],
            # Adjusted over the classes of this pair (Holm); the mean row, the primary
            # endpoint, is not adjusted.
            "p_bootstrap_holm": [*holm(p_boot[:-1]), p_boot[-1]],
            "p_delong_holm": [*holm(delong), np.nan],
            "note": notes,
        }
    )
    return table


def _predicted_pos(metrics: Sequence, seeds: Sequence[int], labels: list[str]) -> np.ndarray:
    """Per label, images predicted positive at the validation-chosen thresholds, summed over
    the folds of a seed and averaged over seeds; last, the sum over labels."""
    per_seed: dict[int, np.ndarray] = {}
    for f, s in zip(metrics, seeds, strict=True):
        table = pd.read_csv(f)
        table = table[table["label"] != "mean"].set_index("label")
        if not set(labels) <= set(table.index):
            raise ValueError(f"{f} has the labels {list(table.index)}, the predictions {labels}")
        counts = table.loc[labels, "predicted_pos_at_val"].to_numpy(dtype=float)
        per_seed[int(s)] = per_seed.get(int(s), 0) + counts
    mean = np.mean(list(per_seed.values()), axis=0)
    return np.append(mean, mean.sum())


def _harmonised(pooled_a, pooled_b, vocabularies, findings_csv):
    """``on_shared_findings`` of two runs whose classes are of ``vocabularies`` where they
    differ in vocabulary or classes; else the runs as they are (and no class names)."""
    classes = [prob_labels(next(iter(p.values()))) for p in (pooled_a, pooled_b)]
    if not vocabularies or (vocabularies[0] == vocabularies[1] and classes[0] == classes[1]):
        return pooled_a, pooled_b, None, None
    findings = read_findings(findings_csv)
    names = [
        to_findings(c, vocab, findings) for c, vocab in zip(classes, vocabularies, strict=True)
    ]
    return on_shared_findings(pooled_a, pooled_b, *names)


def compare_runs(
    run_a: str,
    run_b: str,
    predictions_a: Sequence[str | os.PathLike],
    predictions_b: Sequence[str | os.PathLike],
    metrics_a: Sequence[str | os.PathLike],
    metrics_b: Sequence[str | os.PathLike],
    seeds_a: Sequence[int],
    seeds_b: Sequence[int],
    out_csv: str | os.PathLike,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    vocabularies: Sequence[str] | None = None,
    findings_csv=None,
) -> pd.DataFrame:
    """``compare_models`` of two runs from their files, one per replicate (seed) and fold; the
    folds of a seed together cover the whole data set, each fold scored by its own model
    (AUROCs per fold, averaged; the bootstrap within folds). Adds the predicted-
    positive counts at the validation thresholds: an AUROC can look fine while a run (e.g.
    trained without class weights) predicts no positives at all. With the ``vocabularies``
    of the runs' classes (runs trained on different data sets), the runs are compared on the
    findings both predict (``cxr14.findings``; rows named by finding)."""
    for run, files in (
        (run_a, (predictions_a, metrics_a, seeds_a)),
        (run_b, (predictions_b, metrics_b, seeds_b)),
    ):
        if not files[0] or len({len(f) for f in files}) != 1:
            raise ValueError(
                f"run {run!r}: needs as many predictions, metrics and seeds (at least one), "
                f"got {[len(f) for f in files]}"
            )
    pooled_a = pool_seeds(run_a, predictions_a, seeds_a)
    pooled_b = pool_seeds(run_b, predictions_b, seeds_b)
    pooled_a, pooled_b, names_a, names_b = _harmonised(
        pooled_a, pooled_b, vocabularies, findings_csv
    )
    y, p_a, p_b, groups, labels, folds = aligned_runs(run_a, run_b, pooled_a, pooled_b)
    table = compare_models(y, p_a, p_b, groups, labels, n_boot, seed, alpha, folds)
    table.insert(0, "run_a", run_a)
    table.insert(1, "run_b", run_b)
    table["replicates_a"], table["replicates_b"] = len(pooled_a), len(pooled_b)
    table["n_images"], table["n_patients"] = len(y), len(np.unique(groups))
    table["predicted_pos_a"] = _predicted_pos(metrics_a, seeds_a, names_a or labels)
    table["predicted_pos_b"] = _predicted_pos(metrics_b, seeds_b, names_b or labels)
    table["predicted_pos_difference"] = table["predicted_pos_b"] - table["predicted_pos_a"]
    table.to_csv(out_csv, index=False, float_format="%.6g")
    m = table.iloc[-1]
    log.info(
        "%s - %s on %d test images: mean AUROC difference %.4f (95%% CI %.4f to %.4f)",
        run_b,
        run_a,
        len(y),
        m["difference"],
        m["ci_low"],
        m["ci_high"],
        extra=CONSOLE,
    )
    return table


def collect_comparisons(csvs, out_csv, out_png, test_sets=None) -> pd.DataFrame:
    """All pairwise tables of ``compare_runs`` in one CSV and one forest plot; with
    ``test_sets`` (the data set of each table) a ``test_set`` column says where each pair
    was compared."""
    # Imported here: the figures module pulls in torch, which the statistics do not need.
    from cxr14.figures import plot_comparisons

    frames = [pd.read_csv(f) for f in csvs]
    if test_sets:
        frames = [t.assign(test_set=d) for t, d in zip(frames, test_sets, strict=True)]
    table = pd.concat(frames, ignore_index=True)
    table.to_csv(out_csv, index=False, float_format="%.6g")
    plot_comparisons(table, out_png)
    return table
