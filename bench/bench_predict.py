"""`cxr14 predict` on the CPU: today's default path against the path it replaced, beside decoding.

    .venv/bin/python bench/bench_predict.py [--copies 2] [--repeats 3] [--archs A B]
    .venv/bin/python bench/bench_predict.py --memory 200 2000 [--archs densenet121]

Every side reads the same real NIH PNGs (../shared/data/nih/images, each copied ``--copies``
times) and the same bundle (random weights at the NIH preset's sizes: 256x256 input,
``config/nih.yaml``'s vgg_like widths; the speed does not depend on the values):

- floor: the decoding and resize to 256x256 that prediction starts with
  (``cxr14.dicom.decode_images``), alone, on one thread and on ``--threads``;
- before: ``cxr14.predict.predict`` as it was, PyTorch with each batch decoded when it is
  needed (``backend="torch", prefetch=0``);
- now: ``predict``'s defaults (``backend="auto"``: onnxruntime on the CPU, its graph cached
  beside the bundle by a first call, timed apart; decoding overlapped with the network).

Runs alternate (floor, before, now, ...); the medians are reported. ``--memory`` predicts N
images (links to the same PNGs) in a fresh process per N with the default path and reports each
process's peak resident memory. ``--device cuda`` measures on a GPU (``now`` is then PyTorch
with decoding overlapped).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cxr14.backends import cpu_threads
from cxr14.bundle import build_bundle
from cxr14.checkpoint import atomic_save
from cxr14.data import Normalizer
from cxr14.device import resolve_device
from cxr14.dicom import decode_images
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


def floor(paths, threads: int) -> float:
    """Images/s of the decoding alone."""
    t = time.perf_counter()
    for _ in decode_images(paths, 256, "bilinear", threads if threads > 1 else 0):
        pass
    return len(paths) / (time.perf_counter() - t)


def timed(bundle, folder, out, **kwargs) -> float:
    """Seconds of one ``predict`` call."""
    t = time.perf_counter()
    predict(bundle, [folder], out, **kwargs)
    return time.perf_counter() - t


def speed(args, tmp: Path, paths: list[Path]) -> None:
    print(
        f"{len(paths)} real NIH PNGs (1024x1024), device {resolve_device(args.device)}, "
        f"{args.threads} threads, batch {args.batch_size}"
    )
    print(
        "arch          floor 1 thr  floor img/s  before img/s  now img/s  now/before  first call s"
    )
    common = {"device": args.device, "batch_size": args.batch_size, "threads": args.threads}
    for arch in args.archs:
        bundle, out = tmp / f"{arch}.pt", tmp / "out" / "p.csv"
        make_bundle(arch, bundle)
        first = timed(bundle, tmp / "images", out, **common)  # exports the ONNX graph
        runs = {"floor1": [], "floor": [], "before": [], "now": []}
        for _ in range(args.repeats):
            runs["floor1"].append(floor(paths, 1))
            runs["floor"].append(floor(paths, args.threads))
            old = {"backend": "torch", "prefetch": 0}
            runs["before"].append(len(paths) / timed(bundle, tmp / "images", out, **common, **old))
            runs["now"].append(len(paths) / timed(bundle, tmp / "images", out, **common))
        m = {k: statistics.median(v) for k, v in runs.items()}
        print(
            f"{arch:12s}  {m['floor1']:11.1f}  {m['floor']:11.1f}  {m['before']:12.1f}  "
            f"{m['now']:9.1f}  {m['now'] / m['before']:10.2f}  {first:12.1f}"
        )


CHILD = """
import resource, sys, time
from cxr14.predict import predict
t = time.perf_counter()
model, folder, out, device, threads, batch = sys.argv[1:]
table, _ = predict(model, [folder], out, device, int(batch), threads=int(threads))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(len(table), f"{time.perf_counter() - t:.1f}", f"{rss:.0f}")
"""


def memory(args, tmp: Path, src: list[Path]) -> None:
    """Peak resident memory of predicting N images, each N in a fresh process."""
    print(
        f"peak memory of `predict` (default path), device {args.device}, {args.threads} threads, "
        f"batch {args.batch_size}"
    )
    print("arch          images  seconds  peak RSS MiB")
    for arch in args.archs:
        make_bundle(arch, tmp / f"{arch}.pt")
        predict(tmp / f"{arch}.pt", src[:1], tmp / "warm.csv", args.device)  # caches the graph
        for n in args.memory:
            folder = tmp / f"links{n}"
            folder.mkdir(exist_ok=True)
            for i in range(n):
                (folder / f"{i:05d}.png").symlink_to(src[i % len(src)])
            cmd = [sys.executable, "-c", CHILD, str(tmp / f"{arch}.pt"), str(folder)]
            cmd += [str(tmp / f"m{n}.csv"), args.device, str(args.threads), str(args.batch_size)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows, seconds, rss = proc.stdout.split()
            print(f"{arch:12s}  {int(rows):6d}  {float(seconds):7.1f}  {float(rss):12.0f}")
            shutil.rmtree(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--archs", nargs="+", default=["vgg_like", "densenet121"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=cpu_threads())
    ap.add_argument("--memory", type=int, nargs="+", help="peak memory of N images, each N")
    args = ap.parse_args()
    logging.getLogger("cxr14").setLevel(logging.ERROR)  # the random weights' warning, per call
    src = sorted((NIH / "images").glob("*.png"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.memory:
            memory(args, tmp, src)
            return
        (tmp / "images").mkdir()
        for k in range(args.copies):
            for p in src:
                shutil.copy(p, tmp / "images" / f"{k:03d}{p.name}")
        speed(args, tmp, sorted((tmp / "images").iterdir()))


if __name__ == "__main__":
    main()
