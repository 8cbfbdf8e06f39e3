"""Stages that write a report item set: a table and its figure (and the summary's Markdown)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import pandas as pd

from cxr14 import figures, tables
from cxr14.layouts import get_layout
from cxr14.logs import CONSOLE
from cxr14.metadata import read_labels
from cxr14.metrics import hierarchical_interval
from cxr14.predictions import aligned_runs, pool_seeds

log = logging.getLogger(__name__)


def label_efficiency(rows: list[dict], run_tables, out_csv, out_png) -> pd.DataFrame:
    """Mean AUROC with its seed-and-patient 95% CI against the label fraction: a row per run of
    ``rows`` (``settings.label_efficiency``) from its ``replicates.csv`` (``run_tables``, in the
    same order), and the figure (a line per group, log fraction axis)."""
    table = pd.DataFrame(rows)
    means = [pd.read_csv(p, index_col=0).loc["mean"] for p in run_tables]
    for key in ("mean", "ci_low", "ci_high", "n"):
        table[key] = [m[key] for m in means]
    table = table.rename(columns={"mean": "mean_auroc", "n": "replicates"})
    table["replicates"] = table["replicates"].astype(int)
    table = table.sort_values(["group", "fraction"], kind="stable").reset_index(drop=True)
    table.to_csv(out_csv, index=False, float_format="%.4f")
    figures.plot_label_efficiency(table, out_png)
    for _, r in table.iterrows():
        log.info(
            "%s at %g of the labels: mean AUROC %.4f (%.4f-%.4f)",
            r["group"],
            r["fraction"],
            r["mean_auroc"],
            r["ci_low"],
            r["ci_high"],
            extra=CONSOLE,
        )
    return table


def count_classes(labels_csv: str | os.PathLike, out_csv, out_png) -> pd.DataFrame:
    """Images per class as a table and a bar chart."""
    table, labels = read_labels(labels_csv)
    counts = tables.class_counts(table, labels)
    counts.to_csv(out_csv)
    figures.plot_class_counts(counts, out_png)
    return counts


def aggregate_run(
    replicates: list[str],
    metrics_csvs,
    out_csv,
    predictions_csvs=None,
    seeds=None,
    n_boot=1000,
    seed=0,
    run: str = "run",
) -> pd.DataFrame:
    """A run's test AUROC per replicate (named by ``replicates``, e.g. ``fold2/seed0``) beside
    their mean, sd, min and max; given the replicates' ``predictions_csvs`` and ``seeds``,
    the 95% CI of the mean that combines seeds and test patients (``ci_low``, ``ci_high``:
    ``compare.hierarchical_interval``)."""
    metrics = {name: pd.read_csv(path) for name, path in zip(replicates, metrics_csvs, strict=True)}
    labels = [c for c in next(iter(metrics.values()))["label"] if c != "mean"]
    table = tables.replicate_table(metrics, labels)
    if predictions_csvs:
        order, low, high = run_interval(run, predictions_csvs, seeds, n_boot, seed)
        ci = pd.DataFrame({"ci_low": low, "ci_high": high}, index=[*order, "mean"])
        table = table.join(ci)
    table.to_csv(out_csv, float_format="%.4f")
    m = table.loc["mean"]
    log.info(
        "mean AUROC over %d replicate(s): %.4f (sd %.4f, %.4f-%.4f)",
        m["n"],
        m["mean"],
        m["sd"],
        m["min"],
        m["max"],
        extra=CONSOLE,
    )
    return table


def _replicate_rows(
    replicates, metrics_csvs, localization_csvs, expert_csvs, model_jsons, histories, dataset
):
    rows, labels = [], None
    # Data sets without boxes or expert labels have no such files.
    localization_csvs = localization_csvs or [None] * len(replicates)
    expert_csvs = expert_csvs or [None] * len(replicates)
    files = zip(
        replicates,
        metrics_csvs,
        localization_csvs,
        expert_csvs,
        model_jsons,
        histories,
        strict=True,
    )
    for replicate, mcsv, lcsv, ecsv, model_json, history_csv in files:
        facts = figures.read_model_facts(model_json)
        labels = facts["labels"]
        metrics = pd.read_csv(mcsv).set_index("label")
        loc = pd.read_csv(lcsv).set_index("label") if lcsv else None
        history = pd.read_csv(history_csv)
        expert = pd.read_csv(ecsv) if ecsv else None
        rows.append(
            tables.model_row(tuple(replicate), dataset, metrics, loc, history, facts, expert)
        )
    return pd.DataFrame(rows), labels


def data_provenance(store_h5) -> dict[str, str]:
    """The metadata file, its sha256 and release, and the views, from the store's attributes
    (empty for a store written before they were recorded)."""
    keys = ("metadata_file", "metadata_sha256", "metadata_release", "views")
    with h5py.File(store_h5, "r") as h5:
        return {k: str(h5.attrs[k]) for k in keys if k in h5.attrs}


def run_interval(run, predictions, seeds, n_boot=1000, seed=0, alpha=0.05):
    """``metrics.hierarchical_interval`` of one run from its prediction files (one per
    replicate): (labels, low, high). The AUROCs load SciPy's ranks when called: the table
    jobs that do not call it start without SciPy."""
    pooled = pool_seeds(run, predictions, seeds)
    y, stack, _, groups, labels, folds = aligned_runs(run, run, pooled, pooled)
    low, high = hierarchical_interval(y, stack, groups, folds, n_boot, seed, alpha)
    return labels, low, high


def _run_intervals(run_tables) -> dict[str, tuple[float, float]]:
    """Per run (the folder of its ``replicates.csv``), the seed-and-patient CI of its mean
    AUROC, where the table has one."""
    out = {}
    for path in run_tables or []:
        table = pd.read_csv(path).set_index("label")
        if "ci_low" in table:
            out[Path(path).parent.parent.name] = (  # results/eval/<run>/<data set>/
                table.loc["mean", "ci_low"],
                table.loc["mean", "ci_high"],
            )
    return out


def _coverage(lay, provenance: dict, skipped_csv) -> dict:
    """What ``tables.test_set_gaps`` needs: the layout's views, the run's, the images skipped
    as missing or unreadable."""
    views = provenance.get("views", ", ".join(lay.views))
    return {
        "layout_views": lay.views,
        "run_views": [v.strip() for v in views.split(",")],
        "n_unreadable": unreadable_count(skipped_csv),
    }


def unreadable_count(skipped_csv) -> int:
    """Images skipped as missing or unreadable (not for their view) in ``skipped_images.csv``."""
    if not skipped_csv:
        return 0
    reasons = pd.read_csv(skipped_csv)["reason"].astype(str)
    return int((~reasons.str.startswith("view ")).sum())


def summarize_models(
    replicates,
    metrics_csvs,
    localization_csvs,
    model_jsons,
    histories,
    layout: str,
    dataset: str,
    split_method: str,
    out_csv,
    out_replicates,
    out_md,
    out_png,
    expert_csvs=None,
    store_h5=None,
    skipped_csv=None,
    run_tables=None,
) -> pd.DataFrame:
    """One row per run (``replicates``: the (run, split, seed) of each file, in order) beside
    the layout's published results (each marked comparable or not with this run's
    ``split_method``), and one per replicate: CSVs, Markdown (with calibration, localisation
    and, given ``expert_csvs``, expert-label sections), figure."""
    per_replicate, labels = _replicate_rows(
        replicates, metrics_csvs, localization_csvs, expert_csvs, model_jsons, histories, dataset
    )
    provenance = data_provenance(store_h5) if store_h5 else {}
    per_replicate = per_replicate.assign(**provenance)
    per_replicate.to_csv(out_replicates, index=False, float_format="%.4f")
    lay = get_layout(layout)
    published = lay.published_auroc()
    rows = tables.run_rows(per_replicate, labels, _run_intervals(run_tables))
    run_kind = tables.split_kind(split_method)
    coverage = _coverage(lay, provenance, skipped_csv)
    rows += tables.published_rows(
        published,
        labels,
        lay.published_dataset,
        run_kind,
        lay.results_caveat,
        lay.wording,
        coverage,
    )
    table = pd.DataFrame(rows)
    table.to_csv(out_csv, index=False, float_format="%.4f")
    markdown = tables.summary_markdown(
        table,
        per_replicate,
        labels,
        dataset,
        lay.published_dataset,
        lay.results_caveat,
        lay.wording,
        provenance,
    )
    Path(out_md).write_text(markdown)
    figures.plot_auroc_comparison(table, labels, dataset, set(published["model"]), out_png)
    log.info("summary of %d replicate(s) written to %s", len(per_replicate), out_md)
    return table
