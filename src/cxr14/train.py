"""Training, in the style of torchvision's classification references.

``train()`` runs a whole training of one architecture: ``train_one_epoch`` / ``evaluate`` per
epoch, a checkpoint after every epoch (atomic: temp file + rename), the best model by validation
mean AUROC, and a history table. It resumes from the last complete epoch of an interrupted run
with the same settings. On CUDA it uses AMP (bf16, or fp16 with a GradScaler) and channels_last;
with ``torchrun --nproc_per_node N`` it trains with DDP (``python -m cxr14.train``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from cxr14 import __version__
from cxr14.data import DeviceData, Normalizer, augment, read_rows
from cxr14.labels import LABELS
from cxr14.losses import build_loss
from cxr14.metrics import mean_auroc, per_class_auroc
from cxr14.models import MODEL_KEYS, build_model

log = logging.getLogger(__name__)

# Settings every training takes; per-architecture model settings come on top (MODEL_KEYS).
DEFAULTS = {
    "epochs": 120,
    "batch_size": 64,
    "lr": 1e-3,
    "milestones": [60],
    "gamma": 0.1,
    "loss": "wcel",
    "sampling": "oversample",
    "augment": False,
    "input_size": 256,
    "seed": 0,
    "amp": True,
    "channels_last": True,
    "device": "auto",
    "eval_batch_size": 256,
}
HISTORY_COLUMNS = ["epoch", "lr", "train_loss", "val_loss", "val_mean_auroc", "seconds",
                   "samples_per_s"]  # fmt: skip
RESUME_DIR = ".resume"


# ----------------------------------------------------------------------------- checkpoints


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict:
    np_state = np.random.get_state()  # noqa: NPY002 - third-party code may use it
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))  # noqa: NPY002
    random.setstate(state["python"])


def load_checkpoint(path: str | os.PathLike, arch: str | None = None,
                    settings: dict | None = None) -> dict:  # fmt: skip
    """Load a checkpoint safely (``weights_only=True``) and check what it holds.

    Raises ValueError with a readable message when it is not a checkpoint of this project, of
    ``arch``, or of the given model ``settings`` (instead of a state-dict shape dump later).
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or not {"model", "config", "epoch"} <= set(ckpt):
        raise ValueError(f"{path}: not a cxr14 training checkpoint")
    have = ckpt["config"].get("arch")
    if arch is not None and have != arch:
        raise ValueError(f"{path} is a checkpoint of architecture {have!r}, not {arch!r}")
    if settings is not None:
        keys = MODEL_KEYS.get(arch or have, ())
        diff = {k: (ckpt["config"].get(k), settings.get(k)) for k in keys
                if ckpt["config"].get(k) != settings.get(k)}  # fmt: skip
        if diff:
            text = ", ".join(
                f"{k}: checkpoint {a!r} vs. requested {b!r}" for k, (a, b) in diff.items()
            )
            raise ValueError(f"{path} was trained with other model settings ({text})")
    return ckpt


def load_model(path: str | os.PathLike, arch: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model stored in a checkpoint (for evaluation)."""
    ckpt = load_checkpoint(path, arch)
    settings = {**ckpt["config"], "weights": "none"}  # the state dict carries the weights
    model = build_model(settings["arch"], **settings)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ValueError(
            f"{path}: weights do not fit {settings['arch']} ({str(exc)[:300]})"
        ) from None
    model.weights_used = ckpt.get("weights_used", "unknown")
    return model, ckpt


# ------------------------------------------------------------------------------- the loops


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()


def train_one_epoch(model, loss_fn, optimizer, data: DeviceData, positions, batch_size,
                    normalize: Normalizer, device, *, amp=True, channels_last=False,
                    scaler=None, do_augment=False, desc="train") -> tuple[float, int]:  # fmt: skip
    """One pass over ``positions``; returns (mean loss, samples seen)."""
    model.train()
    total, count, seen = torch.zeros((), device=device), 0, 0
    n_batches = math.ceil(len(positions) / batch_size)
    for x, y in tqdm(data.batches(positions, batch_size), total=n_batches, desc=desc,
                     mininterval=10, leave=False):  # fmt: skip
        x = normalize(x)
        if do_augment:
            x = augment(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total += loss.detach()
        count += 1
        seen += len(y)
    return (total / max(count, 1)).item(), seen


@torch.no_grad()
def evaluate(model, loss_fn, data: DeviceData, batch_size, normalize: Normalizer, device, *,
             amp=True, channels_last=False) -> tuple[float, np.ndarray]:  # fmt: skip
    """Mean loss over batches and the sigmoid probabilities of every row of ``data``."""
    model.eval()
    total, count, probs = torch.zeros((), device=device), 0, []
    for x, y in data.batches(np.arange(len(data)), batch_size):
        x = normalize(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            logits = model(x)
        total += loss_fn(logits.float(), y)  # no per-batch host sync
        count += 1
        probs.append(torch.sigmoid(logits.float()).cpu())
    return (total / max(count, 1)).item(), torch.cat(probs).numpy()


# ------------------------------------------------------------------------------ a training


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` | ``cuda`` | ``cpu`` -> the device this process uses."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _positions(index_rows: np.ndarray, train_rows: np.ndarray, seed: int, epoch: int,
               batch_size: int, rank: int, world: int) -> np.ndarray:  # fmt: skip
    """This rank's sample positions for one epoch.

    The order is a seeded permutation of the (oversampled) index, a function of (seed, epoch)
    alone, so a resumed run sees exactly the batches of an uninterrupted one. Incomplete last
    batches are dropped (every rank gets equal slices of every global batch). ``train_rows``:
    the sorted, unique store rows held in memory; positions index into them.
    """
    order = np.random.default_rng([seed, epoch]).permutation(index_rows)
    pos = np.searchsorted(train_rows, order)
    if len(pos) >= batch_size:
        pos = pos[: len(pos) - len(pos) % batch_size]
    else:
        batch_size = len(pos) - len(pos) % world
        pos = pos[:batch_size]
    local = batch_size // world
    return pos.reshape(-1, batch_size)[:, rank * local : (rank + 1) * local].reshape(-1)


def train(settings: dict, store_h5, labels_csv, splits_csv, index_npy, average_npy, stats_json,
          out_dir, threads: int | None = None) -> pd.DataFrame:  # fmt: skip
    """Train ``settings['arch']``; write best.pt, last.pt and history.csv into ``out_dir``."""
    settings = {**DEFAULTS, **settings}
    arch = settings["arch"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(settings["device"], local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    if threads:
        # Never more threads than CPUs this process may use: oversubscription slows torch down.
        torch.set_num_threads(max(1, min(threads, len(os.sched_getaffinity(0)))))
    if settings["batch_size"] % world:
        raise ValueError(f"batch_size {settings['batch_size']} is not divisible by {world} GPUs")
    out_dir = Path(out_dir)
    resume = out_dir / RESUME_DIR
    if rank == 0:
        resume.mkdir(parents=True, exist_ok=True)
    seed = int(settings["seed"])
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds third-party users of the legacy RNG
    torch.manual_seed(seed)

    # Data: the rows of the training index and of the validation split, read once.
    labels = pd.read_csv(labels_csv)
    split = pd.read_csv(splits_csv)["split"].to_numpy()
    if len(split) != len(labels):
        raise ValueError(f"{splits_csv} and {labels_csv} have different row counts")
    index_rows = (
        np.load(index_npy)
        if settings["sampling"] == "oversample"
        else np.flatnonzero(split == "train")
    )
    train_rows = np.unique(index_rows)
    val_rows = np.flatnonzero(split == "val")
    y_all = torch.as_tensor(labels[list(LABELS)].to_numpy(), dtype=torch.float32)
    t0 = time.perf_counter()
    train_data = DeviceData(read_rows(store_h5, train_rows), y_all[train_rows], device)
    val_data = DeviceData(read_rows(store_h5, val_rows), y_all[val_rows], device)
    log.info("%s: %d training images (%d samples per epoch), %d validation images, loaded in "
             "%.1f s (%s)", arch, len(train_rows), len(index_rows), len(val_rows),
             time.perf_counter() - t0,
             "on the device" if train_data.on_device else "in host memory")  # fmt: skip
    stats = json.loads(Path(stats_json).read_text())
    normalize = Normalizer(np.load(average_npy), stats["std"], settings["input_size"]).to(device)

    model = build_model(arch, **settings)
    weights_used = model.weights_used
    model.to(device)
    use_cuda = device.type == "cuda"
    channels_last = use_cuda and settings["channels_last"]
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp = use_cuda and settings["amp"]
    scaler = (torch.amp.GradScaler("cuda") if amp and not torch.cuda.is_bf16_supported()
              else None)  # fmt: skip
    net = model
    if world > 1:
        if use_cuda:  # SyncBatchNorm needs CUDA tensors
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if use_cuda else None
        )
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings["lr"], betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, settings["milestones"],
                                                     settings["gamma"])  # fmt: skip
    loss_fn = build_loss(settings["loss"], y_all[train_rows], sync=world > 1)
    eval_loss = build_loss(settings["loss"], y_all[train_rows])  # rank 0 evaluates alone

    # Resume from the last complete epoch of an interrupted run with the same settings.
    history: list[dict] = []
    start, best_auroc, best_epoch = 0, -math.inf, 0
    last_path = resume / "last.pt"
    if last_path.exists():
        ckpt = load_checkpoint(last_path)
        if ckpt["config"] == settings:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if scaler is not None and "scaler" in ckpt:
                scaler.load_state_dict(ckpt["scaler"])
            _set_rng_state(ckpt["rng"])
            start, history = ckpt["epoch"], ckpt["history"]
            best_auroc, best_epoch = ckpt["best_auroc"], ckpt["best_epoch"]
            log.info("%s: resuming after epoch %d from %s", arch, start, last_path)
        else:
            changed = sorted(k for k in set(settings) | set(ckpt["config"])
                             if settings.get(k) != ckpt["config"].get(k))  # fmt: skip
            log.warning("%s: %s was made with other settings (%s); starting afresh", arch,
                        last_path, ", ".join(changed))  # fmt: skip

    for epoch in range(start, settings["epochs"]):
        t = time.perf_counter()
        # Reseeding per epoch makes dropout/augmentation of epoch e independent of history.
        torch.manual_seed(seed + 1_000_003 * (epoch + 1))
        positions = _positions(index_rows, train_rows, seed, epoch, settings["batch_size"],
                               rank, world)  # fmt: skip
        lr = optimizer.param_groups[0]["lr"]
        train_loss, seen = train_one_epoch(
            net, loss_fn, optimizer, train_data, positions, settings["batch_size"] // world,
            normalize, device, amp=amp, channels_last=channels_last, scaler=scaler,
            do_augment=settings["augment"], desc=f"{arch} epoch {epoch + 1}",
        )  # fmt: skip
        scheduler.step()
        train_seconds = time.perf_counter() - t
        if world > 1:
            loss_t = torch.tensor([train_loss], device=device)
            dist.all_reduce(loss_t)
            train_loss = loss_t.item() / world
        if rank == 0:
            # Rank 0 evaluates the bare model on the whole validation split.
            val_loss, probs = evaluate(model, eval_loss, val_data, settings["eval_batch_size"],
                                       normalize, device, amp=amp,
                                       channels_last=channels_last)  # fmt: skip
            y_val = val_data.labels.cpu().numpy()
            aucs = per_class_auroc(y_val, probs)
            auroc = mean_auroc(y_val, probs)
            row = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_mean_auroc": auroc,
                "seconds": time.perf_counter() - t,
                "samples_per_s": seen * world / train_seconds,
                **{f"val_auroc_{c}": a for c, a in zip(LABELS, aucs, strict=True)},
            }
            # Plain Python numbers: checkpoints must load with weights_only=True.
            row = {k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
            history.append(row)
            # The first epoch always counts (its AUROC may be NaN on a tiny validation split).
            improved = best_epoch == 0 or row["val_mean_auroc"] > best_auroc
            if improved:
                best_auroc, best_epoch = row["val_mean_auroc"], epoch + 1
            ckpt = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch + 1,
                "config": settings,
                "rng": _rng_state(),
                "history": history,
                "best_auroc": best_auroc,
                "best_epoch": best_epoch,
                "weights_used": weights_used,
                "labels": list(LABELS),
                "cxr14_version": __version__,
            }
            if scaler is not None:
                ckpt["scaler"] = scaler.state_dict()
            if improved:
                _atomic_save(ckpt, resume / "best.pt")
            _atomic_save(ckpt, last_path)
            log.info("%s epoch %d/%d: lr %.2g, train loss %.4f, val loss %.4f, val mean AUROC "
                     "%.4f, %.0f samples/s, %.1f s", arch, epoch + 1, settings["epochs"], lr,
                     train_loss, val_loss, auroc, row["samples_per_s"], row["seconds"])  # fmt: skip
        if world > 1:
            dist.barrier()

    if rank == 0:
        if not (resume / "best.pt").exists():  # zero epochs requested
            raise ValueError(f"{arch}: no epoch was trained (epochs = {settings['epochs']})")
        history_df = pd.DataFrame(history)
        tmp = out_dir / "history.csv.tmp"
        history_df.to_csv(tmp, index=False)
        os.replace(tmp, out_dir / "history.csv")
        shutil.copyfile(resume / "best.pt", out_dir / "best.pt.tmp")
        os.replace(out_dir / "best.pt.tmp", out_dir / "best.pt")
        os.replace(last_path, out_dir / "last.pt")
        shutil.rmtree(resume)  # the run is complete: nothing to resume any more
        log.info("%s: best val mean AUROC %.4f at epoch %d (%s)", arch, best_auroc, best_epoch,
                 weights_used)  # fmt: skip
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return pd.DataFrame(history)


def _fd_or_none(stream):
    """A stream a child process can write to (the job's log), or None to inherit."""
    try:
        stream.fileno()
        return stream
    except (AttributeError, OSError, ValueError):
        return None


def run(settings: dict, gpus: int = 1, threads: int | None = None, **paths) -> None:
    """Train in this process (``gpus`` <= 1) or with DDP over ``gpus`` processes via torchrun.

    ``paths``: train()'s path arguments (store_h5, labels_csv, ..., out_dir). With torchrun the
    workers' output goes to this process's stdout/stderr (the Snakemake job's log).
    """
    if gpus <= 1:
        train(settings, threads=threads, **paths)
        return
    import subprocess
    import sys

    job = Path(paths["out_dir"]) / RESUME_DIR / "job.json"
    job.parent.mkdir(parents=True, exist_ok=True)
    per_proc = max(1, (threads or 1) // gpus)
    job.write_text(json.dumps({"settings": settings, "threads": per_proc,
                               **{k: str(v) for k, v in paths.items()}}))  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={gpus}", "-m", "cxr14.train", "--job", str(job)]  # fmt: skip
    log.info("DDP over %d processes: %s", gpus, " ".join(cmd))
    sys.stdout.flush()
    sys.stderr.flush()
    env = {**os.environ, "OMP_NUM_THREADS": str(per_proc)}
    proc = subprocess.run(cmd, stdout=_fd_or_none(sys.stdout), stderr=_fd_or_none(sys.stderr),
                          env=env)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with status {proc.returncode} (see the log above)")


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``torchrun --nproc_per_node N -m cxr14.train --job job.json``."""
    ap = argparse.ArgumentParser(description="Train one architecture (see cxr14.train.train).")
    ap.add_argument("--job", required=True, help="JSON file with train()'s keyword arguments")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s rank" + os.environ.get("RANK", "0")
                        + " %(name)s: %(message)s")  # fmt: skip
    train(**json.loads(Path(args.job).read_text()))


if __name__ == "__main__":
    main()
