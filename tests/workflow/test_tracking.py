"""Live tracking in the end-to-end run: every training's TensorBoard event files and MLflow
run (one SQLite store written by parallel jobs) hold its history.csv, each bundle is logged into
its replicate's MLflow run, and switching tracking off or on reruns nothing."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import tensorboard_scalars
from tiny_workflow import NAMES, REPLICATES, model, tiny_runs

from cxr14.testing.workflow import planned_jobs
from cxr14.tracking import replicate_name

pytestmark = pytest.mark.slow


def test_every_training_is_tracked_as_its_history(done):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{done}/results/tracking/mlflow.db")
    experiment = client.get_experiment_by_name("cxr14")
    runs = {
        r.data.tags["cxr14.replicate"]: r for r in client.search_runs([experiment.experiment_id])
    }
    assert sorted(runs) == sorted(replicate_name(*replicate) for replicate in REPLICATES)
    for run, split, seed in REPLICATES:
        name = replicate_name(run, split, seed)
        history = pd.read_csv(done / model(run, split, seed) / "history.csv")
        scalars = tensorboard_scalars(done / "results/tracking/tensorboard" / name)
        mlflow_run = runs[name]
        assert mlflow_run.info.status == "FINISHED"
        for column in ("train_loss", "val_mean_auroc", "lr", "val_auroc_Effusion"):
            want = [
                (e, pytest.approx(v, nan_ok=True))
                for e, v in zip(history["epoch"], history[column], strict=True)
            ]
            assert scalars[column] == want, (name, column)
            got = client.get_metric_history(mlflow_run.info.run_id, column)
            assert sorted((m.step, m.value) for m in got) == want, (name, column)
    # Each run's bundle and model card, in the MLflow run of the replicate it was made from.
    for run in NAMES:
        artifacts = client.list_artifacts(
            runs[replicate_name(run, "holdout", 0)].info.run_id, "model"
        )
        assert sorted(a.path for a in artifacts) == ["model/bundle.pt", "model/model_card.md"]


def test_switching_tracking_off_or_on_reruns_nothing(done):
    try:
        tiny_runs(done, {"track": {"tools": []}})
        assert planned_jobs(done) == {}
    finally:
        tiny_runs(done)
    assert planned_jobs(done) == {}
