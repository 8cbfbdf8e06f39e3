"""Jobs planned on the real NIH metadata (dry runs), and a 3-fold cross-validation run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tiny_workflow import COMPARE, EVAL, RUNS

from cxr14.testing import hangguard
from cxr14.testing.workflow import TINY_CONFIG, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow


def test_nih_source_and_official_split_dry_run(tmp_path, nih_dir):
    """The real 112,120-row metadata plans the same jobs (images are read only when run)."""
    nih = {"source": "nih", "nih_dir": str(nih_dir)}
    write_config(
        tmp_path, {"data": nih, "split": {"method": "official"}, "preprocess": {"shards": 32}}
    )
    jobs = planned_jobs(tmp_path)
    assert jobs["downsample_images"] == 32 and not any(
        j.startswith("generate_synthetic_data") for j in jobs
    )
    assert jobs["parse_metadata"] == 1 and jobs["make_splits"] == 1


def test_kfold_on_the_real_metadata_plans_one_job_per_fold_and_seed(tmp_path, nih_dir):
    nih = {"source": "nih", "nih_dir": str(nih_dir)}
    split = {"method": "patient_kfold", "folds": 5}
    write_config(tmp_path, {"data": nih, "split": split, "train": {"seeds": [0, 1, 2]}})
    jobs = planned_jobs(tmp_path)
    assert jobs["make_splits"] == 5 and jobs["compute_average_image"] == 5
    assert jobs["train_model"] == 4 * 5 * 3 and jobs["evaluate_model"] == 60
    assert jobs["plot_cams"] == 4 and jobs["aggregate_run"] == 4
    assert "results/models/densenet121/fold5/seed2/best.pt" in snakemake(tmp_path, "-n").stdout


@pytest.fixture(scope="module")
def kfold(tmp_path_factory):
    """Two runs cross-validated over 3 patient-wise folds, and their comparison (the figures,
    localisation and bundles, which `done` builds for a holdout split, are only planned)."""
    wd = tmp_path_factory.mktemp("kfold")
    runs = [{**r, "seeds": [0]} for r in RUNS if r["name"] in COMPARE[0]]
    split = {"method": "patient_kfold", "folds": 3, "seed": 1}
    train = {**TINY_CONFIG["train"], "threads": 1}  # as EVAL: jobs run two at a time
    write_config(
        wd, {"runs": runs, "compare": COMPARE, "split": split, "train": train, "eval": EVAL}
    )
    targets = "results/report/comparisons.csv", "results/eval/simple_cnn/synthetic/replicates.csv"
    snakemake(wd, *targets, guard=hangguard.WORKFLOW)
    return wd


def test_kfold_folds_cover_every_patient_once_and_are_compared_per_fold(kfold):
    labels = pd.read_csv(kfold / "results/metadata/synthetic/labels.csv")
    tests = []
    for f in (1, 2, 3):
        splits = pd.read_csv(kfold / f"results/splits/synthetic/fold{f}/splits.csv")
        assert splits["image"].tolist() == labels["image"].tolist()
        assert (splits["split"] == "test").eq(splits["fold"] == f).all()
        assert splits.groupby("patient")["split"].nunique().max() == 1
        assert set(splits["split"]) == {"train", "val", "test"}
        pred = pd.read_csv(
            kfold / f"results/eval/simple_cnn/fold{f}/seed0/synthetic/predictions.csv"
        )
        assert set(pred["image"]) == set(splits.loc[splits["split"] == "test", "image"])
        tests.append(pred)
        stats = json.loads(
            (kfold / f"results/stats/synthetic/fold{f}/pixel_stats.json").read_text()
        )
        assert stats["n_images"] == (splits["split"] == "train").sum()
    pooled = pd.concat(tests)
    assert sorted(pooled["image"]) == sorted(labels["image"])  # every image tested once
    table = pd.read_csv(kfold / "results/eval/simple_cnn/synthetic/replicates.csv").set_index(
        "label"
    )
    assert list(table.columns[:3]) == ["fold1/seed0", "fold2/seed0", "fold3/seed0"]
    comparisons = pd.read_csv(kfold / "results/report/comparisons.csv")
    assert (comparisons["n_images"] == len(labels)).all()
    # The rest of the workflow plans one job per run and fold, figures for first replicates.
    planned = planned_jobs(kfold)
    assert planned["localize_findings"] == 6 and planned["plot_roc"] == 2, planned
    assert planned["export_model"] == 2 and "train_model" not in planned, planned
    assert (comparisons["n_patients"] == labels["patient"].nunique()).all()
    mean = comparisons.set_index("label").loc["mean"]
    assert mean["ci_low"] <= mean["difference"] <= mean["ci_high"]
    # Each fold scored by its own model: a run's AUROC is the mean of its folds' own AUROCs.
    for side in ("a", "b"):
        run = comparisons[f"run_{side}"].iloc[0]
        metrics = [
            kfold / f"results/eval/{run}/fold{f}/seed0/synthetic/metrics.csv" for f in (1, 2, 3)
        ]
        folds = [pd.read_csv(m).set_index("label").loc["mean", "auroc"] for m in metrics]
        assert mean[f"auroc_{side}"] == pytest.approx(np.mean(folds), abs=1e-5)
    assert 0 <= mean["p_bootstrap"] <= 1 and np.isnan(mean["p_delong"])
