"""Training, in the shape of torchvision's classification references.

``train()`` reads as its steps: ``setup``, ``load_data``, ``build_model_and_optimizer``,
``resume``, then per epoch ``run_epoch`` (``train_one_epoch``, ``evaluate``) and
``save_checkpoint``, and ``finish``. A checkpoint is written after every epoch (atomically), the
best model is chosen by validation mean AUROC, and an interrupted run with the same settings
resumes from its last complete epoch. On CUDA it uses AMP
(bf16, or fp16 with a GradScaler) and channels_last; with ``torchrun --nproc_per_node N`` it
trains with DDP (``python -m cxr14.train``). Details: docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

import cxr14
from cxr14.checkpoint import (
    RESUME_KEYS,
    atomic_save,
    load_checkpoint,
    model_caveat,
    rng_state,
    set_rng_state,
)
from cxr14.data import DeviceData, Normalizer, augment, read_pooled_rows
from cxr14.device import autocast, resolve_device
from cxr14.files import replacing
from cxr14.findings import read_findings
from cxr14.logs import CONSOLE, console_progress
from cxr14.losses import build_loss
from cxr14.metrics import nanmean, per_class_auroc
from cxr14.models import build_model, head_parameters, model_settings, sync_batchnorm
from cxr14.pooling import (
    as_list,
    labelled,
    model_classes,
    pooled_index,
    pooled_normalization,
    read_dataset,
)
from cxr14.provenance import collect, environment
from cxr14.settings import check_complete, run_name
from cxr14.tracking import open_trackers

log = logging.getLogger(__name__)
RESUME_DIR = ".resume"


@dataclass
class Process:
    """This process's place in a (possibly distributed) training."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    # What this training ran from (cxr14.provenance), recorded in its checkpoints.
    record: dict = field(default_factory=dict)

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class Data:
    labels: list[str]
    index_rows: np.ndarray  # store rows of one epoch (repeats when oversampled)
    train_rows: np.ndarray  # the sorted unique rows held in memory
    train: DeviceData
    val: DeviceData
    normalize: Normalizer
    # The findings table column the class names are in (cxr14.findings; None: unknown).
    vocabulary: str | None = None


@dataclass
class Parts:
    model: nn.Module  # the bare model (rank 0 evaluates and saves it)
    net: nn.Module  # what the training step calls (DDP-wrapped when distributed)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    amp: bool
    channels_last: bool
    loss_fn: Callable  # the training step's loss (DDP: counts over the global batch)
    eval_loss: Callable  # rank 0's validation loss


@dataclass
class State:
    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)
    best_auroc: float = -math.inf
    best_epoch: int = 0


# ------------------------------------------------------------------------------- the pieces


def setup(settings: dict, threads: int | None) -> Process:
    """Device, process group under torchrun, CPU threads and seeds."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))  # set by torchrun
    proc = Process(
        device=resolve_device(settings["device"], local_rank),
        rank=int(os.environ.get("RANK", "0")),
        world=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=local_rank,
    )
    if proc.world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if proc.device.type == "cuda" else "gloo")
    if proc.device.type == "cuda":
        torch.cuda.set_device(proc.device)
        torch.backends.cudnn.benchmark = True
    if threads:
        # Never more threads than CPUs this process may use: oversubscription slows torch down.
        torch.set_num_threads(max(1, min(threads, len(os.sched_getaffinity(0)))))
    if settings["batch_size"] % proc.world:
        raise ValueError(
            f"batch_size {settings['batch_size']} is not divisible by {proc.world} GPUs"
        )
    seed = int(settings["seed"])
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds third-party users of the legacy RNG
    torch.manual_seed(seed)
    return proc


def load_data(
    settings,
    store_h5,
    labels_csv,
    splits_csv,
    index_npy,
    average_npy,
    stats_json,
    device,
    vocabularies=None,
    findings_csv=None,
) -> Data:
    """The rows of the training index and of the validation split, read once into memory.
    Each path argument is one file or a list of one per data set (``settings['train_on']``
    order): several are pooled (``cxr14.pooling``)."""
    stores, labels_csvs = as_list(store_h5), as_list(labels_csv)
    findings = read_findings(findings_csv) if len(stores) > 1 else None
    classes, vocabulary = model_classes(labels_csvs, vocabularies, findings)
    paths = (labels_csvs, as_list(splits_csv), as_list(index_npy))
    parts = _data_sets(settings, *paths, classes, vocabulary, vocabularies, findings)
    fraction = settings.get("label_fraction", 1.0)
    if fraction < 1:
        parts = [labelled(p, fraction, int(settings["label_seed"])) for p in parts]
    # Set k's row r is offsets[k] + r; its epoch samples follow the pooling.
    offsets = np.cumsum([0] + [len(p.split) for p in parts])[:-1]
    indexes = pooled_index(parts, settings.get("pooling", "proportional"), int(settings["seed"]))
    index_rows = np.concatenate([o + i for o, i in zip(offsets, indexes, strict=True)])
    train_rows = np.unique(index_rows)
    val_rows = np.concatenate(
        [o + np.flatnonzero(p.split == "val") for o, p in zip(offsets, parts, strict=True)]
    )
    y = torch.as_tensor(np.concatenate([p.targets for p in parts]))
    t0 = time.perf_counter()
    train = DeviceData(read_pooled_rows(stores, offsets, train_rows), y[train_rows], device)
    val = DeviceData(read_pooled_rows(stores, offsets, val_rows), y[val_rows], device)
    where = "on the device" if train.on_device else "in host memory"
    log.info(
        "%s: %d training images (%d samples per epoch), %d validation images, from %d data "
        "set(s), loaded in %.1f s (%s)",
        run_name(settings),
        len(train_rows),
        len(index_rows),
        len(val_rows),
        len(stores),
        time.perf_counter() - t0,
        where,
    )
    shares = [len(i) for i in indexes]
    average, std = pooled_normalization(as_list(average_npy), as_list(stats_json), shares)
    normalize = Normalizer(average, std, settings["input_size"])
    return Data(classes, index_rows, train_rows, train, val, normalize.to(device), vocabulary)


def _data_sets(
    settings, labels_csvs, splits_csvs, index_npys, classes, vocabulary, vocabularies, findings
):
    """Each data set's targets on the model's ``classes``, split and training index."""
    oversampled = settings["sampling"] == "oversample"
    return [
        read_dataset(
            labels_csvs[k],
            splits_csvs[k],
            index_npys[k] if oversampled else None,
            _label_policy(settings, k),
            classes,
            vocabulary,
            (vocabularies or [None])[k],
            findings,
        )
        for k in range(len(labels_csvs))
    ]


def _label_policy(settings: dict, k: int) -> list[str]:
    """The (uncertain, blank) policy of the k-th data set trained on ([]: labels all known)."""
    if "train_on" in settings:
        policy = settings.get("label_policies", {}).get(settings["train_on"][k], {})
        return [policy[key] for key in ("uncertain", "blank") if key in policy]
    return [settings[key] for key in ("uncertain", "blank") if key in settings]


def build_model_and_optimizer(settings: dict, y_train: torch.Tensor, proc: Process) -> Parts:
    """The model on its device (DDP-wrapped when distributed), Adam, the step schedule, the
    losses and, for fp16 AMP, a gradient scaler. ``y_train``: the training labels."""
    model = build_model(settings["arch"], y_train.shape[1], **settings).to(proc.device)
    use_cuda = proc.device.type == "cuda"
    channels_last = use_cuda and settings["channels_last"]
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp = use_cuda and settings["amp"]
    scaler = None
    if amp and not torch.cuda.is_bf16_supported():
        scaler = torch.amp.GradScaler("cuda")
    net = model
    if proc.world > 1:
        if use_cuda:  # SyncBatchNorm needs CUDA tensors
            model = sync_batchnorm(settings["arch"], model)
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[proc.local_rank] if use_cuda else None
        )
    if settings["compile"]:
        # Compiles the forward (and DDP's) graph; ``model`` stays the plain module, so its
        # state dict - and every checkpoint - has the eager names and loads either way.
        net = torch.compile(net)
    lr, scale = settings["lr"], settings.get("backbone_lr_scale", 1.0)
    groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    if scale != 1:  # the head first: the history's `lr` is the head's
        backbone, head = head_parameters(settings["arch"], model)
        groups = [{"params": head}, {"params": backbone, "lr": lr * scale}]
    # fused=None (off) leaves torch its default implementation.
    fused = settings["fused_adam"] or None
    optimizer = torch.optim.Adam(
        [g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.999), fused=fused
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, settings["milestones"], settings["gamma"]
    )
    loss_fn = build_loss(settings["loss"], y_train, sync=proc.world > 1)
    eval_loss = build_loss(settings["loss"], y_train)
    return Parts(model, net, optimizer, scheduler, scaler, amp, channels_last, loss_fn, eval_loss)


# Settings that change how fast an epoch runs, not what it computes: a run interrupted with
# one value resumes with the other (the checkpoint's state dict is the same either way).
SPEED_ONLY = ("compile", "fused_adam")


def resume(path: Path, parts: Parts, settings: dict) -> State:
    """The state after the last complete epoch of an interrupted run with the same settings
    (restored into ``parts``), or a fresh state."""
    if not path.exists():
        return State()
    ckpt = load_checkpoint(path)
    changed = sorted(
        k
        for k in set(settings) | set(ckpt["config"])
        if settings.get(k) != ckpt["config"].get(k) and k not in SPEED_ONLY
    )
    if changed:
        log.warning(
            "%s: %s was made with other settings (%s); starting afresh",
            run_name(settings),
            path,
            ", ".join(changed),
        )
        return State()
    parts.model.load_state_dict(ckpt["model"])
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    parts.scheduler.load_state_dict(ckpt["scheduler"])
    if parts.scaler is not None and "scaler" in ckpt:
        parts.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    log.info(
        "%s: resuming after epoch %d from %s",
        run_name(settings),
        ckpt["epoch"],
        path,
        extra=CONSOLE,
    )
    return State(ckpt["epoch"], ckpt["history"], ckpt["best_auroc"], ckpt["best_epoch"])


def epoch_positions(
    index_rows: np.ndarray,
    train_rows: np.ndarray,
    seed: int,
    epoch: int,
    batch_size: int,
    rank: int,
    world: int,
) -> np.ndarray:
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


def _prepare(x, normalize, channels_last, do_augment=False):
    x = normalize(x)
    if do_augment:
        x = augment(x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def train_one_epoch(
    parts: Parts,
    data: DeviceData,
    positions,
    batch_size,
    normalize,
    device,
    *,
    do_augment=False,
    desc="train",
    progress=True,
) -> tuple[float, int]:
    """One pass over ``positions``; returns (mean loss, samples seen). ``progress``: console
    lines for a long epoch (``logs.console_progress``; one process of several shows none)."""
    parts.net.train()
    total, count, seen = torch.zeros((), device=device), 0, 0
    batches = data.batches(positions, batch_size)
    n_batches = math.ceil(len(positions) / batch_size)
    bar = tqdm(batches, total=n_batches, desc=desc, mininterval=10, leave=False)
    for x, y in console_progress(bar, n_batches, f"{desc}, batches", progress):
        x = _prepare(x, normalize, parts.channels_last, do_augment)
        with autocast(device, parts.amp):
            logits = parts.net(x)
        loss = parts.loss_fn(logits, y)
        parts.optimizer.zero_grad(set_to_none=True)
        if parts.scaler is not None:
            parts.scaler.scale(loss).backward()
            parts.scaler.step(parts.optimizer)
            parts.scaler.update()
        else:
            loss.backward()
            parts.optimizer.step()
        total += loss.detach()
        count += 1
        seen += len(y)
    return (total / max(count, 1)).item(), seen


@torch.no_grad()
def evaluate(
    model,
    loss_fn,
    data: DeviceData,
    batch_size,
    normalize: Normalizer,
    device,
    *,
    amp=True,
    channels_last=False,
    desc="",
) -> tuple[float, np.ndarray]:
    """Mean loss over batches and the sigmoid probabilities of every row of ``data``; with
    ``desc``, console progress lines for a long pass (``logs.console_progress``)."""
    model.eval()
    total, count, probs = torch.zeros((), device=device), 0, []
    batches = data.batches(np.arange(len(data)), batch_size)
    n_batches = math.ceil(len(data) / batch_size)
    for x, y in console_progress(batches, n_batches, f"{desc}, validation batches", bool(desc)):
        x = _prepare(x, normalize, channels_last)
        with autocast(device, amp):
            logits = model(x)
        total += loss_fn(logits.float(), y)  # no per-batch host sync
        count += 1
        probs.append(torch.sigmoid(logits.float()).cpu())
    return (total / max(count, 1)).item(), torch.cat(probs).numpy()


def save_checkpoint(
    resume_dir: Path,
    parts: Parts,
    settings: dict,
    state: State,
    data: Data,
    improved: bool,
    record: dict | None = None,
) -> None:
    """The resume state after ``state.epoch``; also the best so far when ``improved``. Both
    hold the input normalisation, so that scoring needs nothing but the file and images, and
    the provenance ``record`` of the training."""
    ckpt = {
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "epoch": state.epoch,
        "config": settings,
        "rng": rng_state(),
        "history": state.history,
        "best_auroc": state.best_auroc,
        "best_epoch": state.best_epoch,
        "weights_used": parts.model.weights_used,
        "labels": data.labels,
        "vocabulary": data.vocabulary,
        "normalization": {
            "average": data.normalize.average[0, 0].cpu().clone(),
            "std": data.normalize.std,
        },
        "cxr14_version": cxr14.__version__,
        "provenance": record or {},
    }
    if parts.scaler is not None:
        ckpt["scaler"] = parts.scaler.state_dict()
    if improved:
        # The best model is for scoring: no optimizer, scheduler or RNG state (84 MB less for
        # densenet121); only the resume state needs them.
        best = {k: v for k, v in ckpt.items() if k not in RESUME_KEYS}
        atomic_save(best, resume_dir / "best.pt")
    atomic_save(ckpt, resume_dir / "last.pt")


def finish(out_dir: Path, state: State, settings: dict, weights_used: str) -> None:
    """Move the finished run's files into place and drop the resume state."""
    resume_dir = out_dir / RESUME_DIR
    if not (resume_dir / "best.pt").exists():  # zero epochs requested
        raise ValueError(
            f"{run_name(settings)}: no epoch was trained (epochs = {settings['epochs']})"
        )
    with replacing(out_dir / "history.csv") as tmp:
        pd.DataFrame(state.history).to_csv(tmp, index=False)
    with replacing(out_dir / "best.pt") as tmp:
        shutil.copyfile(resume_dir / "best.pt", tmp)
    os.replace(resume_dir / "last.pt", out_dir / "last.pt")
    shutil.rmtree(resume_dir)  # the run is complete: nothing to resume any more
    log.info(
        "%s: best val mean AUROC %.4f at epoch %d (weights: %s)",
        run_name(settings),
        state.best_auroc,
        state.best_epoch,
        weights_used,
        extra=CONSOLE,
    )


def run_epoch(epoch: int, settings: dict, data: Data, parts: Parts, proc: Process) -> dict | None:
    """Train one epoch; on rank 0 also validate and return the epoch's history row."""
    t = time.perf_counter()
    seed, batch = int(settings["seed"]), settings["batch_size"]
    # Reseeding per epoch makes dropout/augmentation of epoch e independent of history.
    torch.manual_seed(seed + 1_000_003 * (epoch + 1))
    positions = epoch_positions(
        data.index_rows, data.train_rows, seed, epoch, batch, proc.rank, proc.world
    )
    lr = parts.optimizer.param_groups[0]["lr"]
    desc = f"{run_name(settings)} epoch {epoch + 1}/{settings['epochs']}"
    train_loss, seen = train_one_epoch(
        parts,
        data.train,
        positions,
        batch // proc.world,
        data.normalize,
        proc.device,
        do_augment=settings["augment"],
        desc=desc,
        progress=proc.main,
    )
    parts.scheduler.step()
    speed = seen * proc.world / (time.perf_counter() - t)
    train_loss = _mean_over_ranks(train_loss, proc)
    if not proc.main:
        return None
    # Rank 0 evaluates the bare model on the whole validation split.
    val_loss, probs = evaluate(
        parts.model,
        parts.eval_loss,
        data.val,
        settings["val_batch_size"],
        data.normalize,
        proc.device,
        amp=parts.amp,
        channels_last=parts.channels_last,
        desc=desc,
    )
    aucs = per_class_auroc(data.val.labels.cpu().numpy(), probs)
    row = {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_mean_auroc": nanmean(aucs),
        "seconds": time.perf_counter() - t,
        "samples_per_s": speed,
        **{f"val_auroc_{c}": a for c, a in zip(data.labels, aucs, strict=True)},
    }
    # Plain Python numbers: checkpoints must load with weights_only=True.
    return {k: int(v) if k == "epoch" else float(v) for k, v in row.items()}


def _mean_over_ranks(value: float, proc: Process) -> float:
    if proc.world == 1:
        return value
    t = torch.tensor([value], device=proc.device)
    dist.all_reduce(t)
    return t.item() / proc.world


def train(
    settings: dict,
    store_h5,
    labels_csv,
    splits_csv,
    index_npy,
    average_npy,
    stats_json,
    out_dir,
    threads: int | None = None,
    vocabularies=None,
    findings_csv=None,
    provenance: dict | None = None,
    tracking: dict | None = None,
) -> pd.DataFrame:
    """Train ``settings['arch']``; write best.pt, last.pt and history.csv into ``out_dir``.
    The data paths are one file each, or lists of one per data set trained on (pooled, with
    their label ``vocabularies`` and the findings table ``findings_csv``: ``load_data``).
    ``provenance``: the workflow's record (``cxr14.provenance.collect``; default: the code's
    and the environment's alone), completed with the device and kept in every checkpoint;
    ``tracking``: live curves (``cxr14.tracking.open_trackers``; None: none)."""
    check_complete(settings)
    settings = {**settings, **model_settings(settings["arch"], settings)}
    proc = setup(settings, threads)
    proc.record = {**(provenance or collect()), "environment": environment(proc.device)}
    out_dir = Path(out_dir)
    resume_dir = out_dir / RESUME_DIR
    if proc.main:
        resume_dir.mkdir(parents=True, exist_ok=True)
    data = load_data(
        settings,
        store_h5,
        labels_csv,
        splits_csv,
        index_npy,
        average_npy,
        stats_json,
        proc.device,
        vocabularies,
        findings_csv,
    )
    parts = build_model_and_optimizer(settings, data.train.labels.cpu(), proc)
    if proc.main:
        _warn_of_weights(settings, parts.model.weights_used)
    state = resume(resume_dir / "last.pt", parts, settings)
    trackers = open_trackers(tracking, settings, proc.record, state.epoch) if proc.main else []
    state = train_epochs(state, settings, data, parts, proc, trackers, resume_dir)
    if proc.main:
        finish(out_dir, state, settings, parts.model.weights_used)
        for tracker in trackers:  # an interrupted job leaves its run open, to be resumed
            tracker.close()
    if proc.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return pd.DataFrame(state.history)


def train_epochs(state: State, settings, data, parts, proc, trackers, resume_dir) -> State:
    """The epochs from ``state`` on; rank 0 logs, tracks and checkpoints each."""
    for epoch in range(state.epoch, settings["epochs"]):
        row = run_epoch(epoch, settings, data, parts, proc)
        if proc.main:
            _log_epoch(settings, row)
            for tracker in trackers:
                tracker.epoch(row)
            state = record_epoch(state, row)
            improved = state.best_epoch == row["epoch"]
            save_checkpoint(resume_dir, parts, settings, state, data, improved, proc.record)
        if proc.world > 1:
            dist.barrier()
    return state


def _warn_of_weights(settings: dict, weights_used: str) -> None:
    """On the console before the first epoch, not only in the summary: what the starting
    weights mean for the results (random weights where pretrained ones were asked for)."""
    caveat = model_caveat({"config": settings, "weights_used": weights_used}, "")
    if caveat:
        text = "%s: %s (models.%s.weights: %s)"
        arch = settings["arch"]
        log.warning(text, run_name(settings), caveat, arch, settings["weights"], extra=CONSOLE)


def record_epoch(state: State, row: dict) -> State:
    """The state after an epoch. The first epoch always counts as best (its AUROC may be NaN
    on a tiny validation split); a defined AUROC beats a NaN best (`x > nan` is false)."""
    history = [*state.history, row]
    auroc, best = row["val_mean_auroc"], state.best_auroc
    if state.best_epoch == 0 or auroc > best or (math.isnan(best) and not math.isnan(auroc)):
        return State(row["epoch"], history, row["val_mean_auroc"], row["epoch"])
    return State(row["epoch"], history, state.best_auroc, state.best_epoch)


def _log_epoch(settings: dict, row: dict) -> None:
    log.info(
        "%s epoch %d/%d: lr %.2g, train loss %.4f, val loss %.4f, val mean AUROC %.4f, "
        "%.0f samples/s, %.1f s",
        run_name(settings),
        row["epoch"],
        settings["epochs"],
        row["lr"],
        row["train_loss"],
        row["val_loss"],
        row["val_mean_auroc"],
        row["samples_per_s"],
        row["seconds"],
        extra=CONSOLE,
    )


# ------------------------------------------------------------------- one or several processes


def _fd_or_none(stream):
    """A stream a child process can write to (the job's log), or None to inherit."""
    try:
        stream.fileno()
        return stream
    except (AttributeError, OSError, ValueError):
        return None


def run(
    settings: dict,
    gpus: int = 1,
    threads: int | None = None,
    provenance=None,
    tracking=None,
    **paths,
) -> None:
    """Train in this process (``gpus`` <= 1) or with DDP over ``gpus`` processes via torchrun.

    ``paths``: train()'s path arguments (store_h5, labels_csv, ..., out_dir). With torchrun the
    workers' output goes to this process's stdout/stderr (the Snakemake job's log).
    """
    if gpus <= 1:
        train(settings, threads=threads, provenance=provenance, tracking=tracking, **paths)
        return
    job = Path(paths["out_dir"]) / RESUME_DIR / "job.json"
    job.parent.mkdir(parents=True, exist_ok=True)
    per_proc = max(1, (threads or 1) // gpus)
    paths = {k: _json_path(v) for k, v in paths.items()}
    job.write_text(
        json.dumps(
            {
                "settings": settings,
                "threads": per_proc,
                "provenance": provenance,
                "tracking": tracking,
                **paths,
            }
        )
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={gpus}",
        "-m",
        "cxr14.train",
        "--job",
        str(job),
    ]
    log.info("DDP over %d processes: %s", gpus, " ".join(cmd))
    sys.stdout.flush()
    sys.stderr.flush()
    env = {**os.environ, "OMP_NUM_THREADS": str(per_proc)}
    out, err = _fd_or_none(sys.stdout), _fd_or_none(sys.stderr)
    proc = subprocess.run(cmd, stdout=out, stderr=err, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited with status {proc.returncode} (see the log above)")


def _json_path(value):
    """A path, list of paths or None as JSON values."""
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return None if value is None else str(value)


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``torchrun --nproc_per_node N -m cxr14.train --job job.json``."""
    ap = argparse.ArgumentParser(description="Train one architecture (see cxr14.train.train).")
    ap.add_argument("--job", required=True, help="JSON file with train()'s keyword arguments")
    args = ap.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s"
    )
    train(**json.loads(Path(args.job).read_text()))


if __name__ == "__main__":
    main()
