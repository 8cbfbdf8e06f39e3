"""ONNX export of a model bundle: the raw uint8 image at the store's size in, per-class
probabilities out, with the average image, pixel std and resize to the network's input inside
the graph. Every export is checked with onnxruntime against PyTorch before it is kept.

Needs the ``onnx`` extra (onnx, onnxscript for torch's exporter, onnxruntime for the check).
"""

from __future__ import annotations

import json
import logging

import numpy as np
import torch
from torch import nn

from cxr14.bundle import bundle_scorer, load_bundle
from cxr14.files import replacing
from cxr14.provenance import sha256_file

log = logging.getLogger(__name__)

# Largest accepted difference between onnxruntime's and PyTorch's probabilities.
TOLERANCE = 1e-4


class ImageToProbabilities(nn.Module):
    """uint8 (B, S, S) -> probabilities (B, classes): normalisation, network, sigmoid."""

    def __init__(self, model: nn.Module, normalize: nn.Module):
        super().__init__()
        self.model, self.normalize = model, normalize

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(self.normalize(image)))


def _metadata(bundle: dict, sha256: str) -> dict[str, str]:
    """What a user of the ONNX file alone needs: label order, thresholds, the recalibration
    (the calibrated probability of class k is sigmoid(a_k logit(p_k) + b_k), a the slopes, b
    the intercepts; a format-2 bundle's temperatures T give a = 1/T, b = 0), input size."""
    pre, cal = bundle["preprocess"], bundle["calibration"] or {}
    if "temperatures" in cal:
        temperatures = cal["temperatures"]
        cal = {"slopes": [1 / t for t in temperatures], "intercepts": [0.0] * len(temperatures)}
    return {
        "cxr14_format": "image-to-probabilities",
        "labels": json.dumps(bundle["labels"]),
        "thresholds_youden": json.dumps(bundle["thresholds"]["youden"]),
        "calibration_slopes": json.dumps(cal.get("slopes")),
        "calibration_intercepts": json.dumps(cal.get("intercepts")),
        # Isotonic: per class [scores, values], interpolated linearly.
        "calibration_knots": json.dumps(cal.get("knots")),
        "input": f"uint8 (batch, {pre['store_size']}, {pre['store_size']}) grayscale, "
        f"resized with PIL {pre['resample']} (antialiased)",
        "run": str(bundle["provenance"]["run"]),
        "dataset": str(bundle["provenance"]["dataset"]),
        "bundle_sha256": sha256,
    }


def check_onnx(path, graph: nn.Module, size: int, batch: int = 3, seed: int = 0) -> float:
    """Max abs difference of onnxruntime's and PyTorch's probabilities on random images."""
    import onnxruntime as ort

    images = torch.randint(
        0,
        256,
        (batch, size, size),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(seed),
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": images.numpy()})[0]
    with torch.no_grad():
        want = graph(images).numpy()
    return float(np.abs(got - want).max())


def export_onnx(model, out_onnx) -> float:
    """Write the bundle ``model`` as ONNX to ``out_onnx`` (only if onnxruntime reproduces
    PyTorch's probabilities within TOLERANCE); returns the measured difference."""
    return export_graph(load_bundle(model), out_onnx, sha256_file(model))


def export_graph(bundle: dict, out_onnx, sha256: str) -> float:
    """``export_onnx`` of a loaded bundle whose file has the hash ``sha256`` (recorded in the
    graph's metadata as ``bundle_sha256``)."""
    import onnx

    scorer = bundle_scorer(bundle, "cpu")
    graph = ImageToProbabilities(scorer.model, scorer.normalize).eval()
    size = bundle["preprocess"]["store_size"]
    example = torch.zeros((2, size, size), dtype=torch.uint8)
    program = torch.onnx.export(
        graph,
        (example,),
        input_names=["image"],
        output_names=["probabilities"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        verbose=False,  # the exporter's own progress lines: the result's line says it all
    )
    proto = program.model_proto
    onnx.helper.set_model_props(proto, _metadata(bundle, sha256))
    with replacing(out_onnx) as tmp:
        onnx.save(proto, tmp)
        diff = max(check_onnx(tmp, graph, size, batch) for batch in (1, 3))
        if diff >= TOLERANCE:
            raise ValueError(
                f"onnxruntime differs from PyTorch by {diff:.2g} (> {TOLERANCE:g}): not written"
            )
    log.info("%s: ONNX graph %s (max difference to PyTorch %.2g)", scorer.name, out_onnx, diff)
    return diff
