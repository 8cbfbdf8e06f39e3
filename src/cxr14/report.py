"""Evaluation figures and the cross-architecture summary (matplotlib, Agg backend)."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from sklearn.metrics import auc, roc_curve  # noqa: E402

from cxr14.data import read_rows  # noqa: E402
from cxr14.evaluate import (  # noqa: E402
    _setup,
    boxes_on_test_images,
    cam_to_box,
    count_parameters,
    grad_cam,
    iou,
)
from cxr14.labels import LABELS  # noqa: E402
from cxr14.train import load_checkpoint, load_model  # noqa: E402

log = logging.getLogger(__name__)

# Published per-class test AUROCs on NIH ChestX-ray14, as tabulated in CheXNet's Table 2
# (Rajpurkar et al. 2017, arXiv:1711.05225v3). Wang et al.: arXiv:1705.02315 (ResNet-50).
PUBLISHED = {
    "Wang et al. 2017": {
        "Atelectasis": 0.716, "Cardiomegaly": 0.807, "Consolidation": 0.708, "Edema": 0.835,
        "Effusion": 0.784, "Emphysema": 0.815, "Fibrosis": 0.769, "Hernia": 0.767,
        "Infiltration": 0.609, "Mass": 0.706, "Nodule": 0.671, "Pleural_Thickening": 0.708,
        "Pneumonia": 0.633, "Pneumothorax": 0.806,
    },
    "CheXNet (Rajpurkar et al. 2017)": {
        "Atelectasis": 0.8094, "Cardiomegaly": 0.9248, "Consolidation": 0.7901, "Edema": 0.8878,
        "Effusion": 0.8638, "Emphysema": 0.9371, "Fibrosis": 0.8047, "Hernia": 0.9164,
        "Infiltration": 0.7345, "Mass": 0.8676, "Nodule": 0.7802, "Pleural_Thickening": 0.8062,
        "Pneumonia": 0.7680, "Pneumothorax": 0.8887,
    },
}  # fmt: skip
PUBLISHED_DATASET = "NIH ChestX-ray14 (published; their own test splits)"


def _save(fig, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_history(history_csv, out_png, arch: str) -> None:
    """Training/validation loss and validation mean AUROC per epoch (the seed's Figure 4)."""
    h = pd.read_csv(history_csv)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    a.plot(h["epoch"], h["train_loss"], "o-", label="training")
    a.plot(h["epoch"], h["val_loss"], "s-", label="validation")
    a.set(xlabel="epoch", ylabel="loss", title=f"{arch}: loss per epoch")
    a.legend()
    b.plot(h["epoch"], h["val_mean_auroc"], "o-", color="tab:green")
    b.set(xlabel="epoch", ylabel="mean AUROC", title=f"{arch}: validation mean AUROC")
    b.set_ylim(max(0.0, min(0.5, h["val_mean_auroc"].min() - 0.05)), 1.0)
    b.grid(alpha=0.3)
    _save(fig, out_png)


def plot_roc(predictions_csv, out_png, arch: str) -> None:
    """ROC curves of the 14 classes on the test split."""
    pred = pd.read_csv(predictions_csv)
    fig, ax = plt.subplots(figsize=(7.5, 7), layout="constrained")
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, 20))
    for k, c in enumerate(LABELS):
        y, p = pred[f"label_{c}"].to_numpy(), pred[f"prob_{c}"].to_numpy()
        if 0 < y.sum() < len(y):
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, color=colors[k], label=f"{c} ({auc(fpr, tpr):.3f})")
        else:
            ax.plot([], [], color=colors[k], label=f"{c} (undefined: one label value)")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate",
           title=f"{arch}: ROC curves on the test split ({len(pred)} images)")  # fmt: skip
    ax.legend(fontsize=7.5, loc="lower right")
    _save(fig, out_png)


def plot_filters(checkpoint, out_png, max_layers: int = 6, max_filters: int = 64) -> None:
    """Learned kernels of the first ``max_layers`` conv layers (the seed's Figures 5-8, first
    layer included): each kernel averaged over its input channels, one grid per layer."""
    ckpt = load_checkpoint(checkpoint)
    convs = [(k, v) for k, v in ckpt["model"].items() if k.endswith("weight") and v.dim() == 4]
    convs = convs[:max_layers]
    fig, axes = plt.subplots(1, len(convs), figsize=(3.2 * len(convs), 3.6), layout="constrained",
                             squeeze=False)  # fmt: skip
    for ax, (name, w) in zip(axes[0], convs, strict=True):
        k = w.float().mean(dim=1)[:max_filters]  # (n, kh, kw)
        n, kh, kw = k.shape
        cols = int(np.ceil(np.sqrt(n)))
        grid = np.full((cols * (kh + 1) - 1, cols * (kw + 1) - 1), np.nan)
        for i in range(n):
            r, c = divmod(i, cols)
            ki = k[i].numpy()
            span = np.abs(ki).max() or 1.0
            grid[r * (kh + 1) : r * (kh + 1) + kh, c * (kw + 1) : c * (kw + 1) + kw] = ki / span
        ax.imshow(grid, cmap="gray", vmin=-1, vmax=1)
        ax.set_title(f"{name.removesuffix('.weight')}\n{tuple(w.shape)}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{ckpt['config']['arch']}: learned filters (first {len(convs)} conv layers)")
    _save(fig, out_png)


def plot_cams(checkpoint, store_h5, labels_csv, splits_csv, average_npy, stats_json,
              bbox_csv, box_space, out_png, n_images=6, cam_threshold=0.5,
              device="auto") -> None:  # fmt: skip
    """Grad-CAM of the labelled class over test images with an expert box (green), the box
    derived from the CAM (red) and the IoU."""
    model, ckpt, dev, normalize = _setup(checkpoint, average_npy, stats_json, device)
    boxes = boxes_on_test_images(labels_csv, splits_csv, bbox_csv)
    # One box per class first, so the figure shows different findings.
    boxes = boxes.drop_duplicates("label").head(n_images)
    n = max(len(boxes), 1)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4.3 * rows), layout="constrained",
                             squeeze=False)  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    if boxes.empty:
        axes[0, 0].text(0.5, 0.5, "no expert boxes on test images", ha="center")
    else:
        idx = boxes["row"].to_numpy()
        images = read_rows(store_h5, idx)
        size = images.shape[-1]
        cls = torch.as_tensor([LABELS.index(c) for c in boxes["label"]], device=dev)
        x = normalize(images.to(dev))
        cams = torch.nn.functional.interpolate(grad_cam(model, x, cls)[:, None], size=(size, size),
                                               mode="bilinear")[:, 0].cpu().numpy()  # fmt: skip
        with torch.no_grad():
            probs = torch.sigmoid(model(x).float()).cpu().numpy()
        scale = size / box_space
        for j, (ax, b) in enumerate(zip(axes.flat, boxes.itertuples(), strict=False)):
            gt = (b.x * scale, b.y * scale, b.w * scale, b.h * scale)
            pred = cam_to_box(cams[j], cam_threshold)
            ax.imshow(images[j].numpy(), cmap="gray")
            ax.imshow(cams[j], cmap="jet", alpha=0.35)
            ax.add_patch(Rectangle(gt[:2], gt[2], gt[3], fill=False, ec="lime", lw=2))
            ax.add_patch(Rectangle(pred[:2], pred[2], pred[3], fill=False, ec="red", lw=1.5,
                                   ls="--"))  # fmt: skip
            p = probs[j, LABELS.index(b.label)]
            ax.set_title(f"{b.image}\n{b.label}: p={p:.2f}, IoU={iou(pred, gt):.2f}", fontsize=8)
    fig.suptitle(f"{ckpt['config']['arch']}: Grad-CAM (green: expert box, red: CAM box)")
    _save(fig, out_png)


def summarize(archs, metrics_csvs, localization_csvs, checkpoints, histories, dataset: str,
              out_csv, out_md, out_png) -> pd.DataFrame:  # fmt: skip
    """One row per architecture, plus the published reference rows, as CSV, Markdown, figure."""

    rows = []
    runs = zip(archs, metrics_csvs, localization_csvs, checkpoints, histories, strict=True)
    for arch, mcsv, lcsv, ckpt_path, history_csv in runs:
        m = pd.read_csv(mcsv).set_index("label")
        loc = pd.read_csv(lcsv).set_index("label")
        model, ckpt = load_model(ckpt_path)
        total, trainable = count_parameters(model)
        hist = pd.read_csv(history_csv)
        row = {
            "model": arch,
            "dataset": dataset,
            "mean_auroc": m.loc["mean", "auroc"],
            "auroc_ci_low": m.loc["mean", "auroc_ci_low"],
            "auroc_ci_high": m.loc["mean", "auroc_ci_high"],
            "mean_f1_at_0.5": m.loc["mean", "f1_at_0.5"],
            "mean_f1_at_val": m.loc["mean", "f1_at_val"],
            "classes_never_positive_at_0.5": int(
                (m.drop("mean")["predicted_pos_at_0.5"] == 0).sum()
            ),
            "loc_acc_iou_0.3": loc.loc["all", "acc_iou_0.3"] if "acc_iou_0.3" in loc else np.nan,
            "epochs": len(hist),
            "best_epoch": ckpt["best_epoch"],
            "train_minutes": hist["seconds"].sum() / 60,
            "parameters": total,
            "trainable_parameters": trainable,
            "weights": ckpt.get("weights_used", "unknown"),
            **{c: m.loc[c, "auroc"] for c in LABELS},
        }
        rows.append(row)
    for name, aucs in PUBLISHED.items():
        rows.append({"model": name, "dataset": PUBLISHED_DATASET,
                     "mean_auroc": float(np.mean(list(aucs.values()))), **aucs})  # fmt: skip
    table = pd.DataFrame(rows)
    table.to_csv(out_csv, index=False, float_format="%.4f")

    def fmt(v, digits=3):
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    lines = [
        "# Model summary",
        "",
        f"Results of this run are on **{dataset}**. The published rows were measured on NIH "
        "ChestX-ray14 with other splits: they are references, not comparable numbers"
        + (
            " - and results on the synthetic demo set are never NIH results."
            if "synthetic" in dataset
            else "."
        ),  # fmt: skip
        "",
        "| model | data set | mean AUROC (95% CI) | mean F1 @0.5 | mean F1 @val | classes never "
        "positive @0.5 | loc. acc. IoU>=0.3 | epochs | train min | parameters (trainable) "
        "| weights |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in table.to_dict("records"):
        ci = (f" ({fmt(r.get('auroc_ci_low'))}-{fmt(r.get('auroc_ci_high'))})"
              if not pd.isna(r.get("auroc_ci_low", np.nan)) else "")  # fmt: skip
        params = ""
        if not pd.isna(r.get("parameters", np.nan)):
            params = f"{int(r['parameters']):,} ({int(r['trainable_parameters']):,})"
        lines.append(
            f"| {r['model']} | {r['dataset']} | {fmt(r['mean_auroc'])}{ci} | "
            f"{fmt(r.get('mean_f1_at_0.5', np.nan))} | {fmt(r.get('mean_f1_at_val', np.nan))} | "
            f"{fmt(r.get('classes_never_positive_at_0.5', np.nan), 0)} | "
            f"{fmt(r.get('loc_acc_iou_0.3', np.nan))} | {fmt(r.get('epochs', ''), 0)} | "
            f"{fmt(r.get('train_minutes', np.nan), 1)} | {params} | {fmt(r.get('weights', ''))} |"
        )
    lines += ["", "## Per-class test AUROC", "",
              "| class | " + " | ".join(table["model"]) + " |",
              "| --- |" + " --- |" * len(table)]  # fmt: skip
    for c in LABELS:
        lines.append(f"| {c} | " + " | ".join(fmt(v) for v in table[c]) + " |")
    Path(out_md).write_text("\n".join(lines).replace("nan", "") + "\n")

    fig, ax = plt.subplots(figsize=(12, 5), layout="constrained")
    x = np.arange(len(LABELS))
    width = 0.8 / len(table)
    for i, r in enumerate(table.to_dict("records")):
        published = r["model"] in PUBLISHED
        ax.bar(x + (i - len(table) / 2 + 0.5) * width, [r[c] for c in LABELS], width,
               label=f"{r['model']} ({fmt(r['mean_auroc'])})",
               hatch="//" if published else None, alpha=0.6 if published else 1.0)  # fmt: skip
    ax.set_xticks(x, LABELS, rotation=40, ha="right")
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("test AUROC")
    ax.set_title(f"Per-class AUROC: this run on {dataset}; hatched: published NIH results")
    ax.legend(fontsize=8, ncol=3, loc="lower left")
    _save(fig, out_png)
    log.info("summary of %d models written to %s", len(archs), out_md)
    return table
