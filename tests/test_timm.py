"""timm backbones: weights from every file format users meet (timm's .safetensors and .pth,
a Hugging Face snapshot folder, the Hugging Face cache), refused by name when they do not fit,
never downloaded; linear probe and backbone learning rate; Grad-CAM on the right grid.

The weight files are state dicts of randomly initialised timm models in the published layout
(3-channel stem, 1000-class head), saved here: no file is downloaded."""

from __future__ import annotations

import pytest
import safetensors.torch
import timm
import torch
from timm.layers import resample_abs_pos_embed

from cxr14.gradcam import cam_grid, grad_cam
from cxr14.models import build_model, cam_layer, head_parameters, sync_batchnorm

NAMED = ["convnext_tiny", "efficientnet_b0", "vit_small_patch16_224"]
STEMS = {
    "convnext_tiny": "stem.0.weight",
    "efficientnet_b0": "conv_stem.weight",
    "vit_small_patch16_224": "patch_embed.proj.weight",
}


def _published(name: str) -> dict:
    """A state dict as timm publishes ``name``'s ImageNet weights (random values)."""
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False).state_dict()


def _save(state: dict, path, fmt: str):
    if fmt == "safetensors":
        safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, path)
    elif fmt == "pth":
        torch.save(state, path)
    else:  # a training checkpoint wrapping it, as timm's train.py writes them
        torch.save({"epoch": 3, "state_dict": state}, path)
    return path


@pytest.mark.parametrize("fmt", ["safetensors", "pth", "checkpoint"])
@pytest.mark.parametrize("name", NAMED)
def test_weight_files_load_with_a_gray_stem_and_a_new_head(tmp_path, name, fmt):
    source = _published(name)
    path = _save(source, tmp_path / f"w.{'safetensors' if fmt == 'safetensors' else 'pth'}", fmt)
    model = build_model(name, 14, weights=str(path), freeze="none", input_size=64)
    own = model.state_dict()
    assert model.weights_used == str(path)
    stem = STEMS[name]
    torch.testing.assert_close(own[stem], source[stem].sum(1, keepdim=True))
    head = head_parameters(name, model)[1][0]
    assert head.shape == (14, head.shape[1])  # the 1000-class head is dropped
    shared = [k for k in source if k in own and k != stem and own[k].shape == source[k].shape]
    assert len(shared) > 0.9 * len(source)
    assert all(torch.equal(own[k], source[k]) for k in shared)
    if name.startswith("vit"):  # 14x14 position embeddings resampled to the 4x4 grid of 64 px
        expected = resample_abs_pos_embed(source["pos_embed"], (4, 4), num_prefix_tokens=1)
        torch.testing.assert_close(own["pos_embed"], expected)


def test_a_snapshot_folder_and_the_hugging_face_cache(tmp_path, monkeypatch):
    name = "efficientnet_b0"
    folder = tmp_path / "snapshot"
    folder.mkdir()
    _save(_published(name), folder / "model.safetensors", "safetensors")
    (folder / "config.json").write_text('{"architecture": "efficientnet_b0"}')
    assert build_model(name, 3, weights=str(folder)).weights_used.endswith("model.safetensors")
    # `weights: imagenet` reads timm's default tag from the local cache, never downloads.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = timm.models.get_pretrained_cfg(name).hf_hub_id
    with pytest.raises(FileNotFoundError, match=f"run `hf download {hub}`"):
        build_model(name, 3, weights="imagenet")
    assert build_model(name, 3, weights="auto").weights_used.startswith("none")
    repo = tmp_path / "hub" / f"models--{hub.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    cached = repo / "snapshots" / "abc123" / "model.safetensors"
    _save(_published(name), cached, "safetensors")
    assert build_model(name, 3, weights="imagenet").weights_used == str(cached)


def test_wrong_weight_files_are_refused_by_name(tmp_path):
    other = _save(_published("efficientnet_b0"), tmp_path / "effnet.safetensors", "safetensors")
    with pytest.raises(ValueError, match=r"effnet.safetensors does not hold convnext_tiny weights"):
        build_model("convnext_tiny", 14, weights=str(other))
    state = _published("convnext_tiny")
    state["stages.0.blocks.0.conv_dw.weight"] = torch.zeros(96, 1, 3, 3)
    wrong = _save(state, tmp_path / "wrong.pth", "pth")
    with pytest.raises(ValueError, match=r"1 of the wrong shape \(e.g. \['stages.0.blocks.0.conv"):
        build_model("convnext_tiny", 14, weights=str(wrong))
    with pytest.raises(FileNotFoundError, match="nothere.pth does not exist"):
        build_model("convnext_tiny", 14, weights=str(tmp_path / "nothere.pth"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty is a folder without timm weights"):
        build_model("convnext_tiny", 14, weights=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="timm has no model 'convnext_tinyy'"):
        build_model("timm", 14, timm_name="convnext_tinyy", weights="none")


def test_any_timm_model_by_name_and_a_linear_probe(tmp_path):
    source = _published("resnet10t")
    path = _save(source, tmp_path / "r.pth", "pth")
    model = build_model("timm", 5, timm_name="resnet10t", weights=str(path), freeze="backbone")
    backbone, head = head_parameters("timm", model)
    assert not backbone and [p.shape for p in head] == [(5, 512), (5,)]
    model.train()
    assert not model.net.training and model.net.fc.training  # BatchNorm statistics kept
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 5)


@pytest.mark.parametrize(("name", "grid"), [(n, g) for n, g in zip(NAMED, [2, 2, 4], strict=True)])
def test_grad_cam_reads_the_backbones_own_grid(name, grid):
    torch.manual_seed(0)
    model = build_model(name, 3, weights="none", input_size=64).eval()
    x, classes = torch.randn(2, 1, 64, 64), torch.tensor([0, 2])
    raw = cam_grid(model, cam_layer(name, model), x, classes)
    assert raw.shape == (2, 1, grid, grid) and (raw > 0).any()
    cam = grad_cam(model, cam_layer(name, model), x, classes)
    assert cam.shape == (2, 64, 64) and cam.max() == pytest.approx(1.0)


def test_ddp_keeps_timms_fused_norm_and_activation():
    """Synchronised BatchNorm for DDP: EfficientNet's BatchNorm + SiLU layers stay whole (torch's
    own converter would turn them into a bare SyncBatchNorm, dropping the activation)."""
    from timm.layers import BatchNormAct2d, SyncBatchNormAct

    model = build_model("efficientnet_b0", 3, weights="none", freeze="backbone")
    fused = sum(isinstance(m, BatchNormAct2d) for m in model.modules())
    synced = sync_batchnorm("efficientnet_b0", model)
    assert fused > 0 and sum(isinstance(m, SyncBatchNormAct) for m in synced.modules()) == fused
    assert not any(type(m) is torch.nn.SyncBatchNorm for m in synced.modules())
