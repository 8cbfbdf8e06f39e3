"""Downsampling throughput: the pipeline's shard job vs. a bare PIL loop, side by side.

    .venv/bin/python bench/bench_downsample.py [--copies 10] [--repeats 5] [--threads 1 2]

Both sides decode the same real NIH PNGs (../shared/data/nih/images, each copied ``--copies``
times under new names) to 256x256 with the same filter. The bare loop is
``Image.open(p).convert('L').resize((256, 256), BILINEAR)`` into a preallocated array (threaded
with the same number of threads where threads > 1); the pipeline is
``cxr14.store.downsample_shard`` (validation, mode handling, HDF5 writes, skip bookkeeping).
Runs alternate (bare, pipeline, bare, ...) so that machine noise hits both; the ratio reported
is the median of the per-pair ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cxr14.store import downsample_shard

REPO = Path(__file__).resolve().parents[1]
NIH = Path(os.environ.get("CXR14_NIH_SAMPLE", REPO.parent / "shared/data/nih"))
SIZE = 256


def bare_loop(paths: list[str], threads: int) -> np.ndarray:
    out = np.empty((len(paths), SIZE, SIZE), np.uint8)

    def one(i: int) -> None:
        im = Image.open(paths[i]).convert("L").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        out[i] = np.asarray(im)

    if threads == 1:
        for i in range(len(paths)):
            one(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(len(paths))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    src = sorted((NIH / "images").glob("*.png"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "images").mkdir()
        names = []
        for k in range(args.copies):
            for p in src:
                name = f"{k:03d}{p.name}"
                shutil.copy(p, tmp / "images" / name)
                names.append(name)
        entries = tmp / "entries.csv"
        pd.DataFrame({"image": names, "path": [f"images/{n}" for n in names]}).to_csv(
            entries, index=False
        )
        paths = [str(tmp / "images" / n) for n in names]
        bare_loop(paths, 1)  # warm the page cache for both sides
        print(
            f"{len(paths)} real NIH PNGs (1024x1024) -> {SIZE}x{SIZE}, bilinear, "
            f"{os.cpu_count()} CPUs"
        )
        print("threads  bare img/s  pipeline img/s  ratio (median of pairs)")
        for threads in args.threads:
            bare, ours = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                bare_loop(paths, threads)
                bare.append(len(paths) / (time.perf_counter() - t))
                t = time.perf_counter()
                downsample_shard(
                    entries, tmp, 0, 1, tmp / "s.h5", SIZE, "bilinear", "error", threads
                )
                ours.append(len(paths) / (time.perf_counter() - t))
            ratio = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
            print(
                f"{threads:7d}  {statistics.median(bare):10.1f}  "
                f"{statistics.median(ours):14.1f}  {ratio:.3f}"
            )


if __name__ == "__main__":
    main()
