"""The architecture registry: the reference study's three networks, CheXNet's DenseNet-121 and
timm's backbones (ConvNeXt, EfficientNet, ViT, or any timm model by name).

Every model takes a 1-channel image batch (B, 1, H, W) and returns one logit per class; the
convolutional nets take any size >= 32, a vision transformer the size it was built for
(``train.input_size``). An architecture is one ``ARCHITECTURES`` entry: its factory, the names
of the model settings it accepts (their defaults: ``models.<arch>`` in config/config.yaml), its
head and the layer Grad-CAM reads. Adding one: docs/training.md.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from cxr14 import timm_nets
from cxr14.settings import default_config

log = logging.getLogger(__name__)


def xavier_init(module: nn.Module) -> None:
    """Equation (2) of the reference study: weights ~ N(0, 2 / (n_in + n_out)), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SimpleCNN(nn.Module):
    """The reference study's two-convolution network (its section 3.2.1): conv-ReLU-pool
    twice, then a linear head.

    Global average pooling before the head keeps it input-size agnostic (and CAM-ready).
    """

    def __init__(self, num_classes: int, channels: tuple[int, int]):
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
    """The reference study's VGG-like net (its section 3.2.2), learned from scratch.

    Stages of ``convs_per_stage`` x (3x3 conv + BatchNorm + ReLU) and a 2x2 max-pool, widths per
    stage as given (fewer layers than VGG16), 1-channel input, then two fully connected layers
    of ``fc`` units (2048: half of VGG16's) and one output per class. Xavier initialisation; no
    regularisation unless ``dropout`` > 0.
    """

    def __init__(
        self,
        num_classes: int,
        widths: tuple[int, ...],
        convs_per_stage: int,
        fc: int,
        pool_size: int,
        dropout: float,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for w in widths:
            for _ in range(convs_per_stage):
                conv = nn.Conv2d(c_in, w, 3, padding=1, bias=False)
                layers += [conv, nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
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


@dataclass(frozen=True)
class TorchvisionNet:
    """A torchvision classifier, by name: ``torchvision.models.<name>``, its ImageNet
    weights (``<Enum>.<member>`` of ``torchvision.models``), and where it keeps its input
    convolution and its head. torchvision is imported only when one is built or its weights
    are looked up, so the other architectures' jobs start without it (and without the
    ``torch._dynamo`` its ``ops`` import)."""

    name: str
    weights: str
    stem: str
    head: str

    def ctor(self) -> Callable[..., nn.Module]:
        import torchvision

        return getattr(torchvision.models, self.name)

    def weights_url(self) -> str:
        import torchvision

        enum, member = self.weights.split(".")
        return getattr(getattr(torchvision.models, enum), member).url


def imagenet_weights_file(arch: str) -> Path:
    """Where torchvision's cache keeps the ImageNet weights of ``arch``."""
    url = ARCHITECTURES[arch].torchvision.weights_url()
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
    new = nn.Conv2d(
        1,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def resolve_weights(arch: str, weights: str, timm_name: str = "") -> Path | None:
    """Map the config's ``weights`` (imagenet | none | auto | path) to a file, or None.
    ``timm_name``: the model of the generic ``timm`` entry.

    Never downloads: compute nodes are often offline, and a silent download hides what ran.
    """
    if weights == "none":
        return None
    entry = get_architecture(arch)
    if entry.timm is not None and weights not in ("imagenet", "auto"):
        try:
            return timm_nets.weights_file(Path(weights))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"models.{arch}.weights: {exc}") from None
    if weights in ("imagenet", "auto"):
        path, where, source = _pretrained_file(arch, entry.timm or timm_name)
        if path is not None and path.is_file():
            return path
        if weights == "auto":
            log.warning("%s: no cached ImageNet weights at %s; random initialisation", arch, where)
            return None
        raise FileNotFoundError(
            f"ImageNet weights for {arch} not found at {where}. On a machine with internet "
            f"access, {source}; or set models.{arch}.weights to a local file, or to 'none' for "
            "random initialisation."
        )
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"models.{arch}.weights: file {path} does not exist")
    return path


def _pretrained_file(arch: str, timm_name: str) -> tuple[Path | None, str, str]:
    """(the cached ImageNet weights or None, where they are looked for, where to get them)."""
    if get_architecture(arch).timm is None:
        path = imagenet_weights_file(arch)
        url = ARCHITECTURES[arch].torchvision.weights_url()
        return path, str(path), f"download {url} and copy it there (TORCH_HOME sets the cache)"
    hub = timm_nets.hub_id(timm_name)
    where = f"{timm_nets.hub_cache() or 'the Hugging Face cache'} as {hub}"
    how = f"run `hf download {hub}` and copy the cache there (or set weights to its folder)"
    return timm_nets.cached_weights(timm_name), where, how


def _read_state_dict(path: Path, arch: str, spec: TorchvisionNet) -> dict:
    """A torchvision-format state dict with a gray stem and without the 1000-class head."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict")
    if arch == "densenet121":
        state = _densenet_keys(state)
    w = state.get(f"{spec.stem}.weight")
    if w is not None and w.shape[1] == 3:
        state[f"{spec.stem}.weight"] = w.sum(dim=1, keepdim=True)
    return {k: v for k, v in state.items() if not k.startswith(spec.head + ".")}


def load_checked(model: nn.Module, state: dict, path: Path, arch: str, head: str) -> None:
    """Load ``state`` (read from ``path``, without its head) into ``model``, or say which keys
    do not fit: a file of another network is refused, never half-loaded."""
    own = model.state_dict()
    # BatchNorm fills in `num_batches_tracked` for state dicts older than that buffer (as
    # torchvision's published ImageNet files are), so torch accepts them without it.
    missing = [
        k
        for k in own
        if k not in state
        and not k.startswith(head + ".")
        and not k.endswith(".num_batches_tracked")
    ]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} does not hold {arch} weights: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(wrong)} of the wrong shape (e.g. {wrong[:3]})"
        )
    model.load_state_dict(state, strict=False)
    log.info("%s: backbone weights from %s", arch, path)


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
        self.net.get_submodule(self.head).train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def unwrap(model: nn.Module) -> nn.Module:
    """The torchvision net inside a FrozenBackbone (or the model itself)."""
    return model.net if isinstance(model, FrozenBackbone) else model


def _torchvision_net(arch: str, num_classes: int, weights: str, freeze: str) -> nn.Module:
    spec = ARCHITECTURES[arch].torchvision
    net = spec.ctor()(weights=None)
    parent_name, _, stem_name = spec.stem.rpartition(".")
    parent = net.get_submodule(parent_name)
    setattr(parent, stem_name, _gray_first_conv(getattr(parent, stem_name)))
    head = getattr(net, spec.head)
    setattr(net, spec.head, nn.Linear(head.in_features, num_classes))
    path = resolve_weights(arch, weights)
    if path is not None:
        load_checked(net, _read_state_dict(path, arch, spec), path, arch, spec.head)
    return _frozen(net, arch, spec.head, freeze, path)


def _frozen(net: nn.Module, arch: str, head: str, freeze: str, path: Path | None) -> nn.Module:
    """``net`` as the run trains it (``freeze: backbone``: only its head), with the origin of
    its starting weights."""
    if freeze == "backbone":
        net = FrozenBackbone(net, head)
    elif freeze != "none":
        raise ValueError(f"models.{arch}.freeze must be 'backbone' or 'none', not {freeze!r}")
    net.weights_used = str(path) if path else "none (random initialisation)"
    return net


def _timm_net(
    arch: str, num_classes: int, weights: str, freeze: str, input_size: int, timm_name: str = ""
) -> nn.Module:
    name = ARCHITECTURES[arch].timm or timm_name
    net = timm_nets.create(name, num_classes, input_size)
    path = resolve_weights(arch, weights, name)
    head = timm_nets.head_name(net)
    if path is not None:
        load_checked(net, timm_nets.read_state_dict(path, net), path, arch, head)
    return _frozen(net, arch, head, freeze, path)


# ------------------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class Architecture:
    """One registry entry: ``build(num_classes, **settings)``, the names of the settings it
    accepts, and the layer whose activations Grad-CAM reads (the last spatial feature map
    before global pooling)."""

    build: Callable[..., nn.Module]
    settings: tuple[str, ...]
    cam_layer: Callable[[nn.Module], nn.Module]
    # The module path of the head (the classifier after pooling): what a linear probe trains and
    # `backbone_lr_scale` leaves at the full learning rate.
    head: Callable[[nn.Module], str] = field(default=lambda model: "classifier")
    torchvision: TorchvisionNet | None = field(default=None)
    # timm's model name ("": the run's `timm_name`); its build also takes `input_size`.
    timm: str | None = field(default=None)


def _timm_entry(name: str) -> Architecture:
    settings = ("weights", "freeze") if name else ("timm_name", "weights", "freeze")
    return Architecture(
        build=partial(_timm_net, name or "timm"),
        settings=settings,
        cam_layer=lambda model: timm_nets.cam_module(unwrap(model)),
        head=lambda model: timm_nets.head_name(unwrap(model)),
        timm=name,
    )


def _before_last_pool(model: nn.Module) -> nn.Module:
    # The ReLU before the last max-pool: twice the resolution of the pooled map.
    return model.features[-2]


ARCHITECTURES: dict[str, Architecture] = {
    "simple_cnn": Architecture(
        build=lambda num_classes, channels: SimpleCNN(num_classes, tuple(channels)),
        settings=("channels",),
        cam_layer=_before_last_pool,
    ),
    "vgg_like": Architecture(
        build=lambda num_classes, widths, **kw: VGGLike(num_classes, tuple(widths), **kw),
        settings=("widths", "convs_per_stage", "fc", "pool_size", "dropout"),
        cam_layer=_before_last_pool,
    ),
    "resnet18": Architecture(
        build=partial(_torchvision_net, "resnet18"),
        settings=("weights", "freeze"),
        cam_layer=lambda model: unwrap(model).layer4,
        head=lambda model: "fc",
        torchvision=TorchvisionNet(
            "resnet18",
            "ResNet18_Weights.IMAGENET1K_V1",
            stem="conv1",
            head="fc",
        ),
    ),
    "densenet121": Architecture(
        build=partial(_torchvision_net, "densenet121"),
        settings=("weights", "freeze"),
        cam_layer=lambda model: unwrap(model).features,
        torchvision=TorchvisionNet(
            "densenet121",
            "DenseNet121_Weights.IMAGENET1K_V1",
            stem="features.conv0",
            head="classifier",
        ),
    ),
    # timm's backbones: the tested ones by name, and any other by `timm_name`.
    "convnext_tiny": _timm_entry("convnext_tiny"),
    "efficientnet_b0": _timm_entry("efficientnet_b0"),
    "vit_small_patch16_224": _timm_entry("vit_small_patch16_224"),
    "timm": _timm_entry(""),
}


def get_architecture(arch: str) -> Architecture:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def model_settings(arch: str, settings: dict) -> dict:
    """The model settings of ``arch`` from ``settings``; those it lacks are the defaults
    (``models.<arch>`` of config/config.yaml)."""
    names = get_architecture(arch).settings
    defaults = default_config()["models"][arch] if set(names) - set(settings) else {}
    return {k: settings[k] if k in settings else defaults[k] for k in names}


def build_model(arch: str, num_classes: int, /, **settings) -> nn.Module:
    """Instantiate ``arch`` with ``num_classes`` outputs; keys other than its model settings
    (training settings) are ignored."""
    entry = get_architecture(arch)
    sized = {}
    if entry.timm is not None:  # a vision transformer is built for its input size
        size = settings.get("input_size") or default_config()["train"]["input_size"]
        sized = {"input_size": size}
    model = entry.build(num_classes, **model_settings(arch, settings), **sized)
    if not hasattr(model, "weights_used"):
        model.weights_used = "none (trained from scratch)"
    return model


def cam_layer(arch: str, model: nn.Module, path: str = "") -> nn.Module:
    """The layer of ``model`` (an ``arch``) whose activations Grad-CAM weighs: the
    architecture's own, or the module at ``path`` (e.g. ``features.denseblock3``)."""
    if not path:
        return get_architecture(arch).cam_layer(model)
    try:
        return unwrap(model).get_submodule(path)
    except AttributeError:
        raise ValueError(f"eval.cam_layers: {arch} has no module {path!r}") from None


def sync_batchnorm(arch: str, model: nn.Module) -> nn.Module:
    """``model`` (an ``arch``) with BatchNorm synchronised across DDP processes."""
    if get_architecture(arch).timm is not None:
        return timm_nets.sync_batchnorm(model)
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def head_parameters(arch: str, model: nn.Module) -> tuple[list, list]:
    """(the backbone's trainable parameters, the head's) of ``model`` (an ``arch``)."""
    head = get_architecture(arch).head(model) + "."
    named = [(n, p) for n, p in unwrap(model).named_parameters() if p.requires_grad]
    backbone = [p for n, p in named if not n.startswith(head)]
    return backbone, [p for n, p in named if n.startswith(head)]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.parameters() if p.requires_grad)
