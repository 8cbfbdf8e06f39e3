"""Scoring images with a trained model: checkpoint + normalisation statistics, nothing else."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cxr14.checkpoint import load_model
from cxr14.data import DeviceData, Normalizer
from cxr14.device import resolve_device
from cxr14.models import cam_layer
from cxr14.settings import run_name


def _normalization(path, ckpt: dict, average_npy, stats_json) -> tuple[np.ndarray, float]:
    norm = ckpt.get("normalization")
    if norm is not None:
        return norm["average"].numpy(), float(norm["std"])
    if average_npy is None or stats_json is None:
        raise ValueError(
            f"{path} holds no input normalisation (trained before checkpoints held it): "
            "give its training split's average_image.npy and pixel_stats.json"
        )
    return np.load(average_npy), json.loads(Path(stats_json).read_text())["std"]


@dataclass
class Scorer:
    """A trained model in eval mode on its device, with the input normalisation it was
    trained with and the class order of its outputs."""

    model: nn.Module
    normalize: Normalizer
    device: torch.device
    checkpoint: dict
    # Module path of the layer Grad-CAM reads, where not the architecture's own (eval.cam_layers).
    cam_layer_path: str = ""

    @classmethod
    def load(
        cls,
        checkpoint: str | os.PathLike,
        average_npy: str | os.PathLike | None = None,
        stats_json: str | os.PathLike | None = None,
        device: str = "auto",
        cam_layer: str = "",
    ) -> Scorer:
        """The checkpoint's model with the normalisation it holds; a checkpoint written
        before it held one takes the training split's ``average_npy`` and ``stats_json``."""
        model, ckpt = load_model(checkpoint)
        dev = resolve_device(device)
        model.to(dev).eval()
        average, std = _normalization(checkpoint, ckpt, average_npy, stats_json)
        normalize = Normalizer(average, std, ckpt["config"]["input_size"])
        return cls(model, normalize.to(dev), dev, ckpt, cam_layer)

    @property
    def arch(self) -> str:
        return self.checkpoint["config"]["arch"]

    @property
    def name(self) -> str:
        return run_name(self.checkpoint["config"])

    @property
    def labels(self) -> list[str]:
        return list(self.checkpoint["labels"])

    def cam_layer(self) -> nn.Module:
        return cam_layer(self.arch, self.model, self.cam_layer_path)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 128) -> np.ndarray:
        """Sigmoid probabilities (n, classes) for uint8 images (n, H, W)."""
        data = DeviceData(images, torch.zeros(len(images), len(self.labels)), self.device)
        batches = data.batches(np.arange(len(images)), batch_size)
        out = [torch.sigmoid(self.model(self.normalize(x)).float()).cpu() for x, _ in batches]
        return torch.cat(out).numpy()
