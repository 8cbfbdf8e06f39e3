"""Architectures, pretrained-weight handling and the losses."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torchvision

from cxr14.losses import build_loss, wcel
from cxr14.models import ARCHITECTURES, build_model, imagenet_weights_file
from cxr14.settings import preset

SMALL = {
    "vgg_like": {"widths": [8, 16, 32], "fc": 64},
    "resnet18": {"weights": "none"},
    "densenet121": {"weights": "none"},
    "timm": {"timm_name": "resnet10t", "weights": "none"},
}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("size", [64, 256])
def test_forward_shapes(arch, size):
    model = build_model(arch, 14, **SMALL.get(arch, {"weights": "none"}), input_size=size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, size, size))
    assert out.shape == (2, 14) and torch.isfinite(out).all()


def test_vgg_like_is_the_seed_design():
    # The NIH preset's: the reference study's layout (the demo's default is narrower).
    model = build_model("vgg_like", 14, **preset("nih.yaml")["models"]["vgg_like"])
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) for c in convs) and convs[0].in_channels == 1
    assert len(convs) < 13  # fewer conv layers than VGG16
    fcs = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [f.out_features for f in fcs] == [2048, 2048, 14]
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    # Xavier normal: weight variance 2 / (fan_in + fan_out), equation (2).
    fc = fcs[1]
    assert fc.weight.var().item() == pytest.approx(2 / (2048 + 2048), rel=0.05)


def test_wcel_by_hand():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # Equation (1): |P| = 1, |N| = 3, beta_P = 4, beta_N = 4/3; divided by |P| + |N| = 4.
    pos = math.log(2)  # -ln sigmoid(0)
    neg = [math.log(1 + math.e**2), math.log(1 + math.e**-1), math.log(2)]  # -ln(1 - sigmoid(z))
    by_hand = (4 * pos + 4 / 3 * sum(neg)) / 4
    assert wcel(logits, targets).item() == pytest.approx(by_hand, abs=1e-6)
    assert by_hand == pytest.approx(1.7375, abs=1e-4)


def test_wcel_batch_without_positives_is_finite():
    logits = torch.zeros(4, 14, requires_grad=True)
    loss = wcel(logits, torch.zeros(4, 14))
    assert loss.item() == pytest.approx(math.log(2))  # only the negative term
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_initial_wcel_of_a_fresh_model_is_about_2_ln_2(tiny_batch):
    x, y = tiny_batch
    torch.manual_seed(0)
    model = build_model("vgg_like", 14, widths=[8, 16], fc=32)
    with torch.no_grad():
        loss = wcel(model(x), y).item()
    # Xavier-initialised outputs are near 0 (p near 0.5): each term is near ln 2.
    assert loss == pytest.approx(2 * math.log(2), abs=0.35)


def test_other_losses():
    logits, y = torch.zeros(3, 14), torch.zeros(3, 14)
    y[0, 0] = 1
    assert build_loss("bce")(logits, y).item() == pytest.approx(math.log(2))
    wb = build_loss("weighted_bce", torch.tensor([[1.0] * 14, [0.0] * 14, [0.0] * 14, [0.0] * 14]))
    # pos_weight 3 on class 0: (3 ln2 + 41 ln2) / 42
    assert wb(logits, y).item() == pytest.approx((3 + 41) * math.log(2) / 42)
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("focal")


@pytest.fixture
def tiny_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 32, 32, generator=g)
    y = (torch.rand(16, 14, generator=g) < 0.3).float()
    y[:, 0] = torch.arange(16) % 2  # every class has both values somewhere
    return x, y


def test_overfits_one_small_batch(tiny_batch):
    x, y = tiny_batch
    torch.manual_seed(0)
    model = build_model("vgg_like", 14, widths=[8, 16], fc=64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(150):
        loss = wcel(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    model.eval()
    with torch.no_grad():
        pred = torch.sigmoid(model(x)) > 0.5
    assert (pred == y.bool()).float().mean() > 0.98


def test_frozen_resnet18_changes_only_its_head(tiny_batch):
    x, y = tiny_batch
    model = build_model("resnet18", 14, weights="none", freeze="backbone")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=1e-2)
    model.train()
    for _ in range(3):
        loss = wcel(model(x.repeat(1, 1, 2, 2)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"net.fc.weight", "net.fc.bias"}  # BatchNorm statistics included


def _torchvision_state(arch):
    torch.manual_seed(1)
    ctor = {"resnet18": torchvision.models.resnet18, "densenet121": torchvision.models.densenet121}
    return ctor[arch](weights=None).state_dict()  # 3-channel stem, 1000-class head


@pytest.mark.parametrize("arch, stem", [("resnet18", "conv1"), ("densenet121", "features.conv0")])
def test_weights_from_a_local_file(tmp_path, arch, stem):
    state = _torchvision_state(arch)
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    model = build_model(arch, 14, weights=str(path), freeze="none")
    own = model.state_dict()
    # The gray stem is the sum over RGB: a gray image replicated to RGB gives the same output.
    torch.testing.assert_close(own[f"{stem}.weight"], state[f"{stem}.weight"].sum(1, keepdim=True))
    key = (
        "layer4.1.conv2.weight"
        if arch == "resnet18"
        else "features.denseblock4.denselayer16.conv2.weight"
    )
    torch.testing.assert_close(own[key], state[key])
    assert model.weights_used == str(path)
    head = "fc" if arch == "resnet18" else "classifier"
    assert own[f"{head}.weight"].shape[0] == 14


def _state_2017(arch):
    """The layout of torchvision's published ImageNet files: saved before BatchNorm had a
    `num_batches_tracked` buffer, DenseNet with the old 'norm.1' key names."""
    state = {k: v for k, v in _torchvision_state(arch).items() if "num_batches_tracked" not in k}
    if arch == "densenet121":
        old = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.")
        state = {old.sub(r"\1.\2.", k): v for k, v in state.items()}
        assert "features.denseblock1.denselayer1.norm.1.weight" in state
    return state


@pytest.mark.parametrize("arch", ["resnet18", "densenet121"])
def test_weights_in_the_2017_layout_load_as_torchvision_loads_them(tmp_path, arch):
    state = _state_2017(arch)
    reference = _torchvision_state(arch)  # the same weights in today's layout
    path = tmp_path / f"{arch}-2017.pth"
    torch.save(state, path)
    model = build_model(arch, 14, weights=str(path), freeze="none")
    own = model.state_dict()
    key = (  # DenseNet: 'conv.2' in the file
        "layer4.1.conv2.weight"
        if arch == "resnet18"
        else "features.denseblock4.denselayer16.conv2.weight"
    )
    torch.testing.assert_close(own[key], reference[key])
    # A real mismatch is still refused by name: a conv weight missing.
    conv = (
        "layer1.0.conv1.weight"
        if arch == "resnet18"
        else "features.denseblock1.denselayer1.conv.1.weight"
    )
    del state[conv]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"1 missing keys"):
        build_model(arch, 14, weights=str(path))


def test_wrong_weight_files_fail_clearly(tmp_path, monkeypatch):
    path = tmp_path / "densenet.pth"
    torch.save(_torchvision_state("densenet121"), path)
    with pytest.raises(ValueError, match=r"does not hold resnet18 weights: \d+ missing keys"):
        build_model("resnet18", 14, weights=str(path))
    with pytest.raises(FileNotFoundError, match="nothere.pth does not exist"):
        build_model("resnet18", 14, weights=str(tmp_path / "nothere.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    expected = imagenet_weights_file("resnet18")
    assert str(expected).startswith(str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=r"ImageNet weights for resnet18 not found at .*resnet18-"
    ):
        build_model("resnet18", 14, weights="imagenet")
    assert build_model("resnet18", 14, weights="auto").weights_used.startswith("none")
    # Once the file is in torchvision's cache, imagenet and auto use it.
    expected.parent.mkdir(parents=True)
    torch.save(_torchvision_state("resnet18"), expected)
    assert build_model("resnet18", 14, weights="imagenet").weights_used == str(expected)
    assert build_model("resnet18", 14, weights="auto").weights_used == str(expected)
