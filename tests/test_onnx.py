"""ONNX: every architecture's bundle exports (the graph carries its labels, thresholds and the
bundle's hash), and `cxr14 predict`'s onnxruntime backend gives PyTorch's probabilities within
1e-4 on every real NIH image, with the same rows, columns and failures."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from helpers import small_bundle

from cxr14.bundle import load_bundle
from cxr14.models import ARCHITECTURES
from cxr14.onnx_export import TOLERANCE
from cxr14.predict import predict
from cxr14.provenance import sha256_file as bundle_sha256


@pytest.fixture(scope="module")
def real_images(tmp_path_factory, nih_dir) -> Path:
    """The 24 real NIH PNGs and a file that is not an image."""
    folder = tmp_path_factory.mktemp("real")
    for p in (nih_dir / "images").glob("*.png"):
        shutil.copy(p, folder / p.name)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_both_backends_give_the_same_predictions_on_real_images(tmp_path, real_images, arch):
    bundle = small_bundle(tmp_path / "bundle.pt", arch)
    tables, failures = {}, {}
    for backend in ("torch", "onnx"):  # onnx exports the graph into the cache beside the bundle
        out = tmp_path / f"{backend}.csv"
        tables[backend], failures[backend] = predict(
            bundle, [real_images], out, "cpu", 16, backend=backend, threads=2
        )
        assert pd.read_csv(out).shape == tables[backend].shape
    torch_t, onnx_t = tables["torch"], tables["onnx"]
    assert list(torch_t.columns) == list(onnx_t.columns) and len(torch_t) == 24
    assert torch_t["image"].tolist() == onnx_t["image"].tolist()
    assert failures["torch"] == failures["onnx"]
    assert [path for path, _ in failures["onnx"]] == [str(real_images / "broken.png")]
    probs = [c for c in torch_t if c.startswith(("prob_", "calibrated_"))]
    assert np.abs(torch_t[probs].to_numpy() - onnx_t[probs].to_numpy()).max() < TOLERANCE
    labels = load_bundle(bundle)["labels"]
    thresholds = np.array(load_bundle(bundle)["thresholds"]["youden"])
    near = np.abs(torch_t[[f"prob_{c}" for c in labels]].to_numpy() - thresholds) < TOLERANCE
    positive = [f"positive_{c}" for c in labels]
    assert (torch_t[positive].to_numpy() == onnx_t[positive].to_numpy())[~near].all()
    (graph,) = tmp_path.glob("bundle.*.onnx")
    proto = onnx.load(graph)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["bundle_sha256"] == bundle_sha256(bundle)
    assert graph.name == f"bundle.{props['bundle_sha256'][:16]}.onnx"
    assert json.loads(props["labels"]) == labels
    assert len(json.loads(props["thresholds_youden"])) == len(labels)
    assert len(json.loads(props["calibration_slopes"])) == len(labels)
    (image,) = proto.graph.input
    assert image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert not list(tmp_path.glob("*.tmp"))


def test_export_onnx_command_prints_its_result_only(tmp_path):
    """The exporter's own progress and its optimiser's INFO lines stay out of the console."""
    from cxr14.testing import hangguard

    bundle, out = small_bundle(tmp_path / "b.pt"), tmp_path / "m.onnx"
    cmd = [str(Path(sys.executable).with_name("cxr14")), "export-onnx"]
    proc = hangguard.run([*cmd, "--model", str(bundle), "--out", str(out)], guard=hangguard.COMMAND)
    assert proc.returncode == 0 and out.is_file(), proc.stderr
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("INFO r: ONNX graph "), lines
