"""Model bundles: built from a model, read back safely, anything else refused by name; the
inputs `cxr14 predict` collects and decodes (the workflow tests check it end to end)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cxr14.bundle import (
    FORMAT,
    VERSION,
    BundleError,
    build_bundle,
    bundle_scorer,
    load_bundle,
    model_card,
)
from cxr14.calibration import (
    apply_recalibration,
    apply_temperatures,
    calibrate,
    fit_calibration,
    fit_recalibration,
)
from cxr14.checkpoint import atomic_save
from cxr14.data import Normalizer
from cxr14.imageio import BadImage, load_gray
from cxr14.inference import Scorer
from cxr14.layouts.nih import LABELS
from cxr14.metrics import sensitivity_thresholds
from cxr14.models import build_model
from cxr14.predict import find_inputs, predict

PROVENANCE = {
    "run": "tiny",
    "split": "holdout",
    "seed": 0,
    "split_method": "patient_random",
    "dataset": "synthetic demo data (not NIH)",
    "caveat": "results on the synthetic demo set are never NIH results",
}


def _scorer(seed=0) -> Scorer:
    torch.manual_seed(seed)
    model = build_model("simple_cnn", len(LABELS), channels=[4, 8]).eval()
    average = np.random.default_rng(seed).uniform(0, 255, (48, 48)).astype(np.float32)
    config = {"arch": "simple_cnn", "run": "tiny", "channels": [4, 8], "input_size": 32}
    ckpt = {"config": config, "labels": list(LABELS), "weights_used": "none", "best_epoch": 3}
    return Scorer(model, Normalizer(average, 40.0, 32), torch.device("cpu"), ckpt)


def _bundle(tmp_path):
    scorer = _scorer()
    rng = np.random.default_rng(1)
    y_val = (rng.random((60, len(LABELS))) < 0.3).astype(int)
    p_val = np.clip(0.3 * y_val + 0.7 * rng.random(y_val.shape), 0, 1)
    test = {
        c: {"auroc": 0.7, "auroc_ci_low": 0.6, "auroc_ci_high": 0.8, "n_pos": 5, "n_neg": 50}
        | {"ece": 0.2, "ece_scaled": 0.05}
        for c in [*LABELS, "mean"]
    }
    preprocess = {"store_size": 48, "resample": "bilinear"}
    bundle = build_bundle(scorer, y_val, p_val, preprocess, PROVENANCE, test, 0.9)
    path = tmp_path / "bundle.pt"
    atomic_save(bundle, path)
    return scorer, path, y_val, p_val


def test_a_bundle_reads_back_and_scores_exactly_as_its_model(tmp_path):
    scorer, path, _, _ = _bundle(tmp_path)
    bundle = load_bundle(path)
    assert bundle["format"] == FORMAT and bundle["labels"] == list(LABELS)
    again = bundle_scorer(bundle, "cpu")
    images = torch.randint(0, 256, (5, 48, 48), dtype=torch.uint8)
    np.testing.assert_array_equal(scorer.predict(images), again.predict(images))
    assert again.name == "tiny" and again.arch == "simple_cnn"
    assert bundle["cam_layer"] == again.cam_layer_path == ""  # the architecture's own layer
    # A configured layer (eval.cam_layers) travels with the bundle to `cxr14 predict --cam`.
    layered = bundle_scorer({**bundle, "cam_layer": "features.0"}, "cpu")
    assert layered.cam_layer() is layered.model.features[0]
    del bundle["cam_layer"]  # a bundle made before the layer was recorded
    assert bundle_scorer(bundle, "cpu").cam_layer_path == ""


def test_thresholds_reach_the_asked_sensitivity_on_validation():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 3)) < 0.2).astype(int)
    p = rng.random((200, 3))
    y[:, 2] = 0  # no positives: 0.5
    thr = sensitivity_thresholds(y, p, 0.9)
    for k in (0, 1):
        pos = p[y[:, k] == 1, k]
        assert (pos >= thr[k]).mean() >= 0.9
        assert (pos > thr[k]).mean() < 0.9  # the highest such threshold
    assert thr[2] == 0.5


def test_model_card_of_a_demo_model_says_so_first(tmp_path):
    _, path, _, _ = _bundle(tmp_path)
    card = model_card(load_bundle(path))
    assert card.startswith("**Not a real-data model: results on the synthetic demo set")
    assert "| Atelectasis | 0.700 (0.600-0.800) | 5 |" in card
    assert "- Test mean AUROC 0.700 (0.600-0.800): 95% CI from a patient bootstrap" in card
    assert "not for diagnosis" in card
    bundle = load_bundle(path)
    bundle["test"]["Hernia"] |= {"auroc_ci_low": float("nan"), "auroc_ci_high": float("nan")}
    assert "| Hernia | 0.700 (no CI) | 5 |" in model_card(bundle)  # too few positive patients


def test_what_is_not_a_bundle_is_refused_saying_what_it_is(tmp_path):
    _, path, _, _ = _bundle(tmp_path)
    bundle = load_bundle(path)
    checkpoint = tmp_path / "best.pt"
    torch.save({"model": {}, "config": {"arch": "vgg_like"}, "epoch": 3, "labels": []}, checkpoint)
    with pytest.raises(BundleError, match="is a training checkpoint, not a model bundle"):
        load_bundle(checkpoint)
    newer = tmp_path / "newer.pt"
    torch.save({**bundle, "version": 4}, newer)
    with pytest.raises(BundleError, match="format version 4; cxr14 .* reads versions 1, 2, 3"):
        load_bundle(newer)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(BundleError, match="not a cxr14 model bundle"):
        load_bundle(other)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(BundleError, match="not a readable PyTorch file"):
        load_bundle(text)
    with pytest.raises(BundleError, match="no such file"):
        load_bundle(tmp_path / "absent.pt")


def test_inputs_are_collected_recursively_by_suffix(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.PNG", "a/b/y.jpg", "a/b/z.jpeg", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    named = tmp_path / "named.bin"
    named.write_bytes(b"")
    files, missing = find_inputs([tmp_path / "a", named, tmp_path / "absent"])
    rel = [p.relative_to(tmp_path).as_posix() for p in files]
    assert rel == ["a/b/y.jpg", "a/b/z.jpeg", "a/x.PNG", "named.bin"]
    assert missing == [(str(tmp_path / "absent"), "no such file or folder")]


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_decodes_like_pil_and_only_where_allowed(tmp_path, mode):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    im = Image.fromarray(gray).convert(mode)
    path = tmp_path / "x.jpg"
    im.save(path, quality=95)
    with Image.open(path) as ref:
        expected = np.asarray(ref.convert("L").resize((32, 32), Image.Resampling.BILINEAR))
    got = load_gray(path, 32, formats=("PNG", "JPEG"))
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(BadImage, match="not a PNG file"):
        load_gray(path, 32)  # the store's decoding reads PNG only


def test_predict_scores_png_jpeg_and_dicom_and_names_the_rest(tmp_path, caplog):
    from helpers import write_dicom

    from cxr14.predict import predict

    _, path, _, _ = _bundle(tmp_path)
    folder = tmp_path / "in"
    (folder / "pacs").mkdir(parents=True)
    gray = np.random.default_rng(3).integers(0, 256, (96, 96), dtype=np.uint8)
    Image.fromarray(gray).save(folder / "a.png")
    Image.fromarray(gray).convert("RGB").save(folder / "b.jpg", quality=95)
    # The same picture as a 12-bit MONOCHROME1 DICOM: dense stays bright after decoding.
    write_dicom(
        folder / "c.dcm", (255 - gray.astype(float)) * 4095 / 255, photometric="MONOCHROME1"
    )
    # As PACS exports name them: no suffix, found by the DICM preamble.
    write_dicom(folder / "pacs" / "IM0001", gray.astype(float) * 4095 / 255)
    write_dicom(folder / "multi.dcm", np.stack([gray, gray]), frames=2)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes").write_text("not an image and not named like one: left alone")
    table, failures = predict(path, [folder], tmp_path / "out" / "p.csv", "cpu")
    names = ["IM0001", "a.png", "b.jpg", "c.dcm"]
    assert sorted(Path(p).name for p in table["image"]) == names
    probs = table.set_index(table["image"].map(lambda p: Path(p).name)).filter(like="prob_")
    np.testing.assert_allclose(probs.loc["c.dcm"], probs.loc["a.png"], atol=0.02)
    np.testing.assert_allclose(probs.loc["IM0001"], probs.loc["a.png"], atol=0.02)
    reasons = {Path(p).name: r for p, r in failures}
    assert reasons["multi.dcm"].startswith("multi-frame DICOM")
    assert reasons["empty.png"] == "zero-byte file"
    saved = pd.read_csv(tmp_path / "out" / "p_failures.csv")  # named after the output
    assert sorted(Path(p).name for p in saved["image"]) == ["empty.png", "multi.dcm"]
    # The demo bundle was trained on synthetic images: said on the console and in every row.
    assert "trained on synthetic demo data (not NIH)" in caplog.text
    assert set(table["trained_on"]) == {PROVENANCE["dataset"]}


def test_predict_refuses_inputs_without_images_by_name(tmp_path):
    from cxr14.errors import DataError
    from cxr14.predict import predict

    _, path, _, _ = _bundle(tmp_path)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("no image here")
    with pytest.raises(DataError, match=f"no image \\(PNG, JPEG or DICOM\\) in {tmp_path}/empty"):
        predict(path, [tmp_path / "empty"], tmp_path / "p.csv", "cpu")
    assert not (tmp_path / "p.csv").exists()


def _pngs(folder: Path, n: int = 3) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_a_bundle_carries_the_validation_recalibration_and_predict_applies_it(tmp_path):
    _, path, y_val, p_val = _bundle(tmp_path)
    bundle = load_bundle(path)
    assert bundle["version"] == VERSION == 3
    cal = bundle["calibration"]
    slopes, intercepts = fit_recalibration(y_val, p_val, "platt")
    assert cal["method"] == "platt"
    np.testing.assert_array_equal(cal["slopes"], slopes)
    np.testing.assert_array_equal(cal["intercepts"], intercepts)
    table, failures = predict(path, [_pngs(tmp_path / "in")], tmp_path / "p.csv", "cpu")
    assert failures == [] and len(table) == 3
    prob = table[[f"prob_{c}" for c in LABELS]].to_numpy()
    calibrated = table[[f"calibrated_{c}" for c in LABELS]].to_numpy()
    np.testing.assert_allclose(calibrated, apply_recalibration(prob, slopes, intercepts))
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == list(table.columns)
    card = model_card(bundle)
    assert "Platt scaling per class" in card
    assert "`calibrated_<class>` (test mean ECE 0.200 -> 0.050)" in card
    assert f"| {slopes[0]:.3f}, {intercepts[0]:+.3f} | 0.200 -> 0.050 |" in card


def test_an_isotonic_bundle_applies_its_knots(tmp_path):
    _, path, y_val, p_val = _bundle(tmp_path)
    bundle = load_bundle(path)
    cal = fit_calibration(y_val, p_val, "isotonic")
    atomic_save(bundle | {"calibration": cal}, tmp_path / "iso.pt")
    table, _ = predict(tmp_path / "iso.pt", [_pngs(tmp_path / "in")], tmp_path / "p.csv", "cpu")
    prob = table[[f"prob_{c}" for c in LABELS]].to_numpy()
    calibrated = table[[f"calibrated_{c}" for c in LABELS]].to_numpy()
    np.testing.assert_allclose(calibrated, calibrate(prob, cal))
    assert "isotonic, " in model_card(load_bundle(tmp_path / "iso.pt"))


def test_a_format_2_bundle_still_applies_its_temperatures(tmp_path):
    _, path, _, _ = _bundle(tmp_path)
    temps = [2.0] * len(LABELS)
    calibration = {"method": "temperature scaling per class (Guo et al. 2017)"}
    old = load_bundle(path) | {"version": 2, "calibration": calibration | {"temperatures": temps}}
    atomic_save(old, tmp_path / "v2.pt")
    table, _ = predict(tmp_path / "v2.pt", [_pngs(tmp_path / "in")], tmp_path / "p.csv", "cpu")
    prob = table[[f"prob_{c}" for c in LABELS]].to_numpy()
    calibrated = table[[f"calibrated_{c}" for c in LABELS]].to_numpy()
    np.testing.assert_allclose(calibrated, apply_temperatures(prob, temps))


def test_a_format_1_bundle_still_predicts_without_calibrated_columns(tmp_path):
    _, path, _, _ = _bundle(tmp_path)
    old = {k: v for k, v in load_bundle(path).items() if k != "calibration"} | {"version": 1}
    atomic_save(old, tmp_path / "v1.pt")
    bundle = load_bundle(tmp_path / "v1.pt")
    assert bundle["calibration"] is None
    table, _ = predict(tmp_path / "v1.pt", [_pngs(tmp_path / "in")], tmp_path / "p.csv", "cpu")
    assert not any(c.startswith("calibrated_") for c in table.columns)
    assert len(table) == 3 and f"positive_{LABELS[0]}" in table
