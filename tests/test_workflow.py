"""End-to-end Snakemake runs of the data stages on a tiny synthetic set."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import hangguard
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_CONFIG, planned_jobs, snakemake, snakemake_command, write_config

from cxr14.layouts.nih import LABELS

pytestmark = pytest.mark.slow

ARCHS = ("simple_cnn", "vgg_like", "resnet18", "densenet121")
# Every architecture, and a second simple_cnn run (unweighted loss) compared with the first;
# the two simple_cnn runs have two seeds each.
RUNS = [*TINY_CONFIG["runs"], {"name": "simple_cnn_bce", "arch": "simple_cnn", "loss": "bce"}]
RUNS = [{**r, "seeds": [0, 1]} if r["arch"] == "simple_cnn" else r for r in RUNS]
COMPARE = [["simple_cnn", "simple_cnn_bce"]]
NAMES = [r["name"] for r in RUNS]
REPLICATES = [(r["name"], "holdout", s) for r in RUNS for s in r.get("seeds", [0])]
TABLES = ("predictions.csv", "metrics.csv", "localization.csv", "expert_labels.csv")
TABLES += ("subgroups.csv",)
FIGURES = ("history.png", "roc.png", "calibration.png", "filters.png", "cam.png")
FIGURES += ("subgroups.png",)
EVAL_FILES = TABLES + FIGURES


def model(run: str, split: str = "holdout", seed: int = 0) -> str:
    return f"results/models/{run}/{split}/seed{seed}"


def evals(run: str, split: str = "holdout", seed: int = 0) -> str:
    return f"results/eval/{run}/{split}/seed{seed}"


# One thread per evaluation job: their work is a few milliseconds after their imports, and
# jobs declaring 2 threads would run one at a time on the 2 cores of `snakemake()`.
EVAL = {**TINY_CONFIG["eval"], "threads": 1}


def tiny_runs(wd, overrides=None):
    """The end-to-end test's configuration: TINY_CONFIG with RUNS, COMPARE and EVAL."""
    return write_config(wd, {"runs": RUNS, "compare": COMPARE, "eval": EVAL, **(overrides or {})})


PREPROCESSING = {"generate_synthetic_data", "parse_metadata", "downsample_images", "merge_shards"}
EVALUATION = {
    "evaluate_model",
    "localize_findings",
    "plot_history",
    "plot_roc",
    "plot_calibration",
    "evaluate_expert_labels",
    "evaluate_subgroups",
    "plot_subgroups",
    "plot_filters",
    "plot_cams",
    "aggregate_run",
    "compare_runs",
    "collect_comparisons",
    "export_model",
    "summarize_models",
}
OUTPUTS = [
    "results/hdf5/images_32.h5",
    "results/metadata/labels.csv",
    "results/tables/skipped_images.csv",
    "results/tables/class_counts.csv",
    "results/figures/class_counts.png",
    "results/stats/holdout/average_image.npy",
    "results/stats/holdout/pixel_stats.json",
    "results/figures/holdout/average_image.png",
    "results/splits/holdout/splits.csv",
    "results/tables/holdout/split_counts.csv",
    "results/splits/holdout/oversample_index.npy",
    "results/tables/holdout/oversample_counts.csv",
    "results/figures/holdout/oversample_counts.png",
    *[f"{model(*r)}/{f}" for r in REPLICATES for f in ("best.pt", "last.pt", "history.csv")],
    *[f"{evals(*r)}/{f}" for r in REPLICATES for f in TABLES],
    *[f"{evals(run)}/{f}" for run in NAMES for f in FIGURES],
    *[f"results/eval/{run}/replicates.csv" for run in NAMES],
    *[f"results/models/{run}/{f}" for run in NAMES for f in ("bundle.pt", "model_card.md")],
    "results/compare/simple_cnn/simple_cnn_bce.csv",
    "results/report/comparisons.csv",
    "results/report/comparisons.png",
    "results/report/summary.csv",
    "results/report/replicates.csv",
    "results/report/summary.md",
    "results/report/auroc_comparison.png",
]
DATA_OUTPUTS = [
    o
    for o in OUTPUTS
    if not o.startswith(("results/models/", "results/eval/", "results/compare/", "results/report/"))
]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One complete run of the default target."""
    wd = tmp_path_factory.mktemp("wf")
    tiny_runs(wd)
    proc = snakemake(wd, guard=hangguard.WORKFLOW)
    (wd / "console.txt").write_text(proc.stdout + proc.stderr)
    return wd


def test_every_output_is_built_and_consistent(done):
    for out in OUTPUTS:
        assert (done / out).stat().st_size > 0, out
    labels = pd.read_csv(done / "results/metadata/labels.csv")
    splits = pd.read_csv(done / "results/splits/holdout/splits.csv")
    with h5py.File(done / "results/hdf5/images_32.h5") as h5:
        assert h5["images"].shape == (60, 32, 32)
        assert h5["image_index"].asstr()[:].tolist() == labels["image"].tolist()
        assert json.loads(h5.attrs["labels"]) == list(LABELS)
        assert "bilinear" in h5.attrs["resize"] and h5.attrs["source"] == "synthetic"
        meta = done / "results/synthetic/Data_Entry_2017.csv"
        assert h5.attrs["metadata_sha256"] == hashlib.sha256(meta.read_bytes()).hexdigest()
        assert h5.attrs["views"] == "PA, AP"
    assert splits["image"].tolist() == labels["image"].tolist()
    assert splits.groupby("patient")["split"].nunique().max() == 1
    index = np.load(done / "results/splits/holdout/oversample_index.npy")
    assert set(splits.loc[index, "split"]) == {"train"}
    avg = np.load(done / "results/stats/holdout/average_image.npy")
    assert avg.shape == (32, 32) and avg.dtype == np.float32
    for log in ("parse_metadata", "merge_shards", "make_splits/holdout"):
        assert (done / "logs" / f"{log}.log").stat().st_size > 0
    assert (done / "logs/compute_average_image/holdout.log").stat().st_size > 0


def test_console_shows_one_line_per_epoch_and_evaluation(done):
    console = (done / "console.txt").read_text()
    assert "vgg_like epoch 1/2:" in console and "vgg_like epoch 2/2:" in console
    assert "simple_cnn: best val mean AUROC" in console
    assert "test images: mean AUROC" in console
    assert "localisation of" in console
    assert "it/s]" not in console and "s/it]" not in console  # no per-batch progress bars


def test_jobs_use_the_threads_their_rules_declare(done):
    # --cores 2; train.threads 2 (TINY_CONFIG), eval.threads 1 (EVAL); plots declare 1.
    logs = done / "logs"
    assert "CPU threads: 2" in (logs / "train_model/vgg_like/holdout/seed0.log").read_text()
    assert "CPU threads: 1" in (logs / "evaluate_model/vgg_like/holdout/seed0.log").read_text()
    assert "CPU threads: 1" in (logs / "plot_roc/vgg_like/holdout/seed0.log").read_text()


def test_rerun_is_a_no_op(done):
    assert planned_jobs(done) == {}


def test_downstream_setting_reruns_only_downstream_jobs(done):
    try:
        tiny_runs(done, {"oversample": {"threshold": 0.3}})
        jobs = planned_jobs(done)
        assert {
            k: jobs.pop(k) for k in ("make_oversample_index", "plot_oversampling", "train_model")
        } == {"make_oversample_index": 1, "plot_oversampling": 1, "train_model": 7}
        assert set(jobs) <= EVALUATION | {"all"}  # and what depends on the models
        tiny_runs(done, {"split": {"seed": 2}})
        jobs = planned_jobs(done)
        assert "make_splits" in jobs and "compute_average_image" in jobs
        assert not PREPROCESSING & set(jobs)
    finally:
        tiny_runs(done)
    assert planned_jobs(done) == {}


def _planned_models(workdir, names=NAMES) -> set[str]:
    out = snakemake(workdir, "-n").stdout
    return {r for r in names if f"output: results/models/{r}/" in out}


def test_training_setting_reruns_no_preprocessing(done):
    try:
        tiny_runs(done, {"train": {**TINY_CONFIG["train"], "lr": 5e-4}})
        jobs = planned_jobs(done)
        assert jobs.pop("train_model") == 7 and set(jobs) <= EVALUATION | {"all"}
        # densenet121 overrides `epochs`, so the shared value does not concern it.
        tiny_runs(done, {"train": {**TINY_CONFIG["train"], "epochs": 3}})
        jobs = planned_jobs(done)
        assert jobs.pop("train_model") == 6 and set(jobs) <= EVALUATION | {"all"}
        # One architecture's hyperparameter: only that architecture's training.
        models = {**TINY_CONFIG["models"], "vgg_like": {"widths": [4, 8], "fc": 16, "lr": 3e-4}}
        tiny_runs(done, {"models": models})
        jobs = planned_jobs(done)
        assert jobs.pop("train_model") == 1 and set(jobs) <= EVALUATION | {"all"}
        assert jobs["evaluate_model"] == 1 and jobs["summarize_models"] == 1
        assert _planned_models(done) == {"vgg_like"}
    finally:
        tiny_runs(done)
    assert planned_jobs(done) == {}


def test_changing_one_run_reruns_its_jobs_and_its_comparison_only(done):
    runs = [{**r, "lr": 5e-4} if r["name"] == "simple_cnn_bce" else r for r in RUNS]
    try:
        tiny_runs(done, {"runs": runs})
        assert planned_jobs(done) == {
            "train_model": 2,  # its two seeds
            "evaluate_model": 2,
            "localize_findings": 2,
            "evaluate_expert_labels": 2,
            "evaluate_subgroups": 2,
            "plot_history": 1,  # figures of its first replicate
            "plot_subgroups": 1,
            "plot_roc": 1,
            "plot_calibration": 1,
            "plot_filters": 1,
            "plot_cams": 1,
            "aggregate_run": 1,
            "export_model": 1,
            "compare_runs": 1,
            "collect_comparisons": 1,
            "summarize_models": 1,
            "all": 1,
        }
        assert _planned_models(done) == {"simple_cnn_bce"}
    finally:
        tiny_runs(done)
    assert planned_jobs(done) == {}


def test_adding_a_run_or_a_seed_adds_only_its_jobs(done):
    new = {"name": "vgg-narrow", "arch": "vgg_like", "widths": [4], "fc": 8}
    per_replicate = {"train_model": 1, "evaluate_model": 1, "localize_findings": 1}
    per_replicate |= {"evaluate_expert_labels": 1, "evaluate_subgroups": 1}
    try:
        tiny_runs(done, {"runs": [*RUNS, new]})
        assert planned_jobs(done) == {
            **per_replicate,
            **{f"plot_{f}": 1 for f in ("history", "roc", "calibration", "filters", "cams")},
            "plot_subgroups": 1,
            "aggregate_run": 1,
            "export_model": 1,
            "summarize_models": 1,
            "all": 1,
        }
        assert _planned_models(done, [*NAMES, "vgg-narrow"]) == {"vgg-narrow"}
        runs = [{**r, "seeds": [0, 7]} if r["name"] == "vgg_like" else r for r in RUNS]
        tiny_runs(done, {"runs": runs})
        jobs = planned_jobs(done)
        assert jobs == {**per_replicate, "aggregate_run": 1, "summarize_models": 1, "all": 1}
        assert "results/models/vgg_like/holdout/seed7/" in snakemake(done, "-n").stdout
    finally:
        tiny_runs(done)
    assert planned_jobs(done) == {}


def test_changing_compare_reruns_only_the_comparisons(done):
    try:
        tiny_runs(done, {"compare": [*COMPARE, ["vgg_like", "resnet18"]]})
        assert planned_jobs(done) == {"compare_runs": 1, "collect_comparisons": 1, "all": 1}
        tiny_runs(done, {"compare": [["simple_cnn_bce", "simple_cnn"]]})
        assert planned_jobs(done) == {"compare_runs": 1, "collect_comparisons": 1, "all": 1}
    finally:
        tiny_runs(done)
    assert planned_jobs(done) == {}


def test_trained_models(done):
    for run, split, seed in REPLICATES:
        arch = next(r["arch"] for r in RUNS if r["name"] == run)
        hist = pd.read_csv(done / f"{model(run, split, seed)}/history.csv")
        assert len(hist) == (1 if arch == "densenet121" else 2), run
        log = (done / f"logs/train_model/{run}/{split}/seed{seed}.log").read_text()
        assert "best val mean AUROC" in log and "epoch 1" in log
    log = (done / "logs/train_model/resnet18/holdout/seed0.log").read_text()
    assert "random initialisation" in log
    # Seeds give different models; the runs' settings reach their checkpoints.
    a = torch.load(done / f"{model('simple_cnn', seed=0)}/best.pt", weights_only=True)
    b = torch.load(done / f"{model('simple_cnn', seed=1)}/best.pt", weights_only=True)
    bce = torch.load(done / f"{model('simple_cnn_bce')}/best.pt", weights_only=True)
    assert (a["config"]["seed"], b["config"]["seed"]) == (0, 1)
    assert (a["config"]["loss"], bce["config"]["loss"]) == ("wcel", "bce")
    assert bce["config"]["run"] == "simple_cnn_bce"
    assert not torch.equal(a["model"]["classifier.weight"], b["model"]["classifier.weight"])


def test_deleted_figure_rebuilds_only_its_job(done):
    (done / "results/figures/holdout/average_image.png").unlink()
    assert planned_jobs(done) == {"plot_average_image": 1, "all": 1}
    snakemake(done, guard=hangguard.PARTIAL_RUN)
    assert planned_jobs(done) == {}


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"preprocess": {"on_bad_image": "ignore"}}, "on_bad_image"),
        ({"preprocess": {"size": "big"}}, "size"),
        ({"split": {"method": "random"}}, "method"),
        ({"oversample": {"treshold": 0.1}}, "treshold"),
        ({"data": {"source": "nih"}}, "nih_dir"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, overrides, key):
    write_config(tmp_path, overrides)
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "validat" in out.lower() and key in out
    assert not (tmp_path / "results").exists()


def test_bad_image_stops_the_run_or_is_skipped_everywhere(tmp_path):
    write_config(tmp_path)
    snakemake(tmp_path, "results/synthetic/Data_Entry_2017.csv", guard=hangguard.PARTIAL_RUN)
    images = sorted((tmp_path / "results/synthetic/images").iterdir())
    bad = {images[5].name: "zero-byte file", images[30].name: "truncated or corrupt PNG"}
    images[5].write_bytes(b"")
    images[30].write_bytes(images[30].read_bytes()[:300])

    proc = snakemake(tmp_path, *DATA_OUTPUTS, check=False, guard=hangguard.PARTIAL_RUN)
    assert proc.returncode != 0
    # Shards run in parallel and the run stops at the first failure, so either bad file may be
    # the one reported; the message names it with its reason.
    out = proc.stdout + proc.stderr
    assert any(f"{name}: {reason}" in out for name, reason in bad.items())
    assert not (tmp_path / "results/hdf5/images_32.h5").exists()

    write_config(tmp_path, {"preprocess": {"on_bad_image": "skip"}})
    snakemake(tmp_path, *DATA_OUTPUTS, guard=hangguard.PARTIAL_RUN)
    skipped = pd.read_csv(tmp_path / "results/tables/skipped_images.csv")
    assert set(skipped["image"]) == set(bad)
    for name, reason in bad.items():
        assert skipped.set_index("image").loc[name, "reason"].startswith(reason)
    labels = pd.read_csv(tmp_path / "results/metadata/labels.csv")
    splits = pd.read_csv(tmp_path / "results/splits/holdout/splits.csv")
    assert len(labels) == len(splits) == 58
    assert not set(bad) & set(labels["image"]) and not set(bad) & set(splits["image"])
    with h5py.File(tmp_path / "results/hdf5/images_32.h5") as h5:
        assert h5["images"].shape[0] == 58


def test_interrupted_shard_is_redone_and_the_store_is_identical(tmp_path):
    """Kill the workflow while a shard is being written; the rerun redoes only the shards
    that had not finished, and the final store equals that of an uninterrupted run."""
    cfg = {
        "synthetic": {"n_images": 120, "image_size": 1024, "seed": 3},
        "preprocess": {"shards": 4, "threads": 1},
    }
    ref, wd = tmp_path / "ref", tmp_path / "wd"
    for d in (ref, wd):
        d.mkdir()
        write_config(d, cfg)
    targets = DATA_OUTPUTS  # training is not what this test is about
    snakemake(ref, *targets, guard=hangguard.PARTIAL_RUN)
    # Same input data in both folders, so only the interruption differs.
    snakemake(wd, "results/metadata/entries.csv", guard=hangguard.PARTIAL_RUN)

    shards = wd / "results/hdf5/shards"
    cmd = snakemake_command(wd, "--cores", "1", *targets)
    proc = subprocess.Popen(
        cmd, cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def shard_in_progress() -> bool:  # one shard finished and another one being written
        return bool(list(shards.glob("*.h5")) and list(shards.glob("*.partial")))

    try:
        caught = hangguard.wait_for(
            shard_in_progress, hangguard.PARTIAL_RUN, proc=proc, interval=0.02
        )
        assert caught, "workflow finished before it could be interrupted"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.h5")}
    assert 0 < len(finished) < 4

    jobs = planned_jobs(wd, *targets)
    assert jobs["downsample_images"] == 4 - len(finished)
    snakemake(wd, "--unlock")  # a killed Snakemake leaves its lock behind
    snakemake(wd, *targets, guard=hangguard.PARTIAL_RUN)
    for name, mtime in finished.items():
        assert (shards / name).stat().st_mtime_ns == mtime, f"{name} was redone"
    assert not list(shards.glob("*.partial"))
    with (
        h5py.File(ref / "results/hdf5/images_32.h5") as a,
        h5py.File(wd / "results/hdf5/images_32.h5") as b,
    ):
        np.testing.assert_array_equal(a["images"][:], b["images"][:])
        assert a["image_index"].asstr()[:].tolist() == b["image_index"].asstr()[:].tolist()
    for out in ("results/metadata/labels.csv", "results/splits/holdout/splits.csv"):
        assert (ref / out).read_bytes() == (wd / out).read_bytes()
    np.testing.assert_array_equal(
        np.load(ref / "results/stats/holdout/average_image.npy"),
        np.load(wd / "results/stats/holdout/average_image.npy"),
    )
    shutil.rmtree(ref / "results/synthetic")  # 120 1024x1024 PNGs: free the space early


def test_nih_source_and_official_split_dry_run(tmp_path, nih_dir):
    """The real 112,120-row metadata plans the same jobs (images are read only when run)."""
    nih = {"source": "nih", "nih_dir": str(nih_dir)}
    write_config(
        tmp_path, {"data": nih, "split": {"method": "official"}, "preprocess": {"shards": 32}}
    )
    jobs = planned_jobs(tmp_path)
    assert jobs["downsample_images"] == 32 and "generate_synthetic_data" not in jobs
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
    runs = [r for r in RUNS if r["arch"] == "simple_cnn"]
    runs = [{**r, "seeds": [0]} for r in runs]
    split = {"method": "patient_kfold", "folds": 3, "seed": 1}
    train = {**TINY_CONFIG["train"], "threads": 1}  # as EVAL: jobs run two at a time
    write_config(
        wd, {"runs": runs, "compare": COMPARE, "split": split, "train": train, "eval": EVAL}
    )
    targets = "results/report/comparisons.csv", "results/eval/simple_cnn/replicates.csv"
    snakemake(wd, *targets, guard=hangguard.WORKFLOW)
    return wd


def test_kfold_folds_cover_every_patient_once_and_are_compared_pooled(kfold):
    labels = pd.read_csv(kfold / "results/metadata/labels.csv")
    tests = []
    for f in (1, 2, 3):
        splits = pd.read_csv(kfold / f"results/splits/fold{f}/splits.csv")
        assert splits["image"].tolist() == labels["image"].tolist()
        assert (splits["split"] == "test").eq(splits["fold"] == f).all()
        assert splits.groupby("patient")["split"].nunique().max() == 1
        assert set(splits["split"]) == {"train", "val", "test"}
        pred = pd.read_csv(kfold / f"results/eval/simple_cnn/fold{f}/seed0/predictions.csv")
        assert set(pred["image"]) == set(splits.loc[splits["split"] == "test", "image"])
        tests.append(pred)
        stats = json.loads((kfold / f"results/stats/fold{f}/pixel_stats.json").read_text())
        assert stats["n_images"] == (splits["split"] == "train").sum()
    pooled = pd.concat(tests)
    assert sorted(pooled["image"]) == sorted(labels["image"])  # every image tested once
    table = pd.read_csv(kfold / "results/eval/simple_cnn/replicates.csv").set_index("label")
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
    assert 0 <= mean["p_bootstrap"] <= 1 and np.isnan(mean["p_delong"])


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"runs": [{"name": "a.b", "arch": "simple_cnn"}]}, "runs[0] ('a.b'): a run name"),
        ({"runs": [{"name": "x/y", "arch": "simple_cnn"}]}, "runs[0] ('x/y'): a run name"),
        ({"runs": [{"name": "x", "arch": "alexnet"}]}, "unknown arch 'alexnet'"),
        (
            {"runs": [{"name": "x", "arch": "simple_cnn", "freeze": "none"}]},
            "'freeze' is not a setting of simple_cnn",
        ),
        (
            {"runs": [{"name": "x", "arch": "resnet18"}, {"name": "x", "arch": "vgg_like"}]},
            "runs[1] ('x'): the run name 'x' is used twice",
        ),
        ({"compare": [["vgg_like", "vgg_like"]]}, "compares run 'vgg_like' with itself"),
        ({"compare": [["vgg_like", "nope"]]}, "compare[0] ['vgg_like', 'nope']: unknown run"),
        ({"split": {"method": "official", "folds": 5}}, "split.folds (5) is only for"),
        ({"split": {"method": "patient_kfold", "folds": 1}}, "split.folds must be at least 2"),
        ({"split": {"method": "patient_kfold"}}, "patient_kfold needs split.folds"),
        ({"split": {"method": "patient_kfold", "folds": 999}}, "more than the data set's"),
    ],
)
def test_bad_experiment_plan_fails_before_any_job_naming_the_key(tmp_path, overrides, expected):
    write_config(tmp_path, overrides)
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    assert expected in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_evaluation_artifacts(done):
    from PIL import Image

    for path in [f"{evals(run)}/{f}" for run in NAMES for f in FIGURES]:
        with Image.open(done / path) as im:
            assert im.size[0] > 300 and im.size[1] > 200, path
            assert np.asarray(im.convert("L")).std() > 5, f"{path} is blank"
    splits = pd.read_csv(done / "results/splits/holdout/splits.csv")
    for replicate in REPLICATES:
        metrics = pd.read_csv(done / f"{evals(*replicate)}/metrics.csv")
        assert list(metrics["label"]) == [*LABELS, "mean"]
        pred = pd.read_csv(done / f"{evals(*replicate)}/predictions.csv")
        assert set(pred["image"]) == set(splits.loc[splits["split"] == "test", "image"])
        assert {"brier", "ece_ci_high", "temperature", "ece_scaled"} <= set(metrics.columns)
        loc = pd.read_csv(done / f"{evals(*replicate)}/localization.csv")
        assert loc.iloc[-1]["label"] == "all" and loc.iloc[-1]["n_boxes"] > 0
        assert {"acc_iobb_0.5", "acc_iou_0.3_ci_low", "n_boxes_in_file"} <= set(loc.columns)
        expert = pd.read_csv(done / f"{evals(*replicate)}/expert_labels.csv")
        assert expert["finding"].tolist() == [
            "Pneumothorax",
            "Airspace opacity",
            "Nodule or mass",
            "Fracture",
            "mean",
        ]
        # Every image of the expert file in this test split is scored, none other.
        listed = pd.read_csv(done / "results/synthetic/google2019_labels.csv")["Image Index"]
        assert expert.iloc[-1]["n_images"] == len(set(listed) & set(pred["image"]))
        groups = pd.read_csv(done / f"{evals(*replicate)}/subgroups.csv").set_index("variable")
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
    table = pd.read_csv(done / "results/eval/simple_cnn/replicates.csv").set_index("label")
    assert list(table.columns) == [
        "holdout/seed0",
        "holdout/seed1",
        "mean",
        "sd",
        "min",
        "max",
        "n",
    ]
    for seed in (0, 1):
        metrics = pd.read_csv(done / f"{evals('simple_cnn', seed=seed)}/metrics.csv")
        np.testing.assert_allclose(
            table[f"holdout/seed{seed}"], metrics.set_index("label")["auroc"], atol=1e-4
        )
    md = (done / "results/report/summary.md").read_text()
    assert "simple_cnn (simple_cnn)" in md and "n=2" in md and "## Replicates" in md


def test_comparison_table_and_figure(done):
    from PIL import Image

    table = pd.read_csv(done / "results/report/comparisons.csv")
    assert list(table["label"]) == [*LABELS, "mean"]
    assert set(table["run_a"]) == {"simple_cnn"} and set(table["run_b"]) == {"simple_cnn_bce"}
    assert (table["replicates_a"] == 2).all() and (table["replicates_b"] == 2).all()
    mean = table.set_index("label").loc["mean"]
    a = pd.read_csv(done / "results/eval/simple_cnn/replicates.csv").set_index("label")
    b = pd.read_csv(done / "results/eval/simple_cnn_bce/replicates.csv").set_index("label")
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


def test_evaluation_setting_reruns_only_evaluation(done):
    try:
        tiny_runs(done, {"eval": {**EVAL, "bootstrap": 30}})
        jobs = planned_jobs(done)
        assert jobs["evaluate_model"] == 7 and jobs["compare_runs"] == 1
        assert set(jobs) <= EVALUATION | {"all"}
        tiny_runs(done, {"eval": {**EVAL, "cam_threshold": 0.6}})
        jobs = planned_jobs(done)
        assert jobs == {"localize_findings": 7, "plot_cams": 5, "summarize_models": 1, "all": 1}
    finally:
        tiny_runs(done)
    (done / f"{evals('vgg_like')}/roc.png").unlink()
    assert planned_jobs(done) == {"plot_roc": 1, "all": 1}
    snakemake(done, guard=hangguard.PARTIAL_RUN)
    assert planned_jobs(done) == {}


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]


def chromium_run(chromium: str, profile: Path, *args: str | Path) -> str:
    """Headless Chromium with its own profile folder on ``args`` (a page's path last)."""
    *flags, page = args
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, Path(page).as_uri()]
    return hangguard.run(cmd, guard=hangguard.COMMAND, check=True).stdout


def test_html_report_renders_in_chromium(done, tmp_path):
    """snakemake --report gives one self-contained HTML file; a real headless browser renders
    it (non-blank screenshot, the app's categories in the DOM) and decodes every figure."""
    import base64
    import re

    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    report = done / "report.html"
    snakemake(done, "--report", str(report), guard=hangguard.COMMAND)
    html = report.read_text()
    shot = tmp_path / "shot.png"
    chromium_run(
        chromium, tmp_path / "u1", "--window-size=1280,900", f"--screenshot={shot}", report
    )
    with Image.open(shot) as im:
        assert im.size == (1280, 900) and np.asarray(im.convert("L")).std() > 10
    dom = chromium_run(chromium, tmp_path / "u2", "--dump-dom", report)
    # The landing page names the data set, the split and the date; every item has a caption.
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", dom))
    assert "Data set of this run:" in text and "the synthetic demo set" in text
    assert "split patient_random" in text
    assert re.search(r"report made on 20\d\d-\d\d-\d\d", text)
    for caption in (
        "of its maximum and the box of its largest region",  # localisation table
        "Per-class test AUROC of each model of this run",  # summary figure
        "one row per epoch: learning rate",  # history.csv
        "as a Markdown document",  # summary.md
    ):
        assert caption in html, caption
    for category in (
        "1. Data",
        "2. Splits and sampling",
        "3. Training",
        "4. Evaluation",
        "5. Summary",
    ):
        assert category in dom, category
    # Every embedded figure decodes in the browser (naturalWidth > 0).
    uris = re.findall(r'"data_uri": "(data:image/png;[^"]+)"', html)
    # Per run: history, roc, calibration, filters, cam; overall: class counts, average image,
    # oversampling, AUROC comparison, forest plot.
    assert len(uris) == len(FIGURES) * len(NAMES) + 5
    for uri in uris:
        assert base64.b64decode(uri.split("base64,", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    page = tmp_path / "figures.html"
    imgs = "".join(f'<img src="{u}">' for u in uris)
    page.write_text(
        f"<html><body>{imgs}<script>window.onload = () => {{ document.body.dataset.widths = "
        "[...document.images].map(i => i.complete ? i.naturalWidth : 0).join(','); };"
        "</script></body></html>"
    )
    dom = chromium_run(chromium, tmp_path / "u3", "--dump-dom", page)
    widths = [int(w) for w in re.search(r'data-widths="([^"]*)"', dom).group(1).split(",")]
    assert len(widths) == len(uris) and min(widths) > 300


def _predict(*args):
    cmd = [str(Path(sys.executable).with_name("cxr14")), "predict", "--device", "cpu", *args]
    return hangguard.run(cmd, guard=hangguard.COMMAND)


def test_bundle_and_model_card(done):
    bundle = torch.load(done / "results/models/vgg_like/bundle.pt", weights_only=True)
    assert (bundle["format"], bundle["version"], bundle["arch"]) == (
        "cxr14-model-bundle",
        2,
        "vgg_like",
    )
    assert bundle["labels"] == list(LABELS)
    assert bundle["preprocess"]["store_size"] == 32 and bundle["preprocess"]["input_size"] == 32
    metrics = pd.read_csv(done / f"{evals('vgg_like')}/metrics.csv").set_index("label")
    # The bundle's thresholds are the evaluation's validation-chosen ones.
    np.testing.assert_allclose(
        bundle["thresholds"]["youden"], metrics.loc[list(LABELS), "threshold_at_val"], atol=1e-5
    )
    assert bundle["test"]["mean"]["auroc"] == pytest.approx(metrics.loc["mean", "auroc"], abs=1e-6)
    # ... and its temperatures those the evaluation fitted, from the validation predictions
    # the evaluation wrote (the validation split is scored once).
    np.testing.assert_allclose(
        bundle["calibration"]["temperatures"], metrics.loc[list(LABELS), "temperature"], rtol=1e-5
    )
    val = pd.read_csv(done / f"{evals('vgg_like')}/val_predictions.csv")
    splits = pd.read_csv(done / "results/splits/holdout/splits.csv")
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
        pred = pd.read_csv(done / f"{evals(run)}/predictions.csv")
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
        assert pd.read_csv(out.parent / "failures.csv").empty


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
    failures = pd.read_csv(out.parent / "failures.csv").set_index("image")
    assert failures.loc[str(folder / "notes.png"), "reason"].startswith("not a PNG or JPEG file")
    assert failures.loc[str(folder / "cut.png"), "reason"].startswith("truncated or corrupt PNG")
    assert failures.loc[str(tmp_path / "gone.png"), "reason"] == "no such file or folder"
    assert len(failures) == 3 and "notes.png" in proc.stderr
    # A training checkpoint is not a bundle: refused, saying what it is.
    ckpt = str(done / f"{model('simple_cnn')}/best.pt")
    proc = _predict("--model", ckpt, "--out", str(tmp_path / "x.csv"), str(folder))
    assert proc.returncode == 2 and "is a training checkpoint, not a model bundle" in proc.stderr
    assert not (tmp_path / "x.csv").exists()


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
            failures = pd.read_csv(done / f"results/predict/{run}/failures.csv")
            assert failures["image"].tolist() == [str(folder / "broken.png")]
    finally:
        tiny_runs(done)
    assert planned_jobs(done) == {}
