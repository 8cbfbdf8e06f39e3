"""Choosing the device and its mixed-precision context (training and scoring alike)."""

from __future__ import annotations

from contextlib import nullcontext

import torch


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` | ``cuda`` | ``cpu`` -> the device this process uses."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device is 'cuda' but no CUDA device is available")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA (fp16 where bf16 is unsupported); nothing on the CPU."""
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()
