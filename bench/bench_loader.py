"""Input pipeline throughput: the project's loader vs. a per-image PNG Dataset, side by side.

    .venv/bin/python bench/bench_loader.py [--images 480] [--batch 64] [--workers 2]

The PNG side is what CheXNet re-implementations do: a torch ``Dataset`` that opens each PNG
with PIL, converts it, resizes it to 256x256 and normalises it (torchvision transforms), behind a
``DataLoader`` with ``--workers`` worker processes. Its files are real NIH PNGs (the 24 samples,
copied under new names). The project's side reads the HDF5 store once (timed separately) and
serves batches from memory: gather + normalisation with the average image (here on the CPU, the
slowest device it runs on). Both produce float (B, 1, 256, 256) batches; samples/s are medians
of alternating repeats.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from cxr14.data import DeviceData, Normalizer, read_rows

REPO = Path(__file__).resolve().parents[1]
NIH = Path(os.environ.get("CXR14_NIH_SAMPLE", REPO.parent / "shared/data/nih"))


class PngDataset(Dataset):
    def __init__(self, paths, labels):
        self.paths, self.labels = paths, labels
        self.tf = transforms.Compose(
            [
                transforms.Resize((256, 256)),
                transforms.ToTensor(),
                transforms.Normalize([0.5], [0.25]),
            ]
        )

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.tf(Image.open(self.paths[i]).convert("L")), self.labels[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=480)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    src = sorted((NIH / "images").glob("*.png"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = []
        for i in range(args.images):
            p = tmp / f"{i:06d}.png"
            shutil.copy(src[i % len(src)], p)
            paths.append(str(p))
        labels = torch.zeros(args.images, 14)
        # The store the pipeline would have built from these files.
        with h5py.File(tmp / "store.h5", "w") as h5:
            h5["images"] = np.stack(
                [np.asarray(Image.open(p).convert("L").resize((256, 256))) for p in paths]
            )
        t = time.perf_counter()
        images = read_rows(str(tmp / "store.h5"), np.arange(args.images))
        load_s = time.perf_counter() - t
        data = DeviceData(images, labels, torch.device("cpu"))
        norm = Normalizer(np.full((256, 256), 128.0, np.float32), 64.0, 256)
        loader = DataLoader(
            PngDataset(paths, labels),
            batch_size=args.batch,
            shuffle=True,
            num_workers=args.workers,
            persistent_workers=True,
        )
        ours, png = [], []
        rng = np.random.default_rng(0)
        for _ in range(args.repeats):
            t = time.perf_counter()
            n = 0
            for x, _y in data.batches(rng.permutation(args.images), args.batch):
                n += len(norm(x))
            ours.append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            n = sum(len(x) for x, _y in loader)
            png.append(n / (time.perf_counter() - t))
        o, p = statistics.median(ours), statistics.median(png)
        print(f"{args.images} images, batch {args.batch}, {os.cpu_count()} CPUs")
        print(f"store -> memory, once: {load_s:.2f} s ({args.images / load_s:.0f} images/s)")
        print(f"per-image PNG Dataset ({args.workers} workers): {p:9.1f} samples/s")
        print(f"project loader (in-memory, CPU normalise): {o:9.1f} samples/s")
        print(f"ratio: {o / p:.0f}x")


if __name__ == "__main__":
    main()
