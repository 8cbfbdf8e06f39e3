"""Localising findings with class activation maps (Wang et al. 2017's protocol).

For every expert box on a test image, the Grad-CAM of the labelled class is thresholded at a
fraction of its maximum, the bounding box of its largest region is taken, and the IoU with the
expert box is scored (docs/evaluation.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from cxr14.data import read_rows
from cxr14.inference import Scorer
from cxr14.layouts import get_layout
from cxr14.logs import CONSOLE

log = logging.getLogger(__name__)


def grad_cam(model, layer, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) at ``layer`` of ``classes[i]`` for image ``x[i]``,
    upsampled to the input size and scaled to [0, 1] per image. ``x``: normalised (B, 1, H, W).
    """
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
    cam = torch.nn.functional.interpolate(
        cam, size=x.shape[-2:], mode="bilinear", align_corners=False
    )[:, 0]
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
    x0, y0 = float(xs.min()), float(ys.min())
    return (x0, y0, float(xs.max()) - x0 + 1, float(ys.max()) - y0 + 1)


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def boxes_on_test_images(layout: str, labels_csv, splits_csv, bbox_csv) -> pd.DataFrame:
    """Expert boxes on images of the test split, with the image's row in the store (``row``)."""
    labels = pd.read_csv(labels_csv, usecols=["image"])
    split = pd.read_csv(splits_csv, usecols=["split"])["split"].to_numpy()
    row_of = {n: i for i, n in enumerate(labels["image"])}
    boxes = get_layout(layout).read_boxes(bbox_csv)
    boxes["row"] = boxes["image"].map(row_of)
    on_test = boxes["row"].map(lambda r: not pd.isna(r) and split[int(r)] == "test")
    boxes = boxes[on_test].reset_index(drop=True)
    boxes["row"] = boxes["row"].astype(int)
    return boxes


@dataclass
class CamBoxes:
    """Grad-CAMs of some boxes' images at the stored size, with both boxes in its pixels."""

    images: torch.Tensor  # (n, S, S) uint8
    cams: np.ndarray  # (n, S, S) in [0, 1]
    expert: list[tuple]  # (x, y, w, h), rescaled from the layout's box space
    predicted: list[tuple]  # box of the CAM's largest region above the threshold
    ious: list[float]


def cam_boxes(
    scorer: Scorer,
    store_h5,
    boxes: pd.DataFrame,
    box_space: int,
    cam_threshold: float,
    batch_size: int = 32,
) -> CamBoxes:
    """The CAM of each box's labelled class on its image, and the boxes compared by IoU."""
    images = read_rows(store_h5, boxes["row"].to_numpy())
    size = images.shape[-1]
    cls = torch.as_tensor([scorer.labels.index(c) for c in boxes["label"]])
    cams = []
    for start in range(0, len(boxes), batch_size):
        sl = slice(start, start + batch_size)
        x = scorer.normalize(images[sl].to(scorer.device))
        cam = grad_cam(scorer.model, scorer.cam_layer(), x, cls[sl].to(scorer.device))
        cam = torch.nn.functional.interpolate(cam[:, None], size=(size, size), mode="bilinear")
        cams.append(cam[:, 0].cpu().numpy())
    cams = np.concatenate(cams) if cams else np.zeros((0, size, size))
    scale = size / box_space
    expert = [(b.x * scale, b.y * scale, b.w * scale, b.h * scale) for b in boxes.itertuples()]
    predicted = [cam_to_box(c, cam_threshold) for c in cams]
    ious = [iou(p, e) for p, e in zip(predicted, expert, strict=True)]
    return CamBoxes(images, cams, expert, predicted, ious)


def accuracy_table(results: pd.DataFrame, labels, iou_thresholds) -> pd.DataFrame:
    """Per class and over ``all`` boxes: count, mean IoU and the fraction with IoU >= T."""
    rows = []
    for label in [*labels, "all"]:
        sel = results if label == "all" else results[results["label"] == label]
        row = {"label": label, "n_boxes": len(sel), "mean_iou": sel["iou"].mean()}
        for t in iou_thresholds:
            row[f"acc_iou_{t:g}"] = (sel["iou"] >= t).mean() if len(sel) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def localize(
    checkpoint,
    store_h5,
    labels_csv,
    splits_csv,
    average_npy,
    stats_json,
    bbox_csv,
    layout: str,
    box_space: int,
    out_table,
    cam_threshold=0.5,
    iou_thresholds=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    device="auto",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wang et al. (2017)'s localisation accuracy: for every expert box on a test image, the
    box of the labelled class's CAM counts as correct at IoU >= T. Boxes are rescaled from
    ``box_space`` (1024 for NIH) to the stored size. Returns (table, per-box results)."""
    scorer = Scorer.load(checkpoint, average_npy, stats_json, device)
    boxes = boxes_on_test_images(layout, labels_csv, splits_csv, bbox_csv)
    found = cam_boxes(scorer, store_h5, boxes, box_space, cam_threshold)
    res = pd.DataFrame(
        {
            "image": boxes["image"],
            "label": boxes["label"],
            "iou": found.ious,
            "gt": found.expert,
            "pred": found.predicted,
        }
    )
    table = accuracy_table(res, scorer.labels, iou_thresholds)
    table.to_csv(out_table, index=False, float_format="%.6g")
    log.info(
        "%s: localisation of %d boxes: accuracy at IoU 0.3 %.3f",
        scorer.name,
        len(res),
        table.iloc[-1].get("acc_iou_0.3", np.nan),
        extra=CONSOLE,
    )
    return table, res
