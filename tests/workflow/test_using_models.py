"""Model bundles, `cxr14 predict` and the predict_images rule on the built workflow."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_workflow import NAMES, evals, evaluated, model, tiny_runs

from cxr14.layouts.nih import LABELS
from cxr14.testing import hangguard
from cxr14.testing.workflow import planned_jobs, snakemake

pytestmark = pytest.mark.slow


def _predict(*args):
    cmd = [str(Path(sys.executable).with_name("cxr14")), "predict", "--device", "cpu", *args]
    return hangguard.run(cmd, guard=hangguard.COMMAND)


def test_bundle_and_model_card(done):
    bundle = torch.load(done / "results/models/vgg_like/bundle.pt", weights_only=True)
    assert (bundle["format"], bundle["version"], bundle["arch"]) == (
        "cxr14-model-bundle",
        3,
        "vgg_like",
    )
    assert bundle["labels"] == list(LABELS)
    assert bundle["preprocess"]["store_size"] == 32 and bundle["preprocess"]["input_size"] == 32
    metrics = pd.read_csv(done / f"{evaluated('vgg_like')}/metrics.csv").set_index("label")
    # The bundle's thresholds are the evaluation's validation-chosen ones.
    np.testing.assert_allclose(
        bundle["thresholds"]["youden"], metrics.loc[list(LABELS), "threshold_at_val"], atol=1e-5
    )
    assert bundle["test"]["mean"]["auroc"] == pytest.approx(metrics.loc["mean", "auroc"], abs=1e-6)
    # ... and its recalibration the one the evaluation fitted, from the validation predictions
    # the evaluation wrote (the validation split is scored once).
    for key, column in (("slopes", "recal_slope"), ("intercepts", "recal_intercept")):
        np.testing.assert_allclose(
            bundle["calibration"][key], metrics.loc[list(LABELS), column], rtol=1e-4, atol=1e-5
        )
    val = pd.read_csv(done / f"{evals('vgg_like')}/val_predictions.csv")
    splits = pd.read_csv(done / "results/splits/synthetic/holdout/splits.csv")
    assert len(val) == (splits["split"] == "val").sum()
    card = (done / "results/models/vgg_like/model_card.md").read_text().splitlines()
    assert (
        card[0]
        == "**Not a real-data model: results on the synthetic demo set are never NIH results.**"
    )
    assert any("not for diagnosis" in line for line in card)


def test_predict_gives_the_pipelines_probabilities_from_the_original_pngs(done, tmp_path):
    """`cxr14 predict` on the original 128x128 PNGs of the test split reproduces the
    evaluation's predictions.csv: same decoding, resize, normalisation and model."""
    for run in ("vgg_like", "densenet121"):
        pred = pd.read_csv(done / f"{evaluated(run)}/predictions.csv")
        images = [str(done / "results/synthetic/images" / n) for n in pred["image"]]
        out = tmp_path / run / "predictions.csv"
        proc = _predict(
            "--model", str(done / f"results/models/{run}/bundle.pt"), "--out", str(out), *images
        )
        assert proc.returncode == 0, proc.stderr
        mine = pd.read_csv(out)
        assert [Path(p).name for p in mine["image"]] == pred["image"].tolist()
        probs = [c for c in pred.columns if c.startswith("prob_")]
        np.testing.assert_allclose(mine[probs], pred[probs], atol=1e-5)
        assert pd.read_csv(out.parent / "predictions_failures.csv").empty


def test_external_validation_on_a_manifest_gives_the_workflows_aurocs(done, tmp_path):
    """`cxr14 evaluate` with a run's bundle on a manifest of that run's test images (the
    original PNGs, labels as columns) gives the workflow's own per-class AUROCs; a manifest
    sharing no class with the model is refused (exit 2)."""
    pred = pd.read_csv(done / f"{evaluated('vgg_like')}/predictions.csv")
    folder = tmp_path / "mine"  # the user's folder; its images/ are the demo's PNGs
    folder.mkdir()
    (folder / "images").symlink_to(done / "results/synthetic/images")
    manifest = pd.DataFrame({"path": "images/" + pred["image"], "patient": pred["patient"]})
    for c in LABELS:
        manifest[c] = pred[f"label_{c}"].astype(int)
    manifest.to_csv(folder / "external_manifest.csv", index=False)
    exe = str(Path(sys.executable).with_name("cxr14"))
    bundle = str(done / "results/models/vgg_like/bundle.pt")
    out = tmp_path / "ext"
    cmd = [exe, "evaluate", "--model", bundle, "--manifest", str(folder / "external_manifest.csv")]
    proc = hangguard.run(
        [*cmd, "--out", str(out), "--device", "cpu", "--bootstrap", "20", "--backend", "torch"],
        guard=hangguard.COMMAND,
    )
    assert proc.returncode == 0, proc.stderr
    mine = pd.read_csv(out / "metrics.csv").set_index("label")["auroc"]
    theirs = pd.read_csv(done / f"{evaluated('vgg_like')}/metrics.csv").set_index("label")["auroc"]
    np.testing.assert_allclose(mine.loc[list(LABELS)], theirs.loc[list(LABELS)], atol=1e-4)
    report = (out / "report.md").read_text()
    assert "External validation of vgg_like" in report and "not a real-data model" in report
    other = manifest[["path", "patient"]].assign(Finding=1)
    other.to_csv(folder / "external_other.csv", index=False)
    cmd[-1] = str(folder / "external_other.csv")
    proc = hangguard.run([*cmd, "--out", str(tmp_path / "x")], guard=hangguard.COMMAND, check=False)
    assert proc.returncode == 2 and "no column is a class of the model" in proc.stderr


def test_predict_names_bad_inputs_and_scores_the_rest(done, tmp_path):
    folder = tmp_path / "in" / "nested"
    folder.mkdir(parents=True)
    good = sorted((done / "results/synthetic/images").glob("*.png"))[:3]
    for p in good:
        shutil.copy(p, folder / p.name)
    (folder / "notes.png").write_text("not an image")
    (folder / "cut.png").write_bytes(good[0].read_bytes()[:200])
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "out" / "predictions.csv"
    bundle = str(done / "results/models/simple_cnn/bundle.pt")
    proc = _predict(
        "--model", bundle, "--out", str(out), str(tmp_path / "in"), str(tmp_path / "gone.png")
    )
    assert proc.returncode == 1
    scored = pd.read_csv(out)
    assert sorted(Path(p).name for p in scored["image"]) == sorted(p.name for p in good)
    assert set(scored[[f"positive_{c}" for c in LABELS]].stack()) <= {0, 1}
    failures = pd.read_csv(out.parent / "predictions_failures.csv").set_index("image")
    assert failures.loc[str(folder / "notes.png"), "reason"].startswith("not a PNG or JPEG file")
    assert failures.loc[str(folder / "cut.png"), "reason"].startswith("truncated or corrupt PNG")
    assert failures.loc[str(tmp_path / "gone.png"), "reason"] == "no such file or folder"
    assert len(failures) == 3 and "notes.png" in proc.stderr
    # The demo's model says, on the console and in every row, that it saw synthetic images only.
    assert "WARNING the model was trained on synthetic demo data (not NIH)" in proc.stderr
    assert scored["trained_on"].str.startswith("synthetic demo data (not NIH)").all()
    # A training checkpoint is not a bundle: refused, saying what it is.
    ckpt = str(done / f"{model('simple_cnn')}/best.pt")
    proc = _predict("--model", ckpt, "--out", str(tmp_path / "x.csv"), str(folder))
    assert proc.returncode == 2 and "is a training checkpoint, not a model bundle" in proc.stderr
    assert not (tmp_path / "x.csv").exists()
    # No image at all: an error naming the folder, not an empty table.
    (tmp_path / "none").mkdir()
    proc = _predict("--model", bundle, "--out", str(tmp_path / "y.csv"), str(tmp_path / "none"))
    assert (
        proc.returncode == 2
        and f"no image (PNG, JPEG or DICOM) in {tmp_path / 'none'}" in proc.stderr
    )


def test_predict_reads_the_pipelines_grad_cam_layer(done):
    """The bundle carries eval.cam_layers' layer (the demo's densenet121: its second dense
    block), so `cxr14 predict --cam` draws the maps of the pipeline's cam.png."""
    from cxr14.bundle import bundle_scorer, load_bundle

    layer = "features.denseblock2"  # config/config.yaml's eval.cam_layers
    bundle = load_bundle(done / "results/models/densenet121/bundle.pt")
    assert bundle["cam_layer"] == layer
    scorer = bundle_scorer(bundle, "cpu")
    assert scorer.cam_layer() is scorer.model.get_submodule(layer)
    cams = np.load(done / f"{evaluated('densenet121')}/cams.npz")
    assert str(cams["layer"]) == layer  # the figure's own
    assert load_bundle(done / "results/models/vgg_like/bundle.pt")["cam_layer"] == ""


def test_predict_cam_overlays(done, tmp_path):
    image = sorted((done / "results/synthetic/images").glob("*.png"))[0]
    out = tmp_path / "p.csv"
    bundle = str(done / "results/models/vgg_like/bundle.pt")
    proc = _predict(
        "--model", bundle, "--out", str(out), "--cam", str(tmp_path / "cam"), str(image)
    )
    assert proc.returncode == 0, proc.stderr
    overlay = Path(pd.read_csv(out)["cam"][0])
    assert overlay == tmp_path / "cam" / f"{image.stem}.png"
    from PIL import Image

    with Image.open(overlay) as im:
        assert im.size[0] > 600 and np.asarray(im.convert("L")).std() > 5


def test_predict_rule_scores_a_configured_folder(done, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for p in sorted((done / "results/synthetic/images").glob("*.png"))[:2]:
        shutil.copy(p, folder / p.name)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    try:
        tiny_runs(done, {"predict": {"input_dir": str(folder), "cam": True}})
        assert planned_jobs(done) == {"predict_images": len(NAMES), "all": 1}
        snakemake(done, guard=hangguard.PARTIAL_RUN)
        for run in NAMES:
            table = pd.read_csv(done / f"results/predict/{run}/predictions.csv")
            assert len(table) == 2 and table["cam"].map(lambda p: (done / p).is_file()).all()
            failures = pd.read_csv(done / f"results/predict/{run}/predictions_failures.csv")
            assert failures["image"].tolist() == [str(folder / "broken.png")]
            # As `cxr14 predict` scores: onnxruntime on the CPU, the graph cached by the bundle.
            log = (done / f"logs/predict_images/{run}.log").read_text()
            assert "with onnxruntime (graph " in log, log
            assert len(list((done / f"results/models/{run}").glob("bundle.*.onnx"))) == 1
    finally:
        tiny_runs(done)
    assert planned_jobs(done) == {}


def test_a_bundle_records_what_it_was_trained_from_enough_to_rebuild_it(done, tmp_path):
    """The bundle's provenance record names the project's commit, the data set's metadata
    files and store by their hashes, and the resolved configuration: given back to the
    workflow as its only configuration file, it plans no job (the same plan, nothing stale)."""
    import hashlib
    import subprocess

    import h5py
    import yaml

    from cxr14.bundle import load_bundle
    from cxr14.testing.workflow import REPO

    bundle = done / "results/models/vgg_like/bundle.pt"
    record = load_bundle(bundle)["provenance"]["record"]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True)
    if head.returncode == 0:
        assert record["git"]["commit"] == head.stdout.decode().strip()
    (data,) = record["data"].values()
    with h5py.File(done / data["store"]) as h5:
        assert data["store_sha256"] == h5.attrs["content_sha256"]
    for path, digest in data["metadata"].items():
        assert hashlib.sha256((done / path).read_bytes()).hexdigest() == digest
    assert record["environment"]["device"].startswith("cpu")
    card = (done / "results/models/vgg_like/model_card.md").read_text()
    assert f"- Configuration: sha256 {record['config_sha256'][:16]};" in card
    exe = str(Path(sys.executable).with_name("cxr14"))
    config = tmp_path / "recorded.yaml"
    cmd = [exe, "provenance", "--model", str(bundle), "--config", str(config)]
    proc = hangguard.run(cmd, guard=hangguard.COMMAND)
    assert proc.returncode == 0 and "results/models/vgg_like/bundle.pt" in proc.stderr
    try:
        (done / "config.yaml").write_text(config.read_text())
        assert yaml.safe_load(config.read_text())["runs"]
        assert planned_jobs(done) == {}
    finally:
        tiny_runs(done)
    assert planned_jobs(done) == {}
