"""GPU training-step time with the project's loader vs. tensors already on the GPU; eager vs.
compiled; achieved TFLOP/s; and an end-to-end epoch from PNG files against a CheXNet-style loop.

    python bench/bench_gpu.py [--archs vgg_like resnet18 densenet121] [--steps 60] [--demo]
        [--variants] [--e2e 20000] [--no-loader]

On a machine with a CUDA GPU, ``bench/gpu_session.sh`` runs everything in one call of under 10 min.

For each architecture (batch 64, 256x256, bf16 autocast, channels_last, Adam, W-CEL):

- ``pre``: the input batches are already normalised float tensors on the GPU (the floor);
- ``device``: the project's loader with the uint8 store resident on the GPU (gather, normalise
  with the average image, channels_last, all on the device) - what train() does when it fits;
- ``host``: the store in pinned host memory, batches gathered and copied by the background
  thread while the GPU computes - what train() does when the store is larger than the GPU.

Each mode runs twice (orders pre-device-host, then host-device-pre); the faster run counts.

``--variants`` then times, per architecture with the project's loader (``device``), eager and
``torch.compile``d steps, channels_last vs. the default memory format and Adam's fused kernel,
with the peak GPU memory of each and the achieved TFLOP/s (FLOPs per image counted by
``torch.utils.flop_counter``, forward and backward) as a share of the card's dense bf16 peak
(``bench/gpu_peaks.csv``).

``--backbones`` times each architecture's training step with the project's loader side by side
(two rounds in opposite orders), as images/s and as a ratio to the first (densenet121 vs. timm's
backbones: ``--archs densenet121 convnext_tiny efficientnet_b0 vit_small_patch16_224``; also on
a CPU with ``--device cpu``).

``--e2e N`` writes N synthetic 1024x1024 PNGs and times one training epoch of densenet121 over
the training split from the files: this pipeline (store build, then train() at 256x256, bf16,
channels_last) against the CheXNet reimplementations' loop (``bench/chexnet_baseline.py``:
PIL per image, a DataLoader on every core, fp32, 224x224, batch 16), in one run.

``--demo`` then runs the whole library pipeline on a synthetic set (2,000 images) and trains
the reference study's vgg_like at 256x256 for 3 epochs with train(), reporting samples/s and
validation AUROC.
Needs only torch, h5py, numpy, pandas, pillow, scikit-learn and tqdm (PYTHONPATH=src).
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from cxr14.data import DeviceData, Normalizer, read_rows
from cxr14.losses import wcel
from cxr14.models import ARCHITECTURES, build_model
from cxr14.settings import preset

# The NIH preset's model settings (the reference study's layouts), every layer trained, no
# pretrained weights (none are downloaded).
REFERENCE_SETTINGS = {
    arch: {**settings, "weights": "none", "freeze": "none"} if "weights" in settings else settings
    for arch, settings in preset("nih.yaml")["models"].items()
} | {  # timm's backbones (every layer trained, random weights), built for 256x256
    arch: {"weights": "none", "freeze": "none", "input_size": 256}
    for arch, entry in ARCHITECTURES.items()
    if entry.timm
}


# Every training setting, stated (the workflow takes them from config/config.yaml).
DEMO_SETTINGS = {
    "device": "auto",
    "seed": 0,
    "sampling": "oversample",
    "loss": "wcel",
    "augment": False,
    "batch_size": 64,
    "val_batch_size": 256,
    "lr": 1e-3,
    "milestones": [10],
    "gamma": 0.1,
    "amp": True,
    "channels_last": True,
    "compile": False,
    "fused_adam": False,
}


def step_times(
    arch, images, labels, mode, steps, batch, device, compiled=False, cl=True, fused=False
):
    """Median ms per training step and the peak GPU memory in MiB (NaN on the CPU)."""
    torch.manual_seed(0)
    fmt = torch.channels_last if cl else torch.contiguous_format
    model = build_model(arch, labels.shape[1], **REFERENCE_SETTINGS.get(arch, {})).to(
        device, memory_format=fmt
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, **({"fused": True} if fused else {}))
    forward = torch.compile(model) if compiled else model
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    norm = Normalizer(np.full((256, 256), 120.0, np.float32), 60.0, 256).to(device)
    n = len(labels)
    rng = np.random.default_rng(0)
    if mode == "pre":
        data = DeviceData(images, labels, device, max_device_fraction=1.0)
        pre = [
            (norm(x).contiguous(memory_format=fmt), y)
            for x, y in data.batches(rng.permutation(n)[: 8 * batch], batch)
        ]
        source = (pre[i % len(pre)] for i in range(10**9))
    else:
        fraction = 1.0 if mode == "device" else 0.0  # 0: pinned host memory
        data = DeviceData(images, labels, device, max_device_fraction=fraction)
        assert device.type != "cuda" or data.on_device == (mode == "device")

        def gen():
            while True:
                for x, y in data.batches(rng.permutation(n)[: n - n % batch], batch):
                    yield norm(x).contiguous(memory_format=fmt), y

        source = gen()
    model.train()
    times = []
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    warmup = 15 if cuda else 1
    for i in range(steps + warmup):
        if i == warmup:
            sync()
            t = time.perf_counter()
        x, y = next(source)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = wcel(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    times.append((time.perf_counter() - t) / steps)
    peak_mib = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else np.nan
    return 1000 * float(np.median(times)), peak_mib


def flops_per_image(arch: str, size: int, device) -> float:
    """FLOPs of one training step (forward and backward) per image, 2 per multiply-add."""
    model = build_model(arch, 14, **REFERENCE_SETTINGS.get(arch, {})).to(device)
    x = torch.randn(2, 1, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / 2


def dense_bf16_peak(name: str) -> tuple[float, str]:
    """The card's dense bf16 TFLOP/s and its source (NaN for a card not in gpu_peaks.csv)."""
    with open(Path(__file__).with_name("gpu_peaks.csv")) as f:
        for row in csv.DictReader(f):
            if row["name_contains"] in name:
                return float(row["dense_bf16_tflops"]), row["source"]
    return float("nan"), "card not in bench/gpu_peaks.csv"


VARIANTS = {  # name: (compiled, channels_last, fused Adam)
    "eager": (False, True, False),
    "eager, default format": (False, False, False),
    "eager, fused Adam": (False, True, True),
    "compiled": (True, True, False),
}


# config/nih.yaml: 120 epochs; an epoch of its patient_random split with oversampling is
# 108,372 training samples (89,701 training images; counted from the real metadata, BENCHMARKS.md).
NIH_EPOCHS, NIH_EPOCH_SAMPLES = 120, 108_372


def loader_table(archs, images, labels, steps, batch, device) -> None:
    """Each architecture's step with batches already on the GPU (``pre``), the store on the
    device and in pinned host memory: two rounds in opposite orders, the faster of each
    mode's two timings counts."""
    print("arch          pre ms/step  device ms/step (ratio)  host ms/step (ratio)")
    for arch in archs:
        runs: dict[str, list[float]] = {"pre": [], "device": [], "host": []}
        for m in ("pre", "device", "host", "host", "device", "pre"):
            ms, _ = step_times(arch, images, labels, m, steps, batch, device)
            runs[m].append(ms)
        r = {m: min(v) for m, v in runs.items()}
        dev, host = r["device"] / r["pre"], r["host"] / r["pre"]
        print(
            f"{arch:12s}  {r['pre']:11.2f}  {r['device']:10.2f} ({dev:.3f})"
            f"  {r['host']:10.2f} ({host:.3f})"
        )


def backbone_table(archs, images, labels, steps, batch, device) -> None:
    """Training throughput of each architecture with the project's loader (store on the
    device), side by side: two rounds in opposite orders, the faster of each counts; the ratio
    is to the first architecture's images/s."""
    ms: dict[str, list[float]] = {a: [] for a in archs}
    for arch in [*archs, *reversed(archs)]:
        ms[arch].append(step_times(arch, images, labels, "device", steps, batch, device)[0])
    print(f"\narch (batch {batch}, {images.shape[-1]} px): ms/step, images/s, ratio")
    first = batch * 1000 / min(ms[archs[0]])
    for arch in archs:
        rate = batch * 1000 / min(ms[arch])
        print(f"{arch:22s}  {min(ms[arch]):9.1f}  {rate:8.1f}  {rate / first:.2f}")


def variant_table(archs, images, labels, steps, batch, device, peak) -> None:
    """Each architecture's step under every ``VARIANTS`` entry, with the project's loader, and
    the training time of config/nih.yaml projected from the fastest."""
    print(f"\narch, variant: ms/step, images/s, peak MiB, TFLOP/s (share of {peak} peak)")
    for arch in archs:
        flops = flops_per_image(arch, images.shape[-1], device)
        base, best = None, None
        for name, (compiled, cl, fused) in VARIANTS.items():
            try:
                ms, mib = step_times(
                    arch, images, labels, "device", steps, batch, device, compiled, cl, fused
                )
            except Exception as e:  # e.g. compile on this software stack: report, go on
                first = (str(e).splitlines() or [""])[0][:200]
                print(f"{arch:12s} {name:22s} failed: {type(e).__name__}: {first}")
                continue
            base = ms if name == "eager" else base  # ratios against eager, or none
            best = min(best or ms, ms)
            tflops = flops * batch / (ms / 1000) / 1e12
            ratio = f"{base / ms:.2f}x" if base else "-"
            print(
                f"{arch:12s} {name:22s} {ms:8.2f} ({ratio}) {1000 * batch / ms:8.0f}"
                f" {mib:8.0f} {tflops:7.1f} ({tflops / peak:.1%})"
            )
        if best:
            hours = NIH_EPOCHS * NIH_EPOCH_SAMPLES / (1000 * batch / best) / 3600
            print(f"{arch:12s} config/nih.yaml training steps: {hours:.1f} h at the fastest")


def demo(tmp: Path, n_images: int, size: int, epochs: int):
    from cxr14.average_image import compute_average_image
    from cxr14.entries import build_entries
    from cxr14.oversample import make_oversample_index
    from cxr14.splits import make_splits
    from cxr14.store import downsample_shard, merge_shards
    from cxr14.synthetic import generate
    from cxr14.train import train

    t = time.perf_counter()
    generate(tmp / "syn", n_images=n_images, image_size=512, seed=0, workers=12)
    build_entries(
        "synthetic",
        tmp / "syn",
        tmp / "syn/Data_Entry_2017.csv",
        "error",
        tmp / "e.csv",
        tmp / "m.csv",
    )
    downsample_shard(tmp / "e.csv", tmp / "syn", 0, 1, tmp / "s.h5", 256, "bilinear", "error", 12)
    merge_shards(
        [tmp / "s.h5"],
        tmp / "e.csv",
        tmp / "m.csv",
        tmp / "store.h5",
        tmp / "l.csv",
        tmp / "sk.csv",
    )
    make_splits(tmp / "l.csv", tmp / "sp.csv", tmp / "c.csv")
    make_oversample_index(tmp / "l.csv", tmp / "sp.csv", tmp / "i.npy", tmp / "o.csv")
    compute_average_image(tmp / "store.h5", tmp / "a.npy", tmp / "p.json", tmp / "sp.csv")
    print(f"demo data stages: {time.perf_counter() - t:.1f} s")
    for arch, extra in (("vgg_like", {}), ("densenet121", {"weights": "none"})):
        t = time.perf_counter()
        hist = train(
            {**DEMO_SETTINGS, "arch": arch, "epochs": epochs, "input_size": size, **extra},
            tmp / "store.h5",
            tmp / "l.csv",
            tmp / "sp.csv",
            tmp / "i.npy",
            tmp / "a.npy",
            tmp / "p.json",
            tmp / arch,
        )
        print(f"train() {arch} at {size}x{size}, {epochs} epochs: {time.perf_counter() - t:.1f} s")
        print(hist.iloc[:, :7].to_string(index=False))


def build_store(tmp: Path, png_dir: Path, workers: int, size: int) -> None:
    """This pipeline's data stages from the PNGs, one shard per worker process."""
    from cxr14.average_image import compute_average_image
    from cxr14.entries import build_entries
    from cxr14.splits import make_splits
    from cxr14.store import downsample_shard, merge_shards

    meta = png_dir / "Data_Entry_2017.csv"
    build_entries("synthetic", png_dir, meta, "error", tmp / "e.csv", tmp / "m.csv")
    shards = [tmp / f"s{k}.h5" for k in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        common = (size, "bilinear", "error", 1)
        jobs = [
            pool.submit(downsample_shard, tmp / "e.csv", png_dir, k, workers, shard, *common)
            for k, shard in enumerate(shards)
        ]
        for job in jobs:
            job.result()
    merge_shards(shards, tmp / "e.csv", tmp / "m.csv", tmp / "store.h5", tmp / "l.csv", tmp / "x")
    make_splits(tmp / "l.csv", tmp / "sp.csv", tmp / "c.csv")
    compute_average_image(tmp / "store.h5", tmp / "a.npy", tmp / "p.json", tmp / "sp.csv")


def pipeline_epoch(tmp: Path, device, workers: int, size: int = 256, batch: int = 64) -> float:
    """One train() epoch of densenet121 from the store (bf16, channels_last, the training
    split in plain order, then its validation pass): seconds."""
    from cxr14.train import train

    settings = {**DEMO_SETTINGS, "arch": "densenet121", "weights": "none", "freeze": "none"}
    settings |= {"sampling": "plain", "epochs": 1, "input_size": size, "batch_size": batch}
    settings |= {"device": str(device), "compile": False, "fused_adam": False}
    files = [tmp / f for f in ("store.h5", "l.csv", "sp.csv", "i.npy", "a.npy", "p.json")]
    t = time.perf_counter()
    train(settings, *files, tmp / "run", threads=workers)
    return time.perf_counter() - t


def e2e(tmp: Path, n: int, device, workers: int) -> None:
    """One densenet121 epoch from N 1024x1024 PNGs: this pipeline vs. the CheXNet-style loop,
    over the same training images on the same machine."""
    from chexnet_baseline import chexnet_style_epoch

    from cxr14.metadata import read_labels
    from cxr14.synthetic import generate

    t = time.perf_counter()
    png_dir = tmp / "png"
    generate(png_dir, n_images=n, image_size=1024, seed=0, workers=workers)
    print(f"\n{n} PNGs of 1024x1024 written in {time.perf_counter() - t:.0f} s (not timed below)")
    t = time.perf_counter()
    build_store(tmp, png_dir, workers, 256)
    store_s = time.perf_counter() - t
    train_s = pipeline_epoch(tmp, device, workers)
    table, labels = read_labels(tmp / "l.csv")
    train_rows = pd.read_csv(tmp / "sp.csv")["split"].to_numpy() == "train"
    paths = [png_dir / "images" / name for name in table.loc[train_rows, "image"]]
    ours = store_s + train_s
    # Printed before the baseline runs: its DataLoader workers can fail on a small /dev/shm.
    print(f"one epoch of densenet121 over {len(paths)} training images, {workers} CPU workers:")
    print(f"  this pipeline: store {store_s:.1f} s + train() {train_s:.1f} s = {ours:.1f} s")
    base = chexnet_style_epoch(paths, table.loc[train_rows, labels].to_numpy(), device, 16, workers)
    print(f"  CheXNet-style: {base['seconds']:.1f} s ({base['images_per_s']:.0f} images/s)")
    print(f"  speed-up: {base['seconds'] / ours:.2f}x end to end, {base['seconds'] / train_s:.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["vgg_like", "resnet18", "densenet121"])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--demo", action="store_true")
    ap.add_argument("--demo-images", type=int, default=2000)
    ap.add_argument("--demo-size", type=int, default=256)
    ap.add_argument("--demo-epochs", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--variants", action="store_true")
    ap.add_argument("--backbones", action="store_true", help="throughput side by side")
    ap.add_argument("--e2e", type=int, default=0, help="PNGs for the end-to-end epoch (0: skip)")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument(
        "--loader",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the loader table (pre / device / host) of each architecture",
    )
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(name, "torch", torch.__version__)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        with h5py.File(tmp / "store.h5", "w") as h5:
            h5["images"] = rng.integers(0, 256, (args.images, 256, 256), dtype=np.uint8)
        images = read_rows(str(tmp / "store.h5"), np.arange(args.images))
        labels = torch.as_tensor(rng.random((args.images, 14)) < 0.1, dtype=torch.float32)
        if args.loader:
            loader_table(args.archs, images, labels, args.steps, args.batch, device)
        if args.backbones:
            backbone_table(args.archs, images, labels, args.steps, args.batch, device)
        if args.variants:
            peak, source = dense_bf16_peak(name)
            print(f"dense bf16 peak of {name}: {peak} TFLOP/s ({source})")
            variant_table(args.archs, images, labels, args.steps, args.batch, device, peak)
        if args.e2e:
            e2e(tmp, args.e2e, device, args.workers)
        if args.demo:
            demo(tmp, args.demo_images, args.demo_size, args.demo_epochs)


if __name__ == "__main__":
    main()
