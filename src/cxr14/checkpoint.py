"""Checkpoints: written atomically, read safely, and enough to rebuild the model alone.

A checkpoint is a dict of plain tensors and Python values (it loads with
``weights_only=True``): ``model`` (state dict), ``config`` (the training settings, model
settings filled in), ``labels`` (class order of the outputs), ``epoch``, ``history``,
``best_auroc``/``best_epoch``, ``weights_used``, ``normalization`` (``average``: the training
split's average image, ``std``: its pixel std; absent before 2026-11-30), ``cxr14_version``;
the resume state also holds
``optimizer``, ``scheduler``, ``rng`` (and ``scaler`` under fp16).
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
import torch
from torch import nn

from cxr14.files import replacing
from cxr14.models import build_model, count_parameters, get_architecture
from cxr14.settings import run_name

# Keys only the resume state needs; a finished model's file leaves them out.
RESUME_KEYS = ("optimizer", "scheduler", "rng", "scaler")


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file renamed over ``path``: never a half-written file."""
    with replacing(path) as tmp:
        torch.save(obj, tmp)


def rng_state() -> dict:
    """The state of every random generator a training uses, as plain values."""
    np_state = np.random.get_state()  # noqa: NPY002 - third-party code may use it
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))  # noqa: NPY002
    random.setstate(state["python"])


def _check_settings(path, ckpt: dict, arch: str, settings: dict) -> None:
    keys = get_architecture(arch).settings
    have = ckpt["config"]
    diff = {k: (have.get(k), settings.get(k)) for k in keys if have.get(k) != settings.get(k)}
    if diff:
        text = ", ".join(f"{k}: checkpoint {a!r} vs. requested {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"{path} was trained with other model settings ({text})")


def load_checkpoint(
    path: str | os.PathLike, arch: str | None = None, settings: dict | None = None
) -> dict:
    """Load a checkpoint safely (``weights_only=True``) and check what it holds.

    Raises ValueError with a readable message when it is not a checkpoint of this project, of
    ``arch``, or of the given model ``settings`` (instead of a state-dict shape dump later).
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or not {"model", "config", "epoch", "labels"} <= set(ckpt):
        raise ValueError(f"{path}: not a cxr14 training checkpoint")
    have = ckpt["config"].get("arch")
    if arch is not None and have != arch:
        raise ValueError(f"{path} is a checkpoint of architecture {have!r}, not {arch!r}")
    if settings is not None:
        _check_settings(path, ckpt, have, settings)
    return ckpt


def load_model(path: str | os.PathLike, arch: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model stored in a checkpoint: needs nothing but the file."""
    ckpt = load_checkpoint(path, arch)
    config = {**ckpt["config"], "weights": "none"}  # the state dict carries the weights
    model = build_model(config["arch"], len(ckpt["labels"]), **config)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ValueError(
            f"{path}: weights do not fit {config['arch']} ({str(exc)[:300]})"
        ) from None
    model.weights_used = ckpt.get("weights_used", "unknown")
    return model, ckpt


def model_caveat(ckpt: dict, sep: str = "; ") -> str:
    """What a reader of this model's results must know in words ('' if nothing): a frozen
    backbone without pretrained weights is a linear probe on random features."""
    weights = str(ckpt.get("weights_used", ""))
    if ckpt["config"].get("freeze") == "backbone" and weights.startswith("none"):
        return (
            sep
            + "frozen random backbone (no pretrained weights): a linear probe on random features"
        )
    return ""


def describe_model(model: nn.Module, ckpt: dict) -> dict:
    """What tables and figures say of a trained model, as plain values (``model.json``), so
    that they need neither the checkpoint nor torch."""
    total, trainable = count_parameters(model)
    config = ckpt["config"]
    return {
        "name": run_name(config),
        "arch": config["arch"],
        "freeze": config.get("freeze", "none"),
        "weights_used": str(ckpt.get("weights_used", "unknown")),
        "caveat": model_caveat(ckpt, ""),
        "labels": list(ckpt["labels"]),
        "best_epoch": int(ckpt["best_epoch"]),
        "parameters": total,
        "trainable_parameters": trainable,
    }


def conv_kernels(state: dict, max_filters: int = 64) -> list[tuple[str, tuple, np.ndarray]]:
    """Every convolution whose kernels are images (k >= 3; 1x1 kernels would show as single
    grey squares), in order: its name, weight shape (out x in x kh x kw) and its first
    ``max_filters`` kernels averaged over input channels (n x kh x kw)."""
    return [
        (k.removesuffix(".weight"), tuple(v.shape), v.float().mean(dim=1)[:max_filters].numpy())
        for k, v in state.items()
        if k.endswith("weight") and v.dim() == 4 and min(v.shape[-2:]) >= 3
    ]


def write_model_facts(model: nn.Module, ckpt: dict, out_json, out_kernels) -> None:
    """``describe_model`` as JSON and ``conv_kernels`` as an ``.npz`` (``names``, and
    ``kernels_<i>`` and ``shape_<i>`` per layer), each written whole or not at all."""
    with replacing(out_json) as tmp:
        tmp.write_text(json.dumps(describe_model(model, ckpt), indent=2) + "\n")
    kernels = conv_kernels(ckpt["model"])
    arrays = {"names": np.array([name for name, _, _ in kernels], dtype=str)}
    for i, (_, shape, k) in enumerate(kernels):
        arrays[f"kernels_{i}"], arrays[f"shape_{i}"] = k, np.array(shape)
    with replacing(out_kernels, suffix=".tmp.npz") as tmp:  # np.savez appends .npz otherwise
        np.savez(tmp, **arrays)
