"""Localising findings with class activation maps (Wang et al. 2017's protocol).

For every expert box on a test image, the Grad-CAM of the labelled class is thresholded at a
fraction of its maximum, the bounding box of its largest region is taken, and its IoU and IoBB
(intersection over the detected box's area, Wang et al.'s T(IoBB)) with the expert box are
scored; accuracies come with Wilson 95% intervals and their box counts (docs/evaluation.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from cxr14.data import read_rows
from cxr14.files import replacing
from cxr14.gradcam import grad_cam
from cxr14.inference import Scorer
from cxr14.logs import CONSOLE
from cxr14.metrics import wilson_interval

log = logging.getLogger(__name__)


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


def _intersection(a, b) -> float:
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return iw * ih


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    inter = _intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def iobb(detected, expert) -> float:
    """Intersection over the detected box's own area (Wang et al. 2017's IoBB): forgiving of
    a detected box inside a large finding, as coarse CAMs give large boxes; 0 for an empty
    detection."""
    area = detected[2] * detected[3]
    return _intersection(detected, expert) / area if area > 0 else 0.0


def boxes_on_test_split(boxes: pd.DataFrame, labels_csv, splits_csv) -> pd.DataFrame:
    """Those of ``boxes`` (``boxes.csv``, in the stored images' pixels) on images of the test
    split, with the image's row in the store (``row``)."""
    labels = pd.read_csv(labels_csv, usecols=["image"])
    split = pd.read_csv(splits_csv, usecols=["split"])["split"].to_numpy()
    row_of = {n: i for i, n in enumerate(labels["image"])}
    boxes = boxes.copy()
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
    expert: list[tuple]  # (x, y, w, h), as in boxes.csv
    predicted: list[tuple]  # box of the CAM's largest region above the threshold
    ious: list[float]
    iobbs: list[float]


def cam_boxes(
    scorer: Scorer,
    store_h5,
    boxes: pd.DataFrame,
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
    expert = [(b.x, b.y, b.w, b.h) for b in boxes.itertuples()]
    predicted = [cam_to_box(c, cam_threshold) for c in cams]
    pairs = list(zip(predicted, expert, strict=True))
    ious, iobbs = [iou(p, e) for p, e in pairs], [iobb(p, e) for p, e in pairs]
    return CamBoxes(images, cams, expert, predicted, ious, iobbs)


def cam_examples(boxes: pd.DataFrame, n_images: int) -> pd.DataFrame:
    """Up to ``n_images`` boxes on distinct images, covering as many classes as possible:
    first one box per class (each on a new image), then further images."""
    chosen, images, labels = [], set(), set()
    for new_label_only in (True, False):
        for i, b in enumerate(boxes.itertuples()):
            if len(chosen) == n_images:
                break
            if b.image in images or (new_label_only and b.label in labels):
                continue
            chosen.append(i)
            images.add(b.image)
            labels.add(b.label)
    return boxes.iloc[chosen].reset_index(drop=True)


def write_cam_examples(
    scorer: Scorer, store_h5, boxes: pd.DataFrame, cam_threshold, n_images, out_npz
) -> None:
    """The Grad-CAM figure's data: up to ``n_images`` of ``boxes`` (``cam_examples``), each
    with its image, CAM, expert and CAM boxes, IoU and the labelled class's probability; and
    the layer read (``''``: the architecture's own) and ``n_images`` asked."""
    chosen = cam_examples(boxes, n_images)
    arrays = {
        "image": chosen["image"].to_numpy(dtype=str),
        "label": chosen["label"].to_numpy(dtype=str),
        "layer": np.array(scorer.cam_layer_path),
        "asked": np.array(n_images),
    }
    if len(chosen):
        found = cam_boxes(scorer, store_h5, chosen, cam_threshold)
        columns = [scorer.labels.index(c) for c in chosen["label"]]
        arrays |= {
            "pixels": found.images.numpy(),
            "cam": found.cams,
            "expert": np.array(found.expert),
            "predicted": np.array(found.predicted),
            "iou": np.array(found.ious),
            "prob": scorer.predict(found.images)[np.arange(len(chosen)), columns],
        }
    with replacing(out_npz, suffix=".tmp.npz") as tmp:  # np.savez appends .npz otherwise
        np.savez_compressed(tmp, **arrays)


def accuracy_table(
    results: pd.DataFrame, labels, iou_thresholds, iobb_thresholds=(), boxes_in_file=None
) -> pd.DataFrame:
    """Per class and over ``all`` boxes: the number of boxes scored (and, given
    ``boxes_in_file``, of the class's boxes in the whole box file), mean IoU and IoBB, and
    the fraction with IoU >= T and IoBB >= T, each with its Wilson 95% interval."""
    rows = []
    for label in [*labels, "all"]:
        sel = results if label == "all" else results[results["label"] == label]
        row = {"label": label, "n_boxes": len(sel)}
        if boxes_in_file is not None:
            in_file = boxes_in_file if label == "all" else boxes_in_file[boxes_in_file == label]
            row["n_boxes_in_file"] = len(in_file)
        for measure, thresholds in (("iou", iou_thresholds), ("iobb", iobb_thresholds)):
            if measure not in sel:
                continue
            row[f"mean_{measure}"] = sel[measure].mean()
            for t in thresholds:
                hits = int((sel[measure] >= t).sum())
                name = f"acc_{measure}_{t:g}"
                row[name] = hits / len(sel) if len(sel) else np.nan
                row[f"{name}_ci_low"], row[f"{name}_ci_high"] = wilson_interval(hits, len(sel))
        rows.append(row)
    return pd.DataFrame(rows)


def localize(
    checkpoint,
    store_h5,
    labels_csv,
    splits_csv,
    boxes_csv,
    out_table,
    out_cams,
    cam_threshold=0.5,
    cam_images=6,
    iou_thresholds=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    iobb_thresholds=(0.1, 0.25, 0.5, 0.75, 0.9),
    device="auto",
    cam_layer="",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wang et al. (2017)'s localisation accuracy: for every expert box on a test image, the
    box of the labelled class's CAM counts as correct at IoU >= T (or IoBB >= T). ``boxes_csv``:
    the parse stage's ``boxes.csv`` (stored-image pixels). Returns (table, per-box results).
    ``cam_layer``: a module path to read instead of the architecture's layer. Also writes the
    Grad-CAM figure's data for ``cam_images`` examples (``write_cam_examples``)."""
    scorer = Scorer.load(checkpoint, device=device, cam_layer=cam_layer)
    all_boxes = pd.read_csv(boxes_csv)
    boxes = boxes_on_test_split(all_boxes, labels_csv, splits_csv)
    in_file = all_boxes["label"]
    found = cam_boxes(scorer, store_h5, boxes, cam_threshold)
    res = pd.DataFrame(
        {
            "image": boxes["image"],
            "label": boxes["label"],
            "iou": found.ious,
            "iobb": found.iobbs,
            "gt": found.expert,
            "pred": found.predicted,
        }
    )
    table = accuracy_table(res, scorer.labels, iou_thresholds, iobb_thresholds, in_file)
    table.to_csv(out_table, index=False, float_format="%.6g")
    write_cam_examples(scorer, store_h5, boxes, cam_threshold, cam_images, out_cams)
    log.info(
        "%s: localisation of %d of the %d boxes (those on test images): accuracy at IoU 0.3 "
        "%.3f (95%% CI %.3f-%.3f)",
        scorer.name,
        len(res),
        len(in_file),
        *(table.iloc[-1].get(f"acc_iou_0.3{s}", np.nan) for s in ("", "_ci_low", "_ci_high")),
        extra=CONSOLE,
    )
    return table, res
