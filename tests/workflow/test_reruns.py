"""What a change reruns in a built workflow: only the jobs it touches."""

from __future__ import annotations

import pytest
from tiny_workflow import (
    COMPARE,
    EVAL,
    EVALUATION,
    NAMES,
    PREPROCESSING,
    REPLICATES,
    RUNS,
    evaluated,
    tiny_runs,
)

from cxr14.settings import default_config
from cxr14.testing import hangguard
from cxr14.testing.workflow import TINY_CONFIG, planned_jobs, snakemake

pytestmark = pytest.mark.slow


def test_rerun_is_a_no_op(done):
    assert planned_jobs(done) == {}


def test_downstream_setting_reruns_only_downstream_jobs(done):
    try:
        tiny_runs(done, {"oversample": {"threshold": 0.3}})
        jobs = planned_jobs(done)
        assert {
            k: jobs.pop(k) for k in ("make_oversample_index", "plot_oversampling", "train_model")
        } == {"make_oversample_index": 1, "plot_oversampling": 1, "train_model": len(REPLICATES)}
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


def _using_the_shared(key: str) -> list:
    """The replicates whose runs take ``key`` from `train` (no models section of theirs sets it)."""
    merged = default_config()["models"]
    for arch, section in TINY_CONFIG["models"].items():
        merged[arch] = {**merged[arch], **section}
    arch = {r["name"]: r["arch"] for r in RUNS}
    return [rep for rep in REPLICATES if key not in merged[arch[rep[0]]]]


def test_training_setting_reruns_no_preprocessing(done):
    try:
        # resnet18 and the timm backbones take their lr from their models sections
        # (config/config.yaml): not concerned.
        tiny_runs(done, {"train": {**TINY_CONFIG["train"], "lr": 5e-4}})
        jobs = planned_jobs(done)
        assert jobs.pop("train_model") == len(_using_the_shared("lr"))
        assert set(jobs) <= EVALUATION | {"all"}
        # Only vgg_like's and vit_small's models sections leave `epochs` to the shared one.
        tiny_runs(done, {"train": {**TINY_CONFIG["train"], "epochs": 3}})
        jobs = planned_jobs(done)
        assert jobs.pop("train_model") == len(_using_the_shared("epochs")) == 2
        assert set(jobs) <= EVALUATION | {"all"}
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
            "validate_model": 2,
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
    per_replicate = {"train_model": 1, "validate_model": 1, "evaluate_model": 1}
    per_replicate |= {"localize_findings": 1}
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


def test_deleted_figure_rebuilds_only_its_job(done):
    (done / "results/figures/synthetic/holdout/average_image.png").unlink()
    assert planned_jobs(done) == {"plot_average_image": 1, "all": 1}
    snakemake(done, guard=hangguard.PARTIAL_RUN)
    assert planned_jobs(done) == {}


def test_evaluation_setting_reruns_only_evaluation(done):
    try:
        tiny_runs(done, {"eval": {**EVAL, "bootstrap": 30}})
        jobs = planned_jobs(done)
        assert jobs["evaluate_model"] == len(REPLICATES) and jobs["compare_runs"] == 1
        assert set(jobs) <= EVALUATION | {"all"}
        tiny_runs(done, {"eval": {**EVAL, "cam_threshold": 0.6}})
        jobs = planned_jobs(done)
        n, cams = len(REPLICATES), len(NAMES)
        assert jobs == {"localize_findings": n, "plot_cams": cams, "summarize_models": 1, "all": 1}
    finally:
        tiny_runs(done)
    (done / f"{evaluated('vgg_like')}/roc.png").unlink()
    assert planned_jobs(done) == {"plot_roc": 1, "all": 1}
    snakemake(done, guard=hangguard.PARTIAL_RUN)
    assert planned_jobs(done) == {}
