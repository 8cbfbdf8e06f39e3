"""`cxr14 predict` throughput from 1024x1024 PNGs, beside the decode+resize loop alone.

    .venv/bin/python bench/bench_predict.py [--copies 4] [--repeats 3] [--archs A B]

Both sides read the same real NIH PNGs (../shared/data/nih/images, each copied ``--copies``
times). The floor is the decoding and resize to 256x256 that prediction starts with
(``cxr14.dicom.load_image``, one thread). ``cxr14.predict.predict`` then adds the network
(random weights at the NIH preset's sizes: 256x256 input, ``config/nih.yaml``'s vgg_like
widths; the speed does not depend on the values), batching and the CSV files. Runs alternate
(floor, predict, ...); the medians are reported. ``--device cuda`` measures on a GPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cxr14.bundle import build_bundle
from cxr14.checkpoint import atomic_save
from cxr14.data import Normalizer
from cxr14.device import resolve_device
from cxr14.dicom import load_image
from cxr14.inference import Scorer
from cxr14.layouts.nih import LABELS
from cxr14.models import build_model
from cxr14.predict import predict
from cxr14.settings import preset

REPO = Path(__file__).resolve().parents[1]
NIH = Path(os.environ.get("CXR14_NIH_SAMPLE", REPO.parent / "shared/data/nih"))
# The NIH preset's model settings (the reference study's layouts), without pretrained weights.
SETTINGS = {
    arch: {**settings, "weights": "none"} if "weights" in settings else settings
    for arch, settings in preset("nih.yaml")["models"].items()
}


def make_bundle(arch: str, path: Path) -> None:
    model = build_model(arch, len(LABELS), **SETTINGS[arch]).eval()
    config = {"arch": arch, "run": arch, "input_size": 256, **SETTINGS[arch]}
    ckpt = {"config": config, "labels": list(LABELS), "weights_used": "none", "best_epoch": 0}
    average = np.full((256, 256), 128, np.float32)
    scorer = Scorer(model, Normalizer(average, 60.0, 256), torch.device("cpu"), ckpt)
    y = np.tile([[0, 1]], (10, 7))
    keys = ("auroc", "auroc_ci_low", "auroc_ci_high", "n_pos", "n_neg", "ece", "ece_scaled")
    test = {c: dict.fromkeys(keys, 0.5) for c in [*LABELS, "mean"]}
    provenance = {
        "run": arch,
        "split": "-",
        "seed": 0,
        "split_method": "-",
        "dataset": "bench",
        "caveat": "random weights",
    }
    preprocess = {"store_size": 256, "resample": "bilinear"}
    atomic_save(build_bundle(scorer, y, y * 0.5, preprocess, provenance, test, 0.9), path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--archs", nargs="+", default=["vgg_like", "densenet121"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    src = sorted((NIH / "images").glob("*.png"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        for k in range(args.copies):
            for p in src:
                shutil.copy(p, tmp / "images" / f"{k:03d}{p.name}")
        paths = sorted((tmp / "images").iterdir())
        print(
            f"{len(paths)} real NIH PNGs (1024x1024), device {resolve_device(args.device)}, "
            f"torch threads {torch.get_num_threads()}, batch {args.batch_size}"
        )
        print("arch          floor img/s  predict img/s  predict / floor")
        for arch in args.archs:
            make_bundle(arch, tmp / f"{arch}.pt")
            floor, ours = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                for p in paths:
                    load_image(p, 256, "bilinear")
                floor.append(len(paths) / (time.perf_counter() - t))
                t = time.perf_counter()
                predict(
                    tmp / f"{arch}.pt",
                    [tmp / "images"],
                    tmp / "out" / "p.csv",
                    args.device,
                    args.batch_size,
                )
                ours.append(len(paths) / (time.perf_counter() - t))
            f, o = statistics.median(floor), statistics.median(ours)
            print(f"{arch:12s}  {f:11.1f}  {o:13.1f}  {o / f:.2f}")


if __name__ == "__main__":
    main()
