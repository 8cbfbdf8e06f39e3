"""Checkpoints: written atomically, read safely, and enough to rebuild the model alone.

A checkpoint is a dict of plain tensors and Python values (it loads with
``weights_only=True``): ``model`` (state dict), ``config`` (the training settings, model
settings filled in), ``labels`` (class order of the outputs), ``epoch``, ``history``,
``best_auroc``/``best_epoch``, ``weights_used``, ``cxr14_version``; the resume state also holds
``optimizer``, ``scheduler``, ``rng`` (and ``scaler`` under fp16).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch import nn

from cxr14.files import replacing
from cxr14.models import build_model, get_architecture

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
