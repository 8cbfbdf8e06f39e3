"""Every output of one end-to-end run of the tiny configuration, and what is in it."""

from __future__ import annotations

import hashlib
import json
import re

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from tiny_workflow import NAMES, OUTPUTS, REPLICATES, RUNS, evals, evaluated, figures, model

from cxr14.layouts.nih import LABELS

pytestmark = pytest.mark.slow


def test_every_output_is_built_and_consistent(done):
    for out in OUTPUTS:
        assert (done / out).stat().st_size > 0, out
    labels = pd.read_csv(done / "results/metadata/synthetic/labels.csv")
    splits = pd.read_csv(done / "results/splits/synthetic/holdout/splits.csv")
    with h5py.File(done / "results/hdf5/synthetic/images_32.h5") as h5:
        assert h5["images"].shape == (60, 32, 32)
        assert h5["image_index"].asstr()[:].tolist() == labels["image"].tolist()
        assert json.loads(h5.attrs["labels"]) == list(LABELS)
        assert "bilinear" in h5.attrs["resize"] and h5.attrs["source"] == "synthetic"
        meta = done / "results/synthetic/Data_Entry_2017.csv"
        assert h5.attrs["metadata_sha256"] == hashlib.sha256(meta.read_bytes()).hexdigest()
        assert h5.attrs["views"] == "PA, AP"
    assert splits["image"].tolist() == labels["image"].tolist()
    assert splits.groupby("patient")["split"].nunique().max() == 1
    index = np.load(done / "results/splits/synthetic/holdout/oversample_index.npy")
    assert set(splits.loc[index, "split"]) == {"train"}
    avg = np.load(done / "results/stats/synthetic/holdout/average_image.npy")
    assert avg.shape == (32, 32) and avg.dtype == np.float32
    for log in (
        "parse_metadata/synthetic",
        "merge_shards/synthetic",
        "make_splits/synthetic/holdout",
    ):
        assert (done / "logs" / f"{log}.log").stat().st_size > 0
    assert (done / "logs/compute_average_image/synthetic/holdout.log").stat().st_size > 0


def test_console_shows_one_line_per_epoch_and_evaluation(done):
    console = (done / "console.txt").read_text()
    assert "vgg_like epoch 1/2:" in console and "vgg_like epoch 2/2:" in console
    assert "simple_cnn: best val mean AUROC" in console
    assert "test images: mean AUROC" in console
    assert "localisation of" in console
    assert "it/s]" not in console and "s/it]" not in console  # no per-batch progress bars


def test_jobs_use_the_threads_their_rules_declare(done):
    # --cores 2; train.threads 2 (TINY_CONFIG), eval.threads 1 (EVAL). Plots load no torch.
    logs = done / "logs"
    assert "CPU threads: 2" in (logs / "train_model/vgg_like/holdout/seed0.log").read_text()
    tested = "vgg_like/holdout/seed0/synthetic.log"
    assert "CPU threads: 1" in (logs / "validate_model/vgg_like/holdout/seed0.log").read_text()
    assert "CPU threads: 1" in (logs / f"evaluate_model/{tested}").read_text()
    assert "CPU threads: 1" in (logs / f"localize_findings/{tested}").read_text()
    assert "CPU threads" not in (logs / f"plot_roc/{tested}").read_text()


def test_the_console_names_each_jobs_lines_and_ends_with_where_to_look(done):
    console = (done / "console.txt").read_text()
    assert "[evaluate_model simple_cnn/holdout/seed0/synthetic] simple_cnn on " in console
    assert "[aggregate_run vgg_like/synthetic] mean AUROC over 1 replicate(s)" in console
    # After the last job (Snakemake's own lines are on stderr, as these are).
    done_at = console.rindex("steps (100%) done")
    assert console.index("results/report/summary.md", done_at) < console.index("make report")


def test_trained_models(done):
    for run, split, seed in REPLICATES:
        arch = next(r["arch"] for r in RUNS if r["name"] == run)
        hist = pd.read_csv(done / f"{model(run, split, seed)}/history.csv")
        assert len(hist) == (1 if arch == "densenet121" else 2), run
        log = (done / f"logs/train_model/{run}/{split}/seed{seed}.log").read_text()
        assert "best val mean AUROC" in log and "epoch 1" in log
    log = (done / "logs/train_model/resnet18/holdout/seed0.log").read_text()
    assert "random initialisation" in log
    # Said before the first epoch (and on the console): what this run really trains.
    caveat = "resnet18: frozen random backbone (no pretrained weights): a linear probe on random"
    assert log.index(caveat) < log.index("epoch 1")
    # Seeds give different models; the runs' settings reach their checkpoints.
    a = torch.load(done / f"{model('simple_cnn', seed=0)}/best.pt", weights_only=True)
    b = torch.load(done / f"{model('simple_cnn', seed=1)}/best.pt", weights_only=True)
    bce = torch.load(done / f"{model('simple_cnn_bce')}/best.pt", weights_only=True)
    assert (a["config"]["seed"], b["config"]["seed"]) == (0, 1)
    assert (a["config"]["loss"], bce["config"]["loss"]) == ("wcel", "bce")
    assert bce["config"]["run"] == "simple_cnn_bce"
    assert not torch.equal(a["model"]["classifier.weight"], b["model"]["classifier.weight"])


def test_figures_data_is_what_the_checkpoint_holds(done):
    """model.json and filters.npz say what the checkpoint does; cams.npz holds the CAMs of
    up to eval.cam_images distinct test images, each scaled to a peak of 1."""
    ckpt = torch.load(done / f"{model('resnet18')}/best.pt", weights_only=True)
    facts = json.loads((done / f"{evals('resnet18')}/model.json").read_text())
    assert facts["labels"] == list(ckpt["labels"]) and facts["name"] == "resnet18"
    assert facts["weights_used"] == ckpt["weights_used"] and facts["freeze"] == "backbone"
    assert "linear probe on random features" in facts["caveat"]
    assert 0 < facts["trainable_parameters"] < facts["parameters"]
    with np.load(done / f"{evals('resnet18')}/filters.npz") as z:
        first = ckpt["model"][f"{z['names'][0]}.weight"]
        assert tuple(z["shape_0"]) == tuple(first.shape)
        assert np.array_equal(z["kernels_0"], first.float().mean(dim=1)[:64].numpy())
    with np.load(done / f"{evaluated('vgg_like')}/cams.npz") as z:
        assert 0 < len(z["image"]) == len(set(z["image"])) == len(z["cam"]) <= int(z["asked"])
        assert z["pixels"].dtype == np.uint8 and z["pixels"].shape == z["cam"].shape
        assert np.allclose(z["cam"].max(axis=(1, 2)), 1.0, atol=0.05)


def test_evaluation_artifacts(done):
    from PIL import Image

    for path in [path for run in NAMES for path in figures(run)]:
        with Image.open(done / path) as im:
            assert im.size[0] > 300 and im.size[1] > 200, path
            assert np.asarray(im.convert("L")).std() > 5, f"{path} is blank"
    splits = pd.read_csv(done / "results/splits/synthetic/holdout/splits.csv")
    for replicate in REPLICATES:
        metrics = pd.read_csv(done / f"{evaluated(*replicate)}/metrics.csv")
        assert list(metrics["label"]) == [*LABELS, "mean"]
        pred = pd.read_csv(done / f"{evaluated(*replicate)}/predictions.csv")
        assert set(pred["image"]) == set(splits.loc[splits["split"] == "test", "image"])
        assert {"brier", "ece_ci_high", "recal_slope", "ece_scaled"} <= set(metrics.columns)
        assert {"cal_slope", "cal_intercept_ci_low", "cal_intercept_scaled"} <= set(metrics)
        loc = pd.read_csv(done / f"{evaluated(*replicate)}/localization.csv")
        assert loc.iloc[-1]["label"] == "all" and loc.iloc[-1]["n_boxes"] > 0
        assert {"acc_iobb_0.5", "acc_iou_0.3_ci_low", "n_boxes_in_file"} <= set(loc.columns)
        expert = pd.read_csv(done / f"{evaluated(*replicate)}/expert_labels.csv")
        assert expert["finding"].tolist() == [
            "Pneumothorax",
            "Airspace opacity",
            "Nodule or mass",
            "Fracture",
            "Airspace opacity [with Atelectasis]",  # eval.expert_mapping_alternatives
            "Airspace opacity [without Infiltration]",
            "Airspace opacity [Consolidation and Pneumonia]",
            "mean",
        ]
        # Every image of the expert file in this test split is scored, none other.
        listed = pd.read_csv(done / "results/synthetic/google2019_labels.csv")["Image Index"]
        assert expert.iloc[-1]["n_images"] == len(set(listed) & set(pred["image"]))
        groups = pd.read_csv(done / f"{evaluated(*replicate)}/subgroups.csv").set_index("variable")
        whole = groups.loc["all", [f"auroc_{c}" for c in LABELS]].to_numpy(float)
        np.testing.assert_allclose(whole, metrics["auroc"].iloc[:-1], rtol=1e-5)
        for variable in ("sex", "age", "view"):  # each variable's levels cover the split
            assert groups.loc[[variable], "n_images"].sum() == len(pred)
    md = (done / "results/report/summary.md").read_text()
    assert "sha256 `" in md and "views kept: PA, AP" in md
    for section in ("Published references", "Calibration", "Localisation", "Expert labels"):
        assert f"## {section}" in md, section
    assert "synthetic demo data (not NIH)" in md and "never NIH results" in md
    summary = pd.read_csv(done / "results/report/summary.csv").set_index("model")
    assert summary.loc["CheXNet (Rajpurkar et al. 2017)", "mean_auroc"] == pytest.approx(
        0.841, abs=5e-4
    )
    assert summary.loc["vgg_like", "dataset"] == "synthetic demo data (not NIH), PA and AP views"
    assert summary.loc["CheXNet (Rajpurkar et al. 2017)", "comparable"].startswith("not comp")
    assert {"mean_ece", "loc_acc_iobb_0.5", "expert_mean_auroc"} <= set(summary.columns)
    assert summary.loc["resnet18", "weights"].startswith("none")
    assert "linear probe on random features" in summary.loc["resnet18", "note"]
    assert "linear probe" in md


def test_replicates_are_aggregated_per_run(done):
    per_replicate = pd.read_csv(done / "results/report/replicates.csv")
    rows = per_replicate[["model", "split", "seed"]].itertuples(index=False, name=None)
    assert list(rows) == REPLICATES
    summary = pd.read_csv(done / "results/report/summary.csv").set_index("model")
    two = per_replicate[per_replicate["model"] == "simple_cnn"]
    row = summary.loc["simple_cnn"]
    assert row["replicates"] == 2 and row["arch"] == "simple_cnn"
    assert row["mean_auroc"] == pytest.approx(two["mean_auroc"].mean(), abs=1e-4)
    assert row["auroc_sd"] == pytest.approx(two["mean_auroc"].std(), abs=1e-4)
    assert row["auroc_min"] <= row["mean_auroc"] <= row["auroc_max"]
    assert np.isnan(row["auroc_ci_low"])  # a CI over test patients, not over seeds
    assert summary.loc["vgg_like", "replicates"] == 1
    assert summary.loc["vgg_like", "auroc_ci_low"] <= summary.loc["vgg_like", "mean_auroc"]
    table = pd.read_csv(done / "results/eval/simple_cnn/synthetic/replicates.csv").set_index(
        "label"
    )
    assert list(table.columns) == [
        "holdout/seed0",
        "holdout/seed1",
        "mean",
        "sd",
        "min",
        "max",
        "n",
        "ci_low",
        "ci_high",
    ]
    # The seed-and-patient interval of the mean, in the table and the summary.
    assert table.loc["mean", "ci_low"] <= table.loc["mean", "mean"] <= table.loc["mean", "ci_high"]
    assert row["auroc_run_ci_low"] == pytest.approx(table.loc["mean", "ci_low"], abs=1e-4)
    for seed in (0, 1):
        metrics = pd.read_csv(done / f"{evaluated('simple_cnn', seed=seed)}/metrics.csv")
        np.testing.assert_allclose(
            table[f"holdout/seed{seed}"], metrics.set_index("label")["auroc"], atol=1e-4
        )
    md = (done / "results/report/summary.md").read_text()
    assert "simple_cnn (simple_cnn)" in md and "n=2" in md and "## Replicates" in md
    assert "over seeds and patients" in md


def test_comparison_table_and_figure(done):
    from PIL import Image

    table = pd.read_csv(done / "results/report/comparisons.csv")
    assert list(table["label"]) == [*LABELS, "mean"]
    assert set(table["run_a"]) == {"simple_cnn"} and set(table["run_b"]) == {"simple_cnn_bce"}
    assert (table["replicates_a"] == 2).all() and (table["replicates_b"] == 2).all()
    mean = table.set_index("label").loc["mean"]
    a = pd.read_csv(done / "results/eval/simple_cnn/synthetic/replicates.csv").set_index("label")
    b = pd.read_csv(done / "results/eval/simple_cnn_bce/synthetic/replicates.csv").set_index(
        "label"
    )
    assert mean["auroc_a"] == pytest.approx(a.loc["mean", "mean"], abs=1e-4)
    assert mean["difference"] == pytest.approx(
        b.loc["mean", "mean"] - a.loc["mean", "mean"], abs=2e-4
    )
    # The tiny test split may hold a single patient: then there is no bootstrap interval.
    if mean["n_patients"] > 1:
        assert mean["ci_low"] <= mean["difference"] <= mean["ci_high"]
        assert 0 <= mean["p_bootstrap"] <= 1
    else:
        assert np.isnan(mean["ci_low"]) and np.isnan(mean["p_bootstrap"])
    with Image.open(done / "results/report/comparisons.png") as im:
        assert np.asarray(im.convert("L")).std() > 5


def test_the_label_efficiency_study(done):
    """simple_cnn and simple_cnn_half differ only in train.label_fraction: the half run learns
    from whole patients holding half the training images (its log), and the report's table
    gives both with their seed-and-patient CIs (the figure is checked in the HTML report)."""
    splits = pd.read_csv(done / "results/splits/synthetic/holdout/splits.csv")
    n_train = int((splits["split"] == "train").sum())
    log = (done / "logs/train_model/simple_cnn_half/holdout/seed0.log").read_text()
    used = int(re.search(r"(\d+) training images", log).group(1))
    assert 0.45 * n_train <= used < 0.7 * n_train, (used, n_train)
    half = torch.load(done / f"{model('simple_cnn_half')}/best.pt", weights_only=True)
    assert half["config"]["label_fraction"] == 0.5 and half["config"]["label_seed"] == 1
    card = (done / "results/models/simple_cnn_half/model_card.md").read_text()
    assert "trained on 50% of the training split's labels" in card
    assert (
        "of the training split's labels"
        not in (done / "results/models/simple_cnn/model_card.md").read_text()
    )
    table = pd.read_csv(done / "results/report/label_efficiency.csv")
    assert table["run"].tolist() == ["simple_cnn_half", "simple_cnn"]
    assert table["group"].unique().tolist() == ["simple_cnn"]
    assert table["fraction"].tolist() == [0.5, 1.0] and (table["replicates"] == 2).all()
    full = pd.read_csv(done / "results/eval/simple_cnn/synthetic/replicates.csv", index_col=0)
    assert table["mean_auroc"].iloc[1] == pytest.approx(full.loc["mean", "mean"], abs=1e-4)
    assert (table["ci_low"] <= table["mean_auroc"]).all()
    assert (table["mean_auroc"] <= table["ci_high"]).all()
