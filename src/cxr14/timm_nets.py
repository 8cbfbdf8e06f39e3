"""timm backbones (ConvNeXt, EfficientNet, vision transformers, any model ``timm`` can create):
built for 1-channel input and the run's classes, their weights read from a local file only.

timm is imported only when one is built, so the other architectures' jobs start without it.
The registry entries are in ``cxr14.models``; this module knows timm's conventions: a model's
``pretrained_cfg`` (its stem and head), a family's ``checkpoint_filter_fn`` (old checkpoint
layouts, position embeddings resized to the model's grid), Hugging Face snapshot folders and
the Hugging Face cache.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

# What a Hugging Face snapshot folder of a timm model holds, in the order timm prefers them.
SNAPSHOT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def _timm():
    try:
        import timm
    except ImportError:
        raise ImportError(
            "the timm backbones need timm: pip install timm (pinned in requirements.txt)"
        ) from None
    return timm


def check_name(name: str) -> str:
    """``name`` if timm can create it, else a ValueError naming close matches."""
    timm = _timm()
    if not name or not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5) if name else []
        hint = f"; close: {', '.join(close)}" if close else ""
        raise ValueError(f"timm has no model {name!r} (timm.list_models() lists them){hint}")
    return name


def create(name: str, num_classes: int, input_size: int) -> nn.Module:
    """timm's ``name``, randomly initialised, for 1-channel images of side ``input_size``
    (models with a fixed input size, as ViTs, are built for it) and ``num_classes`` outputs."""
    timm = _timm()
    check_name(name)
    sized = {}
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is not None and cfg.fixed_input_size:
        sized = {"img_size": input_size}
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=1, **sized)


def head_name(model: nn.Module) -> str:
    """The module path of ``model``'s classifier (its last linear layer), from timm's config."""
    head = model.pretrained_cfg["classifier"]
    return head[0] if isinstance(head, list | tuple) else head


def cam_module(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads: a transformer's last block's first norm (its patch tokens;
    the block's output feeds only the class token into the head, so its patch tokens get no
    gradient), else the deepest feature map timm lists (``feature_info``)."""
    if getattr(model, "num_prefix_tokens", None) is not None and hasattr(model, "blocks"):
        return model.blocks[-1].norm1
    return model.get_submodule(model.feature_info[-1]["module"])


def weights_file(path: Path) -> Path:
    """The weights file of ``path``: the file itself, or the one a Hugging Face snapshot folder
    (``hf download timm/<model>``) holds."""
    if path.is_dir():
        for name in SNAPSHOT_FILES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"{path} is a folder without timm weights ({', '.join(SNAPSHOT_FILES)})"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return path


def hub_cache() -> str | None:
    """The Hugging Face cache folder the environment names now (None: the library's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    return os.path.join(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else None


def cached_weights(name: str) -> Path | None:
    """The weights of timm's default pretrained tag of ``name`` in the local Hugging Face cache
    (``hub_cache``), or None; never downloads."""
    cfg = _timm().models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    for filename in SNAPSHOT_FILES:
        found = try_to_load_from_cache(cfg.hf_hub_id, filename, cache_dir=hub_cache())
        if isinstance(found, str):
            return Path(found)
    return None


def hub_id(name: str) -> str:
    """Where timm publishes the default pretrained weights of ``name`` (for messages)."""
    cfg = _timm().models.get_pretrained_cfg(name)
    return (cfg.hf_hub_id if cfg is not None else "") or "(no published weights)"


def read_state_dict(path: Path, model: nn.Module) -> dict:
    """The state dict in ``path`` made to fit ``model`` as timm's own loader does: the
    family's checkpoint filter (old layouts, position embeddings resampled to the model's
    grid), the RGB stem summed to one channel, and without the pretrained head."""
    timm = _timm()
    state = timm.models.load_state_dict(str(path), weights_only=True)
    family = sys.modules[type(model).__module__]
    fit = getattr(family, "checkpoint_filter_fn", None)
    if fit is not None:
        try:
            state = fit(state, model)
        except (KeyError, RuntimeError, ValueError, IndexError) as exc:
            name = model.pretrained_cfg.get("architecture", type(model).__name__)
            raise ValueError(
                f"{path} does not hold {name} weights: timm's checkpoint conversion failed at "
                f"{exc!r}"
            ) from None
    stems = model.pretrained_cfg.get("first_conv") or ()
    for stem in (stems,) if isinstance(stems, str) else stems:
        w = state.get(f"{stem}.weight")
        if w is not None and w.ndim == 4 and w.shape[1] == 3:
            state[f"{stem}.weight"] = timm.models.adapt_input_conv(1, w)
    head = head_name(model)
    return {k: v for k, v in state.items() if not k.startswith(head + ".")}


def sync_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with synchronised BatchNorm for DDP, timm's fused norm + activation layers
    (EfficientNet's ``BatchNormAct2d``) kept whole: torch's converter would drop their
    activation."""
    return _timm().layers.convert_sync_batchnorm(model)


def tokens_to_map(a: torch.Tensor, prefix: int, height: int, width: int) -> torch.Tensor:
    """A transformer's tokens (B, prefix + h*w, C) as a feature map (B, C, h, w) of the
    patch grid of an input of ``height`` x ``width``."""
    n = a.shape[1] - prefix
    h = round((n * height / width) ** 0.5)
    return a[:, prefix:].transpose(1, 2).reshape(a.shape[0], a.shape[2], h, n // h)
