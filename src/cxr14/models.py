"""Model registry: the seed study's three architectures and CheXNet's DenseNet-121.

Every model takes a 1-channel image batch (B, 1, H, W) of any size >= 32 and returns 14 logits
(LABELS order). Build one with ``build_model(arch, **settings)``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

from cxr14.labels import LABELS

log = logging.getLogger(__name__)
N_CLASSES = len(LABELS)


def xavier_init(module: nn.Module) -> None:
    """The seed's equation (2): weights ~ N(0, 2 / (n_in + n_out)), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SimpleCNN(nn.Module):
    """The seed's two-convolution network (3.2.1): conv-ReLU-pool twice, then a linear head.

    Global average pooling before the head keeps it input-size agnostic (and CAM-ready).
    """

    def __init__(self, channels: tuple[int, int] = (16, 32), num_classes: int = N_CLASSES):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c2, num_classes)
        xavier_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class VGGLike(nn.Module):
    """The seed's VGG-like net (3.2.2), learned from scratch.

    Stages of ``convs_per_stage`` x (3x3 conv + BatchNorm + ReLU) and a 2x2 max-pool, widths per
    stage as given (fewer layers than VGG16), 1-channel input, then two fully connected layers
    of ``fc`` units (2048: half of VGG16's) and 14 outputs. Xavier initialisation; no
    regularisation unless ``dropout`` > 0.
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128, 256, 256),
        convs_per_stage: int = 2,
        fc: int = 2048,
        pool_size: int = 2,
        dropout: float = 0.0,
        num_classes: int = N_CLASSES,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for w in widths:
            for _ in range(convs_per_stage):
                layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                           nn.ReLU(inplace=True)]  # fmt: skip
                c_in = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        # Adaptive pooling fixes the flattened size, so any input resolution works.
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Linear(c_in * pool_size * pool_size, fc),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc, fc),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc, num_classes),
        )
        xavier_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# ---------------------------------------------------------------- pretrained torchvision nets


def imagenet_weights_file(arch: str) -> Path:
    """Where torchvision's cache keeps the ImageNet weights of ``arch``."""
    url = TORCHVISION[arch]["weights"].url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _densenet_keys(state: dict) -> dict:
    # torchvision's DenseNet checkpoints use old names ('norm.1' for 'norm1'); same fix as
    # torchvision.models.densenet._load_state_dict.
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    out = {}
    for key, value in state.items():
        m = pattern.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def _gray_first_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A 1-channel copy of an RGB conv: weights summed over colour channels.

    A gray image replicated to RGB gives exactly the same response, so pretrained filters keep
    their meaning without tripling the input.
    """
    new = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)  # fmt: skip
    with torch.no_grad():
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def resolve_weights(arch: str, weights: str) -> Path | None:
    """Map the config's ``weights`` (imagenet | none | auto | path) to a file, or None.

    Never downloads: compute nodes are often offline, and a silent download hides what ran.
    """
    if weights == "none":
        return None
    if weights in ("imagenet", "auto"):
        path = imagenet_weights_file(arch)
        if path.is_file():
            return path
        if weights == "auto":
            log.warning("%s: no cached ImageNet weights at %s; random initialisation", arch, path)
            return None
        raise FileNotFoundError(
            f"ImageNet weights for {arch} not found at {path}. Download "
            f"{TORCHVISION[arch]['weights'].url} on a machine with internet access and copy it "
            f"there (or set TORCH_HOME), or set models.{arch}.weights to a local .pth file, "
            "or to 'none' for random initialisation."
        )
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"models.{arch}.weights: file {path} does not exist")
    return path


def _load_backbone(model: nn.Module, arch: str, path: Path) -> None:
    """Load a torchvision-format state dict (3-channel stem, 1000-class head) into ``model``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    if arch == "densenet121":
        state = _densenet_keys(state)
    stem = TORCHVISION[arch]["stem"]
    head = TORCHVISION[arch]["head"]
    w = state.get(f"{stem}.weight")
    if w is not None and w.shape[1] == 3:
        state[f"{stem}.weight"] = w.sum(dim=1, keepdim=True)
    state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.startswith(head + ".")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} does not hold {arch} weights: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(wrong)} of the wrong shape (e.g. {wrong[:3]})"
        )
    model.load_state_dict(state, strict=False)


class FrozenBackbone(nn.Module):
    """Wraps a net so only its head trains: backbone weights frozen and BatchNorm statistics
    kept (the backbone stays in eval mode even when the wrapper is put in train mode)."""

    def __init__(self, net: nn.Module, head: str):
        super().__init__()
        self.net = net
        self.head = head
        for name, p in net.named_parameters():
            p.requires_grad = name.startswith(head + ".")

    def train(self, mode: bool = True) -> FrozenBackbone:
        super().train(mode)
        self.net.eval()
        getattr(self.net, self.head).train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _torchvision_net(arch: str, weights: str = "auto", freeze: str = "none") -> nn.Module:
    spec = TORCHVISION[arch]
    net = spec["ctor"](weights=None)
    stem_parent, stem_name = (
        spec["stem"].rsplit(".", 1) if "." in spec["stem"] else ("", spec["stem"])
    )
    parent = net.get_submodule(stem_parent) if stem_parent else net
    setattr(parent, stem_name, _gray_first_conv(getattr(parent, stem_name)))
    head = getattr(net, spec["head"])
    setattr(net, spec["head"], nn.Linear(head.in_features, N_CLASSES))
    path = resolve_weights(arch, weights)
    if path is not None:
        _load_backbone(net, arch, path)
        log.info("%s: backbone weights from %s", arch, path)
    net.weights_used = str(path) if path else "none (random initialisation)"
    if freeze == "backbone":
        wrapped = FrozenBackbone(net, spec["head"])
        wrapped.weights_used = net.weights_used
        return wrapped
    if freeze != "none":
        raise ValueError(f"models.{arch}.freeze must be 'backbone' or 'none', not {freeze!r}")
    return net


TORCHVISION = {
    "resnet18": {
        "ctor": torchvision.models.resnet18,
        "weights": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
        "stem": "conv1",
        "head": "fc",
    },
    "densenet121": {
        "ctor": torchvision.models.densenet121,
        "weights": torchvision.models.DenseNet121_Weights.IMAGENET1K_V1,
        "stem": "features.conv0",
        "head": "classifier",
    },
}


def _simple_cnn(channels=(16, 32)) -> nn.Module:
    return SimpleCNN(tuple(channels))


def _vgg_like(widths=(32, 64, 128, 256, 256), convs_per_stage=2, fc=2048, pool_size=2,
              dropout=0.0) -> nn.Module:  # fmt: skip
    return VGGLike(tuple(widths), convs_per_stage, fc, pool_size, dropout)


def _resnet18(weights="auto", freeze="backbone") -> nn.Module:
    return _torchvision_net("resnet18", weights, freeze)


def _densenet121(weights="auto", freeze="none") -> nn.Module:
    return _torchvision_net("densenet121", weights, freeze)


REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "simple_cnn": _simple_cnn,
    "vgg_like": _vgg_like,
    "resnet18": _resnet18,
    "densenet121": _densenet121,
}
# Per-architecture settings the model constructor takes (the rest are training settings).
MODEL_KEYS = {
    "simple_cnn": ("channels",),
    "vgg_like": ("widths", "convs_per_stage", "fc", "pool_size", "dropout"),
    "resnet18": ("weights", "freeze"),
    "densenet121": ("weights", "freeze"),
}


def build_model(arch: str, /, **settings) -> nn.Module:
    """Instantiate ``arch`` with its model settings (unknown keys are ignored)."""
    if arch not in REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(REGISTRY)}")
    kwargs = {k: settings[k] for k in MODEL_KEYS[arch] if k in settings}
    model = REGISTRY[arch](**kwargs)
    if not hasattr(model, "weights_used"):
        model.weights_used = "none (trained from scratch)"
    return model
