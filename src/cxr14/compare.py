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
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cxr14.logs import CONSOLE
from cxr14.metrics import (
    DELONG_UNDEFINED,
    bootstrap_p_value,
    delong_test,
    holm,
    nanmean,
    patient_resamples,
    per_class_auroc,
    percentile_ci,
    stratified_resamples,
)

log = logging.getLogger(__name__)


def _stack(p) -> np.ndarray:
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


def paired_bootstrap(y, p_a, p_b, groups, n_boot=1000, seed=0, folds=None) -> np.ndarray:
    """Replicates (n_boot, classes + 1) of AUROC(b) - AUROC(a), per class and of the mean,
    each on the same resampled patients for both models and all their replicates; with
    ``folds``, patients are resampled within each fold (``metrics.stratified_resamples``)."""
    p_a, p_b = _stack(p_a), _stack(p_b)
    diffs = np.full((n_boot, y.shape[1] + 1), np.nan)
    resamples = (
        patient_resamples(groups, n_boot, seed)
        if folds is None
        else stratified_resamples(groups, folds, n_boot, seed)
    )
    for b, idx in enumerate(resamples):
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
    p_a, p_b = _stack(p_a), _stack(p_b)
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


def _pool_seeds(run: str, predictions: Sequence, seeds: Sequence[int]) -> dict[int, pd.DataFrame]:
    """Per seed, its folds' predictions concatenated; an image twice within a seed stops."""
    pooled = {}
    for s in dict.fromkeys(int(s) for s in seeds):
        files = [f for f, t in zip(predictions, seeds, strict=True) if int(t) == s]
        # The i-th file of a seed is its i-th split (fold): each scored by its own model.
        frames = [pd.read_csv(f).assign(_file=str(f), _fold=i) for i, f in enumerate(files)]
        df = pd.concat(frames, ignore_index=True)
        twice = df[df["image"].duplicated(keep=False)]
        if len(twice):
            image = twice["image"].iloc[0]
            where = sorted(set(twice.loc[twice["image"] == image, "_file"]))
            raise ValueError(
                f"run {run!r}, seed {s}: image {image!r} appears twice, in "
                f"{' and '.join(where)} (repeated images: {twice['image'].nunique()})"
            )
        pooled[s] = df.drop(columns="_file").set_index("image")
    return pooled


def _check_same_images(run_a, run_b, pooled_a, pooled_b) -> pd.Index:
    """The test images of the first seed of ``run_a``, after checking every seed of both runs
    was scored on exactly those: otherwise the two AUROCs are not comparable."""
    ref = next(iter(pooled_a.values())).index
    for run, pooled in ((run_a, pooled_a), (run_b, pooled_b)):
        for s, df in pooled.items():
            if set(df.index) == set(ref):
                continue
            only = sorted(set(df.index) ^ set(ref))
            raise ValueError(
                f"runs {run_a!r} and {run_b!r} were not scored on the same test images: "
                f"{run!r} seed {s} has {len(df)} images, {run_a!r} seed "
                f"{next(iter(pooled_a))} has {len(ref)}; images in only one of them: {len(only)}, "
                f"e.g. {only[0]!r}"
            )
    return ref


def _prob_labels(df: pd.DataFrame) -> list[str]:
    return [c.removeprefix("prob_") for c in df.columns if c.startswith("prob_")]


def _aligned_arrays(run_a, run_b, pooled_a, pooled_b):
    """y, the two stacks (S, n, C), the patients and the labels, aligned by image."""
    images = _check_same_images(run_a, run_b, pooled_a, pooled_b)
    first = next(iter(pooled_a.values())).loc[images]
    labels = _prob_labels(first)
    label_cols = [f"label_{c}" for c in labels]
    y = first[label_cols].to_numpy()
    stacks = []
    for run, pooled in ((run_a, pooled_a), (run_b, pooled_b)):
        stack = []
        for s, df in pooled.items():
            if set(_prob_labels(df)) != set(labels):
                raise ValueError(
                    f"{run!r} seed {s} predicts {_prob_labels(df)}, {run_a!r} {labels}"
                )
            df = df.loc[images]
            same = np.array_equal(df[label_cols].to_numpy(float), y.astype(float), equal_nan=True)
            if not same or not np.array_equal(
                df[["patient", "_fold"]].to_numpy(), first[["patient", "_fold"]].to_numpy()
            ):
                raise ValueError(
                    f"runs {run_a!r} and {run_b!r} disagree on the labels, patients or folds "
                    f"of the test images ({run!r} seed {s})"
                )
            stack.append(df[[f"prob_{c}" for c in labels]].to_numpy(dtype=float))
        stacks.append(np.stack(stack))
    return y, stacks[0], stacks[1], first["patient"].to_numpy(), labels, first["_fold"].to_numpy()


def _predicted_pos(metrics: Sequence, seeds: Sequence[int], labels: list[str]) -> np.ndarray:
    """Per label, images predicted positive at the validation-chosen thresholds, summed over
    the folds of a seed and averaged over seeds; last, the sum over labels."""
    per_seed: dict[int, np.ndarray] = {}
    for f, s in zip(metrics, seeds, strict=True):
        table = pd.read_csv(f)
        table = table[table["label"] != "mean"].set_index("label")
        if set(table.index) != set(labels):
            raise ValueError(f"{f} has the labels {list(table.index)}, the predictions {labels}")
        counts = table.loc[labels, "predicted_pos_at_val"].to_numpy(dtype=float)
        per_seed[int(s)] = per_seed.get(int(s), 0) + counts
    mean = np.mean(list(per_seed.values()), axis=0)
    return np.append(mean, mean.sum())


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
) -> pd.DataFrame:
    """``compare_models`` of two runs from their files, one per replicate (seed) and fold; the
    folds of a seed together cover the whole data set, each fold scored by its own model
    (AUROCs per fold, averaged; the bootstrap within folds). Adds the predicted-
    positive counts at the validation thresholds: an AUROC can look fine while a run (e.g.
    trained without class weights) predicts no positives at all."""
    for run, files in (
        (run_a, (predictions_a, metrics_a, seeds_a)),
        (run_b, (predictions_b, metrics_b, seeds_b)),
    ):
        if not files[0] or len({len(f) for f in files}) != 1:
            raise ValueError(
                f"run {run!r}: needs as many predictions, metrics and seeds (at least one), "
                f"got {[len(f) for f in files]}"
            )
    pooled_a = _pool_seeds(run_a, predictions_a, seeds_a)
    pooled_b = _pool_seeds(run_b, predictions_b, seeds_b)
    y, p_a, p_b, groups, labels, folds = _aligned_arrays(run_a, run_b, pooled_a, pooled_b)
    table = compare_models(y, p_a, p_b, groups, labels, n_boot, seed, alpha, folds)
    table.insert(0, "run_a", run_a)
    table.insert(1, "run_b", run_b)
    table["replicates_a"], table["replicates_b"] = len(pooled_a), len(pooled_b)
    table["n_images"], table["n_patients"] = len(y), len(np.unique(groups))
    table["predicted_pos_a"] = _predicted_pos(metrics_a, seeds_a, labels)
    table["predicted_pos_b"] = _predicted_pos(metrics_b, seeds_b, labels)
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


def hierarchical_interval(
    y, stack, groups, folds=None, n_boot=1000, seed=0, alpha=0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile CIs of a run's AUROC per class and of its mean (length classes + 1) that
    combine the spread between its training seeds and the sampling of test patients: each
    replicate draws the seeds (the stack's rows) with replacement, then the patients (within
    folds, under k-fold), and averages the drawn seeds' AUROCs on the drawn patients (a
    two-stage bootstrap, Davison and Hinkley 1997, section 3.8). With one seed it is the
    patient bootstrap."""
    stack = _stack(stack)
    rng = np.random.default_rng([seed, 7])
    if folds is not None and len(np.unique(folds)) < 2:
        folds = None
    resamples = (
        patient_resamples(groups, n_boot, seed)
        if folds is None
        else stratified_resamples(groups, folds, n_boot, seed)
    )
    stats = np.full((n_boot, y.shape[1] + 1), np.nan)
    for b, idx in enumerate(resamples):
        pick = rng.integers(0, len(stack), len(stack))
        per_class, mean = stack_auroc(
            y[idx], stack[pick][:, idx], None if folds is None else folds[idx]
        )
        stats[b] = np.r_[per_class, mean]
    return percentile_ci(stats, alpha)


def run_interval(run, predictions, seeds, n_boot=1000, seed=0, alpha=0.05):
    """``hierarchical_interval`` of one run from its prediction files (one per replicate):
    (labels, low, high)."""
    pooled = _pool_seeds(run, predictions, seeds)
    y, stack, _, groups, labels, folds = _aligned_arrays(run, run, pooled, pooled)
    low, high = hierarchical_interval(y, stack, groups, folds, n_boot, seed, alpha)
    return labels, low, high


def collect_comparisons(csvs, out_csv, out_png) -> pd.DataFrame:
    """All pairwise tables of ``compare_runs`` in one CSV and one forest plot."""
    # Imported here: the figures module pulls in torch, which the statistics do not need.
    from cxr14.figures import plot_comparisons

    table = pd.concat([pd.read_csv(f) for f in csvs], ignore_index=True)
    table.to_csv(out_csv, index=False, float_format="%.6g")
    plot_comparisons(table, out_png)
    return table
