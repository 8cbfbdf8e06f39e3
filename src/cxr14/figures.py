"""Every figure of the workflow (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from cxr14.calibration import calibrate, subset_calibration
from cxr14.metadata import NO_FINDING
from cxr14.metrics import calibration_bins, roc_points


def _subplots(nrows=1, ncols=1, *, figsize, squeeze=True):
    # The object-oriented API: no pyplot state, no display backend needed.
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def _save(fig, path, dpi: int = 110) -> None:
    fig.savefig(path, dpi=dpi)


def read_model_facts(model_json) -> dict:
    """``checkpoint.describe_model``'s record of a model, from its ``model.json``."""
    with open(model_json) as f:
        return json.load(f)


def _caveat_of(facts: dict, sep: str) -> str:
    """A model's caveat (``checkpoint.model_caveat``) after ``sep``; '' if none."""
    return sep + facts["caveat"] if facts["caveat"] else ""


def _caveat(model_json, sep: str) -> str:
    """``_caveat_of`` the model of ``model_json`` ('' without one)."""
    return _caveat_of(read_model_facts(model_json), sep) if model_json is not None else ""


def plot_class_counts(counts: pd.DataFrame, out_png: str | os.PathLike) -> None:
    """Bar chart of ``tables.class_counts`` (images per class, 'No Finding' in the title)."""
    fig, ax = _subplots(figsize=(8, 5))
    order = counts.drop(NO_FINDING).sort_values("images")
    bars = ax.barh(order.index, order["images"], color="tab:blue")
    ax.bar_label(bars, fmt="%d", padding=2, fontsize=8)
    ax.set_xlabel("images with the finding")
    n = counts.attrs["n_images"]
    ax.set_title(f"Findings in {n:,} images ({counts.loc[NO_FINDING, 'images']:,} with no finding)")
    ax.margins(x=0.12)
    _save(fig, out_png, dpi=120)


def plot_average_image(
    average_npy: str | os.PathLike, stats_json: str | os.PathLike, out_png: str | os.PathLike
) -> None:
    """Figure 1 of the reference study: the average image used for normalisation."""
    img = np.load(average_npy)
    with open(stats_json) as f:
        stats = json.load(f)
    fig, ax = _subplots(figsize=(5, 5.4))
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    ax.set_title(
        f"Average image over {stats['over']} ({stats['n_images']:,} images)\n"
        f"pixel mean {stats['mean']:.1f}, std {stats['std']:.1f}",
        fontsize=10,
    )
    ax.axis("off")
    _save(fig, out_png, dpi=120)


def plot_oversampling(table_csv: str | os.PathLike, out_png: str | os.PathLike) -> None:
    """Per-class frequency in the training split before and after oversampling."""
    table = pd.read_csv(table_csv, index_col=0).drop("images")
    x = np.arange(len(table))
    fig, ax = _subplots(figsize=(9, 4.5))
    ax.bar(x - 0.2, table["before_%"], width=0.4, label="training split")
    ax.bar(x + 0.2, table["after_%"], width=0.4, label="oversampled index")
    ax.set_xticks(x, table.index, rotation=45, ha="right")
    ax.set_ylabel("images with the finding (%)")
    ax.set_title("Class frequency before and after oversampling")
    ax.legend()
    _save(fig, out_png, dpi=120)


def plot_history(history_csv, out_png, name: str, model_json=None) -> None:
    """Training/validation loss and validation mean AUROC per epoch (the reference study's
    Figure 4)."""
    h = pd.read_csv(history_csv)
    fig, (a, b) = _subplots(1, 2, figsize=(11, 4))
    if caveat := _caveat(model_json, ""):
        fig.suptitle(f"{name}: {caveat}", fontsize=10)
    a.plot(h["epoch"], h["train_loss"], "o-", label="training")
    a.plot(h["epoch"], h["val_loss"], "s-", label="validation")
    a.set(xlabel="epoch", ylabel="loss", title=f"{name}: loss per epoch")
    a.legend()
    b.plot(h["epoch"], h["val_mean_auroc"], "o-", color="tab:green")
    b.set(xlabel="epoch", ylabel="mean AUROC", title=f"{name}: validation mean AUROC")
    b.set_ylim(max(0.0, min(0.5, h["val_mean_auroc"].min() - 0.05)), 1.0)
    b.grid(alpha=0.3)
    for ax in (a, b):  # whole epochs only (no 1.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _save(fig, out_png)


def plot_roc(predictions_csv, out_png, name: str, model_json=None) -> None:
    """ROC curves of every class on the test split."""
    pred = pd.read_csv(predictions_csv)
    caveat = _caveat(model_json, "\n")
    labels = [c.removeprefix("prob_") for c in pred.columns if c.startswith("prob_")]
    fig, ax = _subplots(figsize=(7.5, 7))
    colors = matplotlib.colormaps["tab20"](np.linspace(0, 1, 20))
    for k, c in enumerate(labels):
        y, p = pred[f"label_{c}"].to_numpy(), pred[f"prob_{c}"].to_numpy()
        known = ~np.isnan(y)  # an unknown label is in no ROC curve
        y, p = y[known], p[known]
        if 0 < y.sum() < len(y):
            fpr, tpr, _ = roc_points(y, p)
            ax.plot(fpr, tpr, color=colors[k], label=f"{c} ({np.trapezoid(tpr, fpr):.3f})")
        else:
            ax.plot([], [], color=colors[k], label=f"{c} (undefined: one label value)")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(
        xlabel="false positive rate (1 - specificity)",
        ylabel="true positive rate",
        title=f"{name}: ROC curves on the test split ({len(pred)} images){caveat}",
    )
    ax.legend(fontsize=7.5, loc="lower right")
    _save(fig, out_png)


def _kernel_grid(kernels: np.ndarray, max_filters: int) -> np.ndarray:
    """Kernels (n, kh, kw), each scaled to [-1, 1], tiled with 1-pixel gaps."""
    k = kernels[:max_filters]
    n, kh, kw = k.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (kh + 1) - 1, cols * (kw + 1) - 1), np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        ki = k[i]
        span = np.abs(ki).max() or 1.0
        grid[r * (kh + 1) : r * (kh + 1) + kh, c * (kw + 1) : c * (kw + 1) + kw] = ki / span
    return grid


def filters_title(facts: dict, n_layers: int) -> str:
    """The filter figure's title (``facts``: ``read_model_facts``); a frozen backbone's
    kernels are its starting weights (only the head trained), and the title says so."""
    name = facts["name"]
    first = "the first conv layer" if n_layers == 1 else f"first {n_layers} conv layers"
    title = f"{name}: learned filters, {first} with k >= 3"
    if facts["freeze"] == "backbone":
        title = f"{name}: {first} with k >= 3, NOT trained here"
        title += f"\n(frozen backbone: the kernels of {facts['weights_used']})"
    return title + _caveat_of(facts, "\n")


def read_kernels(filters_npz, max_layers: int) -> list[tuple[str, tuple, np.ndarray]]:
    """The first ``max_layers`` of ``checkpoint.write_model_facts``' kernels: (name, weight
    shape, kernels averaged over input channels)."""
    with np.load(filters_npz) as z:
        n = min(len(z["names"]), max_layers)
        return [(str(z["names"][i]), tuple(z[f"shape_{i}"]), z[f"kernels_{i}"]) for i in range(n)]


def plot_filters(filters_npz, model_json, out_png, max_layers: int = 6, max_filters=64) -> None:
    """Learned kernels of the first ``max_layers`` conv layers with k >= 3 (the reference
    study's Figures 5-8, first layer included), one grid per layer, three layers a row."""
    convs = read_kernels(filters_npz, max_layers)
    cols = min(3, max(len(convs), 1))
    rows = int(np.ceil(max(len(convs), 1) / cols))
    # At least two panels wide: the title is as long with one layer (a ViT's patch embedding).
    fig, axes = _subplots(rows, cols, figsize=(3.6 * max(cols, 2), 3.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, shape, kernels) in zip(axes.flat, convs, strict=False):
        ax.imshow(_kernel_grid(kernels, max_filters), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(f"{name}\n{'x'.join(map(str, shape))} (out x in x kh x kw)", fontsize=10)
    if not convs:
        axes[0, 0].text(0.5, 0.5, "no convolution with kernels of 3x3 or more", ha="center")
    fig.suptitle(filters_title(read_model_facts(model_json), len(convs)), fontsize=12)
    _save(fig, out_png)


# Both boxes keep a dark outline so they stay visible on the heat map and the image border.
_OUTLINE = [patheffects.withStroke(linewidth=4, foreground="black")]


def _draw_cam(ax, image, cam, expert, predicted, title) -> None:
    ax.imshow(image, cmap="gray")
    ax.imshow(cam, cmap="jet", alpha=0.35)
    ex = Rectangle(expert[:2], expert[2], expert[3], fill=False, ec="lime", lw=2)
    ex.set_path_effects(_OUTLINE)
    ax.add_patch(ex)
    x, y, w, h = predicted
    if w == 0:
        ax.text(
            0.5,
            0.04,
            "CAM empty: nothing above the threshold",
            transform=ax.transAxes,
            ha="center",
            color="white",
            fontsize=8,
            path_effects=_OUTLINE,
        )
    else:
        box = Rectangle((x, y), w, h, fill=False, ec="white", lw=1.5, ls="--")
        box.set_path_effects(_OUTLINE)
        ax.add_patch(box)
    ax.set_title(title, fontsize=8)


def plot_cams(cams_npz, model_json, out_png) -> None:
    """``localization.write_cam_examples``' Grad-CAMs of the labelled class over distinct test
    images with an expert box (green), the box derived from the CAM (white, dashed) and the
    IoU."""
    z = dict(np.load(cams_npz))
    n = max(len(z["image"]), 1)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = _subplots(rows, cols, figsize=(4 * cols, 4.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not len(z["image"]):
        axes[0, 0].text(0.5, 0.5, "no expert boxes on test images", ha="center")
    for j, ax in enumerate(axes.flat[: len(z["image"])]):
        title = f"{z['image'][j]}\n{z['label'][j]}: p={z['prob'][j]:.2f}, IoU={z['iou'][j]:.2f}"
        _draw_cam(ax, z["pixels"][j], z["cam"][j], z["expert"][j], z["predicted"][j], title)
    facts, layer, asked = read_model_facts(model_json), str(z["layer"]), int(z["asked"])
    at = f" at {layer}" if layer else ""
    title = f"{facts['name']}: Grad-CAM{at} (green: expert box, white dashed: CAM box)"
    if len(z["image"]) < asked:
        title += f"\nonly {len(z['image'])} test images with expert boxes (of {asked} asked)"
    fig.suptitle(title + _caveat_of(facts, "\n"), fontsize=10)
    _save(fig, out_png)


def plot_auroc_comparison(table: pd.DataFrame, labels, dataset: str, published, out_png) -> None:
    """Per-class AUROC bars of each row of the summary table; ``published`` rows hatched."""
    fig, ax = _subplots(figsize=(12, 6.5))
    x = np.arange(len(labels))
    width = 0.8 / len(table)
    for i, r in enumerate(table.to_dict("records")):
        is_published = r["model"] in published
        ax.bar(
            x + (i - len(table) / 2 + 0.5) * width,
            [r[c] for c in labels],
            width,
            label=f"{r['model']} ({r['mean_auroc']:.3f})",
            hatch="//" if is_published else None,
            alpha=0.6 if is_published else 1.0,
        )
    ax.set_xticks(x, labels, rotation=40, ha="right")
    # From 0, with chance marked: an AUROC below 0.5 must show, not vanish under the axis.
    ax.set_ylim(0.0, 1.0)
    ax.axhline(0.5, color="black", lw=0.8, ls="--", label="chance (0.5)")
    ax.set_ylabel("test AUROC")
    ax.set_title(f"Per-class AUROC: this run on {dataset}; hatched: published results")
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.32))
    _save(fig, out_png)


def _forest_panel(ax, rows: pd.DataFrame) -> None:
    """One pair's differences with CI bars, classes top down and the mean last, in bold."""
    y = np.arange(len(rows))[::-1]
    is_mean = (rows["label"] == "mean").to_numpy()
    d = rows["difference"].to_numpy(dtype=float)
    lo, hi = rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float)
    for mask, color, size, lw in ((~is_mean, "tab:blue", 5, 1.5), (is_mean, "black", 8, 2.5)):
        ok = mask & ~np.isnan(d)  # NaN: a class without positives, AUROC undefined
        # The percentile CI need not contain the point estimate: bars from its ends.
        ax.hlines(y[ok], lo[ok], hi[ok], color=color, lw=lw)
        ax.plot(d[ok], y[ok], "o", color=color, ms=size)
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    # No CI: too few positive patients for the bootstrap (docs/evaluation.md).
    why = np.where(np.isnan(d), " (undefined)", np.where(np.isnan(lo), " (no CI)", ""))
    ax.set_yticks(y, rows["label"].astype(str) + why)
    for tick, bold in zip(ax.get_yticklabels(), is_mean, strict=True):
        tick.set_fontweight("bold" if bold else "normal")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(axis="x", alpha=0.3)
    a, b = rows.iloc[0][["run_a", "run_b"]]
    where = f" on {rows.iloc[0]['test_set']}" if "test_set" in rows else ""
    title = f"AUROC of {b} minus {a}{where}\n< 0: {a} better    |    > 0: {b} better"
    ax.set_title(title, fontsize=10)


def plot_comparisons(table: pd.DataFrame, out_png: str | os.PathLike) -> None:
    """Forest plot of ``compare.compare_runs`` tables: per pair of runs, the AUROC difference
    per class and of the mean with its paired-bootstrap CI, so a gain shows beside its
    uncertainty (one panel per pair, shared x)."""
    keys = ["run_a", "run_b", *(["test_set"] if "test_set" in table else [])]
    pairs = list(dict.fromkeys(table[keys].itertuples(index=False, name=None)))
    n_rows = max(len(table) // max(len(pairs), 1), 1)
    fig, axes = _subplots(
        len(pairs), 1, figsize=(7, 0.3 * n_rows * len(pairs) + 1.2), squeeze=False
    )
    fig.get_layout_engine().set(h_pad=0.1)
    for ax in axes[1:, 0]:
        ax.sharex(axes[0, 0])  # before drawing, so that the limits cover every panel
    for ax, pair in zip(axes[:, 0], pairs, strict=True):
        _forest_panel(ax, table[(table[keys] == pd.Series(pair, index=keys)).all(axis=1)])
    axes[-1, 0].set_xlabel("AUROC difference (as titled), paired patient-bootstrap 95% CI")
    _save(fig, out_png)


def _reliability(ax, y: np.ndarray, p: np.ndarray, label: str, style: str) -> None:
    """Observed positive fraction against mean predicted probability per bin (pooled; the
    predictions of unknown labels left out)."""
    known = ~np.isnan(y.ravel())
    count, mean_p, frac = calibration_bins(y.ravel()[known], p.ravel()[known])
    filled = count > 0
    ax.plot(mean_p[filled], frac[filled], style, label=label, ms=4)


def plot_calibration(
    predictions_csv, metrics_csv, out_png, name: str, model_json=None, calibration_json=None
) -> None:
    """Reliability diagram over all classes (pooled, 10 bins), before and after the
    validation-fitted recalibration (``calibration_json``: the evaluation's), with how many
    predictions fall in each bin; and each class's expected calibration error (95% CI) before
    and after it."""
    pred, metrics = pd.read_csv(predictions_csv), pd.read_csv(metrics_csv)
    caveat = _caveat(model_json, "\n")
    labels = [c.removeprefix("prob_") for c in pred.columns if c.startswith("prob_")]
    y = pred[[f"label_{c}" for c in labels]].to_numpy()
    p = pred[[f"prob_{c}" for c in labels]].to_numpy()
    per_class = metrics.set_index("label").loc[labels]
    fig, (ax, hist, bars) = _subplots(1, 3, figsize=(15, 5.2))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfectly calibrated")
    _reliability(ax, y, p, f"as predicted (mean ECE {metrics['ece'].iloc[-1]:.3f})", "o-")
    if calibration_json:
        cal = json.loads(Path(calibration_json).read_text())
        if model_json:  # scored on another data set: the classes both have
            own = read_model_facts(model_json)["labels"]
            cal = subset_calibration(cal, [own.index(c) for c in labels])
        after = f"{cal['method']} on validation (mean ECE {metrics['ece_scaled'].iloc[-1]:.3f})"
        _reliability(ax, y, calibrate(p, cal), after, "s-")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability (bin)")
    ax.set(ylabel="observed fraction positive", title="reliability, all classes pooled")
    ax.legend(fontsize=8, loc="upper left")
    hist.hist(p.ravel(), bins=np.linspace(0, 1, 11), color="tab:blue", log=True)
    hist.set(
        xlabel="predicted probability", ylabel="predictions (log)", title="predictions per bin"
    )
    x = np.arange(len(labels))
    for offset, col, text in ((-0.2, "ece", "as predicted"), (0.2, "ece_scaled", "scaled")):
        if col in per_class:
            err = None
            if f"{col}_ci_low" in per_class:
                low, high = per_class[f"{col}_ci_low"], per_class[f"{col}_ci_high"]
                err = np.vstack([per_class[col] - low, high - per_class[col]]).clip(0)
            bars.bar(x + offset, per_class[col], 0.4, yerr=err, label=text, capsize=2)
    bars.set_xticks(x, labels, rotation=40, ha="right")
    bars.set(ylabel="expected calibration error (95% CI)", title="per class (lower is better)")
    bars.legend(fontsize=8)
    fig.suptitle(f"{name}: calibration on the test split ({len(pred)} images){caveat}")
    _save(fig, out_png)


def _class_set(row) -> str:
    """A subgroup row's classes in words: named when they are few, else counted."""
    names = str(getattr(row, "classes", "") or "").split("; ") if row.n_classes else []
    if 0 < len(names) <= 3:
        return ", ".join(names)
    return f"{row.n_classes} class{'es' * (row.n_classes != 1)}"


def plot_subgroups(subgroups_csv, out_png, name: str, model_json=None) -> None:
    """``subgroups.evaluate_subgroups``' table as two dot plots, one row per subgroup: mean
    AUROC and mean true-positive rate at the validation thresholds (lower: under-diagnosed),
    each with its 95% CI beside the rest of the test split's over the same classes (x)."""
    rows = pd.read_csv(subgroups_csv).iloc[1:].iloc[::-1]  # the subgroups, first on top
    caveat = _caveat(model_json, "\n")
    no_ci = rows["gap_ci_low"].isna().to_numpy()
    ticks = [
        f"{r.variable}: {r.level} ({r.n_patients} patient{'s' * (r.n_patients != 1)}, "
        f"{_class_set(r)})" + (" (no CI)" if none else "")
        for r, none in zip(rows.itertuples(), no_ci, strict=True)
    ]
    y = np.arange(len(rows))
    fig, axes = _subplots(1, 2, figsize=(12, 0.32 * len(rows) + 1.8))
    for ax, col, text in zip(
        axes, ("auroc", "tpr"), ("mean AUROC", "mean TPR at validation thresholds"), strict=True
    ):
        ax.hlines(y, rows[f"{col}_ci_low"], rows[f"{col}_ci_high"], color="tab:blue")
        ax.plot(rows[col][~no_ci], y[~no_ci], "o", color="tab:blue", label="subgroup")
        # Hollow: too few positive patients for an interval; the estimate alone is noise.
        ax.plot(rows[col][no_ci], y[no_ci], "o", color="tab:blue", mfc="white")
        ax.plot(rows[f"{col}_rest"], y, "x", color="black", label="rest of the test split")
        ax.set(xlabel=f"{text} (95% CI)", title=text)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_yticks(y, ticks)
    axes[1].set_yticks(y, [""] * len(y))
    fig.suptitle(f"{name}: by subgroup on the test split{caveat}", fontsize=10)
    _save(fig, out_png)


def plot_label_efficiency(table: pd.DataFrame, out_png) -> None:
    """Mean AUROC (95% CI band) against the fraction of training labels, log axis, a line per
    group (architecture, linear probe or fine-tune)."""
    fig, ax = _subplots(figsize=(6.4, 4.2))
    for group, rows in table.groupby("group", sort=False):
        x = rows["fraction"] * 100
        (line,) = ax.plot(x, rows["mean_auroc"], marker="o", label=group)
        ax.fill_between(x, rows["ci_low"], rows["ci_high"], color=line.get_color(), alpha=0.2)
    ax.set_xscale("log")
    ticks = sorted(set(table["fraction"] * 100))
    ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("training labels used (share of the training split's images)")
    ax.set_ylabel("test mean AUROC (95% CI)")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Label efficiency: every point a run, its seeds and test patients in the CI")
    _save(fig, out_png)


def plot_transfer(table: pd.DataFrame, out_png) -> None:
    """The transfer matrix as a heat map: a row per run (its training sets), a column per test
    set, each cell's mean AUROC over the findings every cell shares with its 95% CI written
    in (over the cell's own shared findings where no finding is common to all), in-domain
    cells outlined."""
    common = bool(table["n_common"].iloc[0])
    key = "auroc_common" if common else "auroc"
    runs = list(dict.fromkeys(table["run"]))
    sets = list(dict.fromkeys(table["test_set"]))
    grid = np.full((len(runs), len(sets)), np.nan)
    fig, ax = _subplots(figsize=(1.9 * len(sets) + 2.6, 0.9 * len(runs) + 1.6))
    for _, r in table.iterrows():
        i, j = runs.index(r["run"]), sets.index(r["test_set"])
        grid[i, j] = r[key]
        text = f"{r[key]:.3f}\n[{r[f'{key}_ci_low']:.3f}, {r[f'{key}_ci_high']:.3f}]"
        ax.text(j, i, text, ha="center", va="center", fontsize=8)
        if r["in_domain"]:  # inset, so that neighbouring cells' outlines stay apart
            box = Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, lw=2.5, ec="black")
            ax.add_patch(box)
    image = ax.imshow(grid, cmap="RdYlGn", vmin=0.5, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, label="mean AUROC")
    train = dict(zip(table["run"], table["train_on"], strict=False))
    ax.set_yticks(range(len(runs)), [f"{r}\n(trained on {train[r]})" for r in runs], fontsize=8)
    ax.set_xticks(range(len(sets)), sets)
    ax.set_xlabel("test set")
    over = (
        f"the {table['n_common'].iloc[0]} findings all cells share"
        if common
        else ("each cell's shared findings")
    )
    ax.set_title(f"Mean AUROC [95% CI] over {over}; in-domain outlined", fontsize=9)
    _save(fig, out_png)
