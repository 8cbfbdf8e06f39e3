"""GPU training-step time with the project's loader vs. tensors already on the GPU.

    python bench/bench_gpu.py [--archs vgg_like resnet18 densenet121] [--steps 60] [--demo]

For each architecture (batch 64, 256x256, bf16 autocast, channels_last, Adam, W-CEL):

- ``pre``: the input batches are already normalised float tensors on the GPU (the floor);
- ``device``: the project's loader with the uint8 store resident on the GPU (gather, normalise
  with the average image, channels_last, all on the device) - what train() does when it fits;
- ``host``: the store in pinned host memory, batches gathered and copied by the background
  thread while the GPU computes - what train() does when the store is larger than the GPU.

Each mode runs twice (orders pre-device-host, then host-device-pre); the faster run counts.

``--demo`` then runs the whole library pipeline on a synthetic set (2,000 images) and trains
the reference study's vgg_like at 256x256 for 3 epochs with train(), reporting samples/s and
validation AUROC.
Needs only torch, h5py, numpy, pandas, pillow, scikit-learn and tqdm (PYTHONPATH=src).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from cxr14.data import DeviceData, Normalizer, read_rows
from cxr14.losses import wcel
from cxr14.models import build_model

REFERENCE_SETTINGS = {
    "vgg_like": {},
    "resnet18": {"weights": "none", "freeze": "none"},
    "densenet121": {"weights": "none", "freeze": "none"},
}


# Every training setting, stated (the workflow takes them from config/config.yaml).
DEMO_SETTINGS = {
    "device": "auto",
    "seed": 0,
    "sampling": "oversample",
    "loss": "wcel",
    "augment": False,
    "batch_size": 64,
    "eval_batch_size": 256,
    "lr": 1e-3,
    "milestones": [10],
    "gamma": 0.1,
    "amp": True,
    "channels_last": True,
}


def step_times(arch, images, labels, mode, steps, batch, device):
    torch.manual_seed(0)
    model = build_model(arch, labels.shape[1], **REFERENCE_SETTINGS.get(arch, {})).to(
        device, memory_format=torch.channels_last
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    norm = Normalizer(np.full((256, 256), 120.0, np.float32), 60.0, 256).to(device)
    n = len(labels)
    rng = np.random.default_rng(0)
    if mode == "pre":
        data = DeviceData(images, labels, device, max_device_fraction=1.0)
        pre = [
            (norm(x).contiguous(memory_format=torch.channels_last), y)
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
                    yield norm(x).contiguous(memory_format=torch.channels_last), y

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
            loss = wcel(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    times.append((time.perf_counter() - t) / steps)
    return 1000 * float(np.median(times))


def demo(tmp: Path, n_images: int, size: int, epochs: int):
    from cxr14.layouts.synthetic import generate
    from cxr14.metadata import build_entries
    from cxr14.oversample import make_oversample_index
    from cxr14.splits import make_splits
    from cxr14.stats import compute_average_image
    from cxr14.store import downsample_shard, merge_shards
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
        print("arch          pre ms/step  device ms/step (ratio)  host ms/step (ratio)")
        for arch in args.archs:
            # Two rounds in opposite orders; the faster of each mode's two timings counts.
            runs: dict[str, list[float]] = {"pre": [], "device": [], "host": []}
            for m in ("pre", "device", "host", "host", "device", "pre"):
                runs[m].append(step_times(arch, images, labels, m, args.steps, args.batch, device))
            r = {m: min(v) for m, v in runs.items()}
            dev, host = r["device"] / r["pre"], r["host"] / r["pre"]
            print(
                f"{arch:12s}  {r['pre']:11.2f}  {r['device']:10.2f} ({dev:.3f})"
                f"  {r['host']:10.2f} ({host:.3f})"
            )
        if args.demo:
            demo(tmp, args.demo_images, args.demo_size, args.demo_epochs)


if __name__ == "__main__":
    main()
