"""Stages that write a report item set: a table and its figure (and the summary's Markdown)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from cxr14 import figures, tables
from cxr14.checkpoint import load_model
from cxr14.layouts import get_layout
from cxr14.metadata import read_labels
from cxr14.models import count_parameters

log = logging.getLogger(__name__)


def count_classes(labels_csv: str | os.PathLike, out_csv, out_png) -> pd.DataFrame:
    """Images per class as a table and a bar chart."""
    table, labels = read_labels(labels_csv)
    counts = tables.class_counts(table, labels)
    counts.to_csv(out_csv)
    figures.plot_class_counts(counts, out_png)
    return counts


def summarize_models(
    archs,
    metrics_csvs,
    localization_csvs,
    checkpoints,
    histories,
    layout: str,
    dataset: str,
    out_csv,
    out_md,
    out_png,
) -> pd.DataFrame:
    """One row per architecture beside the layout's published results: CSV, Markdown, figure."""
    rows, labels = [], None
    runs = zip(archs, metrics_csvs, localization_csvs, checkpoints, histories, strict=True)
    for arch, mcsv, lcsv, ckpt_path, history_csv in runs:
        model, ckpt = load_model(ckpt_path)
        labels = list(ckpt["labels"])
        metrics = pd.read_csv(mcsv).set_index("label")
        loc = pd.read_csv(lcsv).set_index("label")
        history = pd.read_csv(history_csv)
        parameters = count_parameters(model)
        rows.append(tables.model_row(arch, dataset, metrics, loc, history, ckpt, parameters))
    lay = get_layout(layout)
    published = lay.published_auroc()
    rows += tables.published_rows(published, labels, lay.published_dataset)
    table = pd.DataFrame(rows)
    table.to_csv(out_csv, index=False, float_format="%.4f")
    markdown = tables.summary_markdown(
        table, labels, dataset, lay.published_dataset, lay.results_caveat
    )
    Path(out_md).write_text(markdown)
    figures.plot_auroc_comparison(table, labels, dataset, set(published["model"]), out_png)
    log.info("summary of %d models written to %s", len(archs), out_md)
    return table
