"""Evaluation of a trained model on the test split: predictions, metrics with confidence
intervals, operating points, and localisation of findings from class activation maps.

Metrics come from scikit-learn. A model that predicts no positives (the seed's ResNet18) shows
as ``predicted_pos = 0``, recall 0, precision NaN and a note, never as a high accuracy.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score, roc_curve

from cxr14.data import DeviceData, Normalizer, read_rows
from cxr14.labels import LABELS
from cxr14.metadata import read_bbox_list
from cxr14.metrics import per_class_auroc
from cxr14.train import load_model, resolve_device

log = logging.getLogger(__name__)
IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


# ------------------------------------------------------------------------------ predictions


def _setup(checkpoint, average_npy, stats_json, device_name):
    model, ckpt = load_model(checkpoint)
    device = resolve_device(device_name)
    model.to(device).eval()
    stats = json.loads(Path(stats_json).read_text())
    normalize = Normalizer(np.load(average_npy), stats["std"], ckpt["config"]["input_size"])
    return model, ckpt, device, normalize.to(device)


@torch.no_grad()
def predict(model, normalize, images: torch.Tensor, device, batch_size=128) -> np.ndarray:
    """Sigmoid probabilities (n, 14) for uint8 images (n, H, W)."""
    data = DeviceData(images, torch.zeros(len(images), len(LABELS)), device)
    out = [torch.sigmoid(model(normalize(x)).float()).cpu()
           for x, _ in data.batches(np.arange(len(images)), batch_size)]  # fmt: skip
    return torch.cat(out).numpy()


# ---------------------------------------------------------------------------------- metrics


def youden_thresholds(y_val: np.ndarray, p_val: np.ndarray) -> np.ndarray:
    """Per class, the validation threshold maximising Youden's J = sensitivity + specificity
    - 1 (0.5 where the validation split has no positives or no negatives)."""
    out = np.full(y_val.shape[1], 0.5)
    for k in range(y_val.shape[1]):
        if 0 < y_val[:, k].sum() < len(y_val):
            fpr, tpr, thr = roc_curve(y_val[:, k], p_val[:, k])
            out[k] = min(float(thr[np.argmax(tpr - fpr)]), 1.0)
    return out


def bootstrap_auroc(y, p, groups, n_boot=1000, seed=0, alpha=0.05):
    """Percentile CIs of per-class and mean AUROC, resampling patients (not images) with
    replacement: images of one patient are correlated, so resampling them one by one would
    make the intervals too narrow. Returns (low, high) arrays of length 15 (14 classes, mean)."""
    rng = np.random.default_rng(seed)
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    stats = np.full((n_boot, y.shape[1] + 1), np.nan)
    for b in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        aucs = per_class_auroc(y[idx], p[idx])
        stats[b, :-1] = aucs
        if not np.isnan(aucs).all():
            stats[b, -1] = np.nanmean(aucs)
    with warnings.catch_warnings():  # all-NaN columns (a class without positives) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanpercentile(stats, 100 * alpha / 2, axis=0)
        high = np.nanpercentile(stats, 100 * (1 - alpha / 2), axis=0)
    return low, high


def operating_point(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Confusion counts and rates of one class at one threshold."""
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "threshold": float(threshold),
        "tp": int(tp), "tn": int(tn), "fp": int(fp), "fn": int(fn),
        "predicted_pos": int(tp + fp),
        "precision": precision_score(y, pred, zero_division=np.nan),
        "recall": recall_score(y, pred, zero_division=np.nan),
        "specificity": recall_score(y, pred, pos_label=0, zero_division=np.nan),
        "f1": f1_score(y, pred, zero_division=np.nan),
    }  # fmt: skip


def metrics_table(y, p, groups, thresholds, n_boot=1000, seed=0) -> pd.DataFrame:
    """One row per class and a ``mean`` row: AUROC with patient-bootstrap 95% CI, then the
    operating points at 0.5 (``*_at_0.5``) and at the thresholds chosen on validation
    (``*_at_val``)."""
    aucs = per_class_auroc(y, p)
    low, high = bootstrap_auroc(y, p, groups, n_boot, seed)
    rows = []
    for k, label in enumerate(LABELS):
        row = {"label": label, "n_pos": int(y[:, k].sum()), "n_neg": int(len(y) - y[:, k].sum()),
               "auroc": aucs[k], "auroc_ci_low": low[k], "auroc_ci_high": high[k]}  # fmt: skip
        notes = []
        if row["n_pos"] == 0 or row["n_neg"] == 0:
            notes.append("AUROC undefined: only one label value in the test split")
        for name, thr in (("0.5", 0.5), ("val", thresholds[k])):
            op = operating_point(y[:, k], p[:, k], thr)
            row.update({f"{m}_at_{name}": v for m, v in op.items()})
            if op["predicted_pos"] == 0:
                notes.append(f"predicts no positives at threshold {name}")
        row["note"] = "; ".join(notes)
        rows.append(row)
    table = pd.DataFrame(rows)
    mean = {"label": "mean", "n_pos": table["n_pos"].sum(), "n_neg": table["n_neg"].sum(),
            "auroc": np.nan if np.isnan(aucs).all() else np.nanmean(aucs),
            "auroc_ci_low": low[-1], "auroc_ci_high": high[-1]}  # fmt: skip
    for c in table.columns:
        if c.startswith(("tp_", "tn_", "fp_", "fn_", "predicted_pos_")):
            mean[c] = table[c].sum()
        elif c.startswith(("precision_", "recall_", "specificity_", "f1_", "threshold_")):
            mean[c] = table[c].mean()  # NaN (undefined) for any class makes the mean NaN
    never = int((table["predicted_pos_at_0.5"] == 0).sum())
    mean["note"] = f"{never} of 14 classes never predicted positive at 0.5" if never else ""
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def evaluate_model(checkpoint, store_h5, labels_csv, splits_csv, average_npy, stats_json,
                   out_predictions, out_metrics, n_boot=1000, seed=0, device="auto",
                   batch_size=128) -> pd.DataFrame:  # fmt: skip
    """Predict the test split, choose per-class thresholds on validation, write the tables."""
    model, ckpt, dev, normalize = _setup(checkpoint, average_npy, stats_json, device)
    labels = pd.read_csv(labels_csv)
    split = pd.read_csv(splits_csv)["split"].to_numpy()
    y = labels[list(LABELS)].to_numpy()
    val, test = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")
    p_val = predict(model, normalize, read_rows(store_h5, val), dev, batch_size)
    p_test = predict(model, normalize, read_rows(store_h5, test), dev, batch_size)
    thresholds = youden_thresholds(y[val], p_val)
    pred = pd.DataFrame({"image": labels["image"].to_numpy()[test],
                         "patient": labels["patient"].to_numpy()[test]})  # fmt: skip
    for k, c in enumerate(LABELS):
        pred[f"prob_{c}"] = p_test[:, k]
    for k, c in enumerate(LABELS):
        pred[f"label_{c}"] = y[test, k]
    pred.to_csv(out_predictions, index=False)
    table = metrics_table(y[test], p_test, pred["patient"].to_numpy(), thresholds, n_boot, seed)
    table.to_csv(out_metrics, index=False, float_format="%.6g")
    m = table.iloc[-1]
    log.info("%s on %d test images: mean AUROC %.4f (95%% CI %.4f-%.4f), weights: %s",
             ckpt["config"]["arch"], len(test), m["auroc"], m["auroc_ci_low"],
             m["auroc_ci_high"], ckpt.get("weights_used"))  # fmt: skip
    return table


# ---------------------------------------------------------------------------- localisation


def cam_layer(model: torch.nn.Module) -> torch.nn.Module:
    """The last spatial feature map of each architecture (before global pooling)."""
    net = getattr(model, "net", model)  # FrozenBackbone wraps the torchvision net
    if hasattr(net, "layer4"):
        return net.layer4
    features = net.features
    if isinstance(features, torch.nn.Sequential) and isinstance(features[-1], torch.nn.MaxPool2d):
        return features[-2]  # the ReLU before the last pooling: twice the resolution
    return features


def grad_cam(model, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) of ``classes[i]`` for image ``x[i]``, upsampled to the
    input size and scaled to [0, 1] per image. ``x``: normalised (B, 1, H, W)."""
    layer = cam_layer(model)
    store = {}

    def keep(module, inputs, output):
        store["a"] = output
        output.register_hook(lambda grad: store.__setitem__("g", grad))

    # In-place ReLUs would modify the hooked activation after the fact: switch them off.
    inplace = [m for m in model.modules() if getattr(m, "inplace", False)]
    for m in inplace:
        m.inplace = False
    handle = layer.register_forward_hook(keep)
    try:
        model.eval()
        x = x.detach().requires_grad_(True)  # gradients flow even through a frozen backbone
        logits = model(x)
        model.zero_grad(set_to_none=True)
        logits.gather(1, classes[:, None]).sum().backward()
    finally:
        handle.remove()
        for m in inplace:
            m.inplace = True
    a, g = store["a"].detach(), store["g"].detach()
    cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear",
                                          align_corners=False)[:, 0]  # fmt: skip
    peak = cam.flatten(1).max(1).values.clamp(min=1e-12)[:, None, None]
    return cam / peak


def cam_to_box(cam: np.ndarray, threshold: float = 0.5) -> tuple[float, float, float, float]:
    """Bounding box (x, y, w, h) of the largest connected region of ``cam >= threshold``."""
    mask = cam >= threshold
    regions, n = ndimage.label(mask)
    if n == 0:
        return (0.0, 0.0, 0.0, 0.0)
    sizes = ndimage.sum(mask, regions, index=range(1, n + 1))
    ys, xs = np.nonzero(regions == 1 + int(np.argmax(sizes)))
    return (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1))  # fmt: skip


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def boxes_on_test_images(labels_csv, splits_csv, bbox_csv) -> pd.DataFrame:
    """Expert boxes on images of the test split, with the image's row in the store (``row``)."""
    labels = pd.read_csv(labels_csv, usecols=["image"])
    split = pd.read_csv(splits_csv, usecols=["split"])["split"].to_numpy()
    row_of = {n: i for i, n in enumerate(labels["image"])}
    boxes = read_bbox_list(bbox_csv)
    boxes["row"] = boxes["image"].map(row_of)
    on_test = boxes["row"].map(lambda r: not pd.isna(r) and split[int(r)] == "test")
    boxes = boxes[on_test].reset_index(drop=True)
    boxes["row"] = boxes["row"].astype(int)
    return boxes


def localize(checkpoint, store_h5, labels_csv, splits_csv, average_npy, stats_json, bbox_csv,
             box_space: int, out_table, cam_threshold=0.5, iou_thresholds=IOU_THRESHOLDS,
             device="auto", batch_size=32) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Wang et al. (2017)'s localisation accuracy: for every expert box on a test image, the
    box of the labelled class's CAM counts as correct at IoU >= T. Boxes are rescaled from
    ``box_space`` (1024 for NIH) to the stored size. Returns (table, per-box results)."""
    model, ckpt, dev, normalize = _setup(checkpoint, average_npy, stats_json, device)
    boxes = boxes_on_test_images(labels_csv, splits_csv, bbox_csv)
    results = []
    if len(boxes):
        rows = boxes["row"].to_numpy()
        images = read_rows(store_h5, rows)
        size = images.shape[-1]
        scale = size / box_space
        cls = torch.as_tensor([LABELS.index(c) for c in boxes["label"]])
        for start in range(0, len(boxes), batch_size):
            sl = slice(start, start + batch_size)
            x = normalize(images[sl].to(dev))
            cams = grad_cam(model, x, cls[sl].to(dev))
            cams = torch.nn.functional.interpolate(cams[:, None], size=(size, size),
                                                   mode="bilinear")[:, 0].cpu().numpy()  # fmt: skip
            for j, cam in enumerate(cams):
                b = boxes.iloc[start + j]
                gt = (b.x * scale, b.y * scale, b.w * scale, b.h * scale)
                pred = cam_to_box(cam, cam_threshold)
                results.append({"image": b.image, "label": b.label, "iou": iou(pred, gt),
                                "gt": gt, "pred": pred})  # fmt: skip
    res = pd.DataFrame(results, columns=["image", "label", "iou", "gt", "pred"])
    table_rows = []
    for label in [*LABELS, "all"]:
        sel = res if label == "all" else res[res["label"] == label]
        row = {"label": label, "n_boxes": len(sel),
               "mean_iou": sel["iou"].mean() if len(sel) else np.nan}  # fmt: skip
        for t in iou_thresholds:
            row[f"acc_iou_{t:g}"] = (sel["iou"] >= t).mean() if len(sel) else np.nan
        table_rows.append(row)
    table = pd.DataFrame(table_rows)
    table.to_csv(out_table, index=False, float_format="%.6g")
    log.info("localisation of %d boxes: accuracy at IoU 0.3 %.3f", len(res),
             table.iloc[-1]["acc_iou_0.3"])  # fmt: skip
    return table, res


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.parameters() if p.requires_grad)
