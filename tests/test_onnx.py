"""ONNX export of a bundle, for every architecture: onnxruntime reproduces PyTorch's
probabilities (< 1e-4) on the raw uint8 image, batch size free; the file carries its labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from cxr14.bundle import build_bundle
from cxr14.checkpoint import atomic_save
from cxr14.data import Normalizer
from cxr14.inference import Scorer
from cxr14.layouts.nih import LABELS
from cxr14.models import ARCHITECTURES, build_model
from cxr14.onnx_export import TOLERANCE, export_onnx

# Small variants (the export does not depend on the size), random weights.
SMALL = {
    "simple_cnn": {"channels": [4, 8]},
    "vgg_like": {"widths": [4, 8], "fc": 16},
    "resnet18": {"weights": "none"},
    "densenet121": {"weights": "none"},
    "convnext_tiny": {"weights": "none"},
    "efficientnet_b0": {"weights": "none"},
    "vit_small_patch16_224": {"weights": "none"},
    "timm": {"timm_name": "resnet10t", "weights": "none"},
}
PROVENANCE = {
    "run": "r",
    "split": "holdout",
    "seed": 0,
    "split_method": "patient_random",
    "dataset": "test",
    "caveat": "",
}


def _bundle(tmp_path, arch) -> str:
    torch.manual_seed(0)
    model = build_model(arch, len(LABELS), **SMALL[arch], input_size=32).eval()
    average = np.random.default_rng(0).uniform(0, 255, (48, 48)).astype(np.float32)
    config = {"arch": arch, "run": "r", "input_size": 32, **SMALL[arch]}
    ckpt = {"config": config, "labels": list(LABELS), "weights_used": "none", "best_epoch": 1}
    scorer = Scorer(model, Normalizer(average, 50.0, 32), torch.device("cpu"), ckpt)
    y = np.tile([[0, 1]], (1, 7)).repeat(10, axis=0)
    test = {
        c: {"auroc": 0.5, "auroc_ci_low": 0.4, "auroc_ci_high": 0.6, "n_pos": 1, "n_neg": 9}
        | {"ece": 0.1, "ece_scaled": 0.05}
        for c in [*LABELS, "mean"]
    }
    bundle = build_bundle(
        scorer,
        y,
        np.random.default_rng(1).random(y.shape),
        {"store_size": 48, "resample": "bilinear"},
        PROVENANCE,
        test,
        0.9,
    )
    path = tmp_path / f"{arch}.pt"
    atomic_save(bundle, path)
    return path


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_onnx_export_matches_pytorch(tmp_path, arch):
    out = tmp_path / f"{arch}.onnx"
    diff = export_onnx(_bundle(tmp_path, arch), out)
    assert diff < TOLERANCE
    proto = onnx.load(out)
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["labels"]) == list(LABELS)
    assert len(json.loads(props["thresholds_youden"])) == len(LABELS)
    assert len(json.loads(props["calibration_slopes"])) == len(LABELS)
    assert len(json.loads(props["calibration_intercepts"])) == len(LABELS)
    (image,) = proto.graph.input
    assert image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert not list(tmp_path.glob("*.tmp"))


def test_export_onnx_command_prints_its_result_only(tmp_path):
    """The exporter's own progress and its optimiser's INFO lines stay out of the console."""
    from cxr14.testing import hangguard

    bundle, out = _bundle(tmp_path, "simple_cnn"), tmp_path / "m.onnx"
    cmd = [str(Path(sys.executable).with_name("cxr14")), "export-onnx"]
    proc = hangguard.run([*cmd, "--model", str(bundle), "--out", str(out)], guard=hangguard.COMMAND)
    assert proc.returncode == 0 and out.is_file(), proc.stderr
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("INFO r: ONNX graph "), lines
