"""`cxr14 evaluate` on a manifest of the real NIH images: scored as `cxr14 predict` scores them
(both backends, the same probabilities), every prediction beside its own image's labels when
unreadable and missing files sit among them, and a provenance record."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from helpers import small_bundle

from cxr14.external import evaluate_external
from cxr14.onnx_export import TOLERANCE
from cxr14.predict import predict
from cxr14.provenance import sha256_file

CLASSES = ("Atelectasis", "Effusion", "Infiltration", "Nodule")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, nih_dir):
    """The real NIH PNGs in images/ with their real labels, a file that is not an image and
    one that is gone in the middle of the rows (the manifest is sorted by image name)."""
    folder = tmp_path_factory.mktemp("mine")
    (folder / "images").mkdir()
    entries = pd.read_csv(nih_dir / "Data_Entry_2017.csv").set_index("Image Index")
    rows = []
    for p in sorted((nih_dir / "images").glob("*.png")):
        shutil.copy(p, folder / "images" / p.name)
        findings = entries.loc[p.name, "Finding Labels"].split("|")
        patient = str(entries.loc[p.name, "Patient ID"])
        rows.append({"path": f"images/{p.name}", "patient": patient, "found": findings})
    (folder / "images/00000003_000b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    rows.append({"path": "images/00000003_000b.png", "patient": "3", "found": ["Effusion"]})
    rows.append({"path": "images/00000004_000b.png", "patient": "4", "found": []})
    table = pd.DataFrame(rows)
    for c in CLASSES:  # the real labels, a column per class
        table[c] = table["found"].map(lambda found, c=c: int(c in found))
    table.drop(columns="found").to_csv(folder / "labels.csv", index=False)
    return folder / "labels.csv"


def test_evaluate_scores_as_predict_with_each_backend_and_keeps_labels_beside_images(
    tmp_path, manifest
):
    bundle = small_bundle(tmp_path / "bundle.pt", "vgg_like")
    labels = pd.read_csv(manifest)
    out = {}
    for backend in ("torch", "onnx"):
        out[backend] = tmp_path / backend
        evaluate_external(
            bundle, manifest, out[backend], 20, 0, "cpu", backend=backend, threads=2, batch_size=8
        )
    pred = {b: pd.read_csv(o / "predictions.csv") for b, o in out.items()}
    assert len(pred["torch"]) == len(labels) - 2 == 24
    assert pred["torch"]["image"].tolist() == pred["onnx"]["image"].tolist()
    probs = [f"prob_{c}" for c in CLASSES]
    gap = pred["torch"][probs].to_numpy() - pred["onnx"][probs].to_numpy()
    assert np.abs(gap).max() < TOLERANCE
    # Each row's labels are its own image's, though a failure sits among the rows.
    truth = labels.assign(image=labels["path"].str.replace("/", "__")).set_index("image")
    for c in CLASSES:
        got = pred["onnx"].set_index("image")[f"label_{c}"]
        assert (got == truth.loc[got.index, c]).all(), c
    # The probabilities are those `cxr14 predict` gives the same files.
    direct, _ = predict(bundle, [manifest.parent / "images"], tmp_path / "p.csv", "cpu", 8)
    direct["image"] = "images__" + direct["image"].map(lambda p: p.rsplit("/", 1)[-1])
    direct = direct.set_index("image").loc[pred["onnx"]["image"], probs].to_numpy()
    assert np.abs(direct - pred["onnx"][probs].to_numpy()).max() < TOLERANCE
    failures = pd.read_csv(out["onnx"] / "failures.csv").set_index("path")["reason"]
    assert set(failures.index) == {"images/00000003_000b.png", "images/00000004_000b.png"}
    metrics = {b: pd.read_csv(o / "metrics.csv").set_index("label") for b, o in out.items()}
    pd.testing.assert_series_equal(metrics["torch"]["auroc"], metrics["onnx"]["auroc"], atol=1e-3)
    records = {b: json.loads((o / "provenance.json").read_text()) for b, o in out.items()}
    assert records["onnx"]["bundle_sha256"] == sha256_file(bundle)
    assert records["onnx"]["images"] == str(manifest)
    assert "onnxruntime" in records["onnx"]["prediction"]["backend"]
    assert "onnxruntime" not in records["torch"]["prediction"]["backend"]
