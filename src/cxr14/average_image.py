"""The "average image" used to normalise inputs, and the global pixel standard deviation."""

from __future__ import annotations

import json
import logging
import os

import h5py
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

BLOCK = 512  # images read per HDF5 request (32 MiB at 256x256)


def compute_average_image(
    store_h5: str | os.PathLike,
    out_npy: str | os.PathLike,
    out_json: str | os.PathLike,
    splits_csv: str | os.PathLike | None = None,
    over: str = "train",
) -> np.ndarray:
    """Mean image (float32, in 0..255) and pixel std over the training split or all images.

    ``over: train`` (default) keeps validation and test images out of the statistics; the reference
    study averaged over all images, which leaks test data into the normalisation. Streams the
    store in blocks, accumulating in float64, so memory stays flat.
    """
    with h5py.File(store_h5, "r") as h5:
        images = h5["images"]
        n, size = images.shape[0], images.shape[1:]
        if over == "all":
            mask = np.ones(n, dtype=bool)
        elif over == "train":
            if splits_csv is None:
                raise ValueError("over='train' needs splits_csv")
            split = pd.read_csv(splits_csv, usecols=["split"])["split"].to_numpy()
            if len(split) != n:
                raise ValueError(f"{splits_csv} has {len(split)} rows, {store_h5} {n} images")
            mask = split == "train"
        else:
            raise ValueError(f"average_image.over must be 'train' or 'all', not {over!r}")
        if not mask.any():
            raise ValueError(f"no images to average over ({over})")
        total = np.zeros(size, np.float64)
        total_sq = 0.0
        for start in range(0, n, BLOCK):
            sel = mask[start : start + BLOCK]
            if not sel.any():
                continue
            block = images[start : start + BLOCK][sel].astype(np.float64)
            total += block.sum(axis=0)
            total_sq += float(np.square(block).sum())
    count = int(mask.sum())
    mean_img = (total / count).astype(np.float32)
    n_px = count * mean_img.size
    mean = float(total.sum() / n_px)
    std = float(np.sqrt(max(total_sq / n_px - mean**2, 0.0)))
    np.save(out_npy, mean_img)
    stats = {"over": over, "n_images": count, "size": list(size), "mean": mean, "std": std}
    with open(out_json, "w") as f:
        json.dump(stats, f, indent=2)
    log.info("average image over %s (%d images): mean %.3f, std %.3f", over, count, mean, std)
    return mean_img
