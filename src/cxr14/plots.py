"""Figures of the data stages (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cxr14.labels import LABELS, NO_FINDING  # noqa: E402


def count_classes(
    labels_csv: str | os.PathLike, out_csv: str | os.PathLike, out_png: str | os.PathLike
) -> pd.DataFrame:
    """Images per class (the seed's table in 3.1.2), 'No Finding' included, and a bar chart."""
    table = pd.read_csv(labels_csv)
    y = table[list(LABELS)]
    counts = y.sum().astype(int)
    counts[NO_FINDING] = int((y.sum(axis=1) == 0).sum())
    out = pd.DataFrame(
        {"images": counts, "prevalence_%": (100 * counts / len(table)).round(3)}
    ).rename_axis("label")
    out.to_csv(out_csv)

    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    order = out.drop(NO_FINDING).sort_values("images")
    bars = ax.barh(order.index, order["images"], color="tab:blue")
    ax.bar_label(bars, fmt="%d", padding=2, fontsize=8)
    ax.set_xlabel("images with the finding")
    ax.set_title(
        f"Findings in {len(table):,} images ({out.loc[NO_FINDING, 'images']:,} with no finding)"
    )
    ax.margins(x=0.12)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out


def plot_average_image(
    average_npy: str | os.PathLike, stats_json: str | os.PathLike, out_png: str | os.PathLike
) -> None:
    """The seed's Figure 1: the average image used for normalisation."""
    img = np.load(average_npy)
    with open(stats_json) as f:
        stats = json.load(f)
    fig, ax = plt.subplots(figsize=(5, 5.4), layout="constrained")
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    ax.set_title(
        f"Average image over {stats['over']} ({stats['n_images']:,} images)\n"
        f"pixel mean {stats['mean']:.1f}, std {stats['std']:.1f}",
        fontsize=10,
    )
    ax.axis("off")
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def plot_oversampling(table_csv: str | os.PathLike, out_png: str | os.PathLike) -> None:
    """Per-class frequency in the training split before and after oversampling."""
    table = pd.read_csv(table_csv, index_col=0).loc[list(LABELS)]
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    ax.bar(x - 0.2, table["before_%"], width=0.4, label="training split")
    ax.bar(x + 0.2, table["after_%"], width=0.4, label="oversampled index")
    ax.set_xticks(x, table.index, rotation=45, ha="right")
    ax.set_ylabel("images with the finding (%)")
    ax.set_title("Class frequency before and after oversampling")
    ax.legend()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
