"""Live curves of each training job, optional and off by default (``track.tools``):

- ``tensorboard``: event files per training job under ``track.tensorboard_dir``
  (``<run>/<split>/seed<seed>``), every column of ``history.csv`` per epoch as a scalar (losses,
  validation AUROC per class and mean, learning rate, images/s), the settings and the
  provenance record as text;
- ``mlflow``: one MLflow run per training job in experiment ``track.experiment`` at
  ``track.mlflow_uri`` (a local SQLite file by default; a server URL as MLflow allows), with the
  same metrics, the settings as parameters, the provenance record as ``provenance.json``, and
  the bundle logged by ``export_model`` into the run of the replicate it was made from.

A training resumed after a kill continues its own curves: TensorBoard drops the events after the
resumed epoch, MLflow continues the unfinished run of the same replicate (tag ``cxr14.replicate``).
Each tool is a pip extra (``cxr14[tensorboard]``, ``cxr14[mlflow]``), imported only when asked
for; the configuration names it before any job when it is missing (``missing_tools``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger(__name__)

# Tool -> the module it needs and the pip extra that installs it.
TOOLS = {
    "tensorboard": ("tensorboard", "cxr14[tensorboard]"),
    "mlflow": ("mlflow", "cxr14[mlflow]"),
}
REPLICATE_TAG = "cxr14.replicate"


def replicate_name(run: str, split: str, seed) -> str:
    """A replicate's name in the trackers (``<run>/<split>/seed<seed>``): its TensorBoard
    folder and MLflow run, shared by the training job and the bundle's export."""
    return f"{run}/{split}/seed{seed}"


def missing_tools(track: dict) -> list[str]:
    """One line per tool asked for in ``track`` that is not installed."""
    return [
        f"track.tools: {tool} is not installed (pip install '{TOOLS[tool][1]}')"
        for tool in track.get("tools", [])
        if find_spec(TOOLS[tool][0]) is None
    ]


class TensorBoard:
    """Event files of one training job (``folder``)."""

    def __init__(self, folder, settings: dict, record: dict, resumed_epoch: int):
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(folder)
        if not resumed_epoch:  # a fresh training: the curves of an earlier one are not its own
            shutil.rmtree(folder, ignore_errors=True)
        # Events after the resumed epoch were written by the killed job: dropped.
        self.writer = SummaryWriter(str(folder), purge_step=resumed_epoch + 1)
        if not resumed_epoch:
            self.writer.add_text("settings", f"```\n{json.dumps(settings, indent=1)}\n```")
            record = json.dumps(record, indent=1, default=str)
            self.writer.add_text("provenance", f"```\n{record}\n```")

    def epoch(self, row: dict) -> None:
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()  # live: a dashboard reads the file while the job runs

    def close(self) -> None:
        self.writer.close()


class MLflow:
    """One MLflow run per training job, found again by its replicate tag when resumed."""

    def __init__(self, track: dict, settings: dict, record: dict, resumed_epoch: int):
        uri, experiment, name = track["mlflow_uri"], track["experiment"], track["name"]
        artifacts = track["mlflow_artifacts"]
        from mlflow.tracking import MlflowClient

        self.client = client = MlflowClient(uri)
        exp = _experiment(client, experiment, artifacts)
        run = resumed_epoch and replicate_run(client, exp, name, unfinished=True)
        if run:
            self.run_id = run.info.run_id
            return
        self.run_id = client.create_run(exp, run_name=name, tags={REPLICATE_TAG: name}).info.run_id
        params = {
            k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in settings.items()
        }
        for key, value in params.items():  # one call each: values may exceed a batch's limits
            client.log_param(self.run_id, key, str(value)[:6000])
        client.log_dict(self.run_id, json.loads(json.dumps(record, default=str)), "provenance.json")

    def epoch(self, row: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, row["epoch"]) for k, v in row.items() if k != "epoch"]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def _experiment(client, name: str, artifacts: str) -> str:
    """The id of experiment ``name``, created (its artifacts under ``artifacts`` for a local
    store) if missing; jobs starting together may race to create it."""
    from mlflow.exceptions import MlflowException

    local = client.tracking_uri.startswith(("sqlite:", "file:"))
    location = Path(artifacts).resolve().as_uri() if local else None
    for attempt in range(5):
        found = client.get_experiment_by_name(name)
        if found:
            return found.experiment_id
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created by another job meanwhile, or the store was busy
            time.sleep(0.5 * (attempt + 1))
    raise RuntimeError(f"MLflow experiment {name!r} could not be created in {client.tracking_uri}")


def replicate_run(client, experiment_id: str, name: str, unfinished: bool = False):
    """The latest MLflow run of replicate ``name`` (only an unfinished one: ``unfinished``)."""
    query = f"tags.`{REPLICATE_TAG}` = '{name}'"
    if unfinished:
        query += " and attributes.status != 'FINISHED'"
    runs = client.search_runs([experiment_id], query, order_by=["start_time DESC"], max_results=1)
    return runs[0] if runs else None


def open_trackers(track: dict | None, settings: dict, record: dict, resumed_epoch: int) -> list:
    """The trackers ``track`` asks for (``tools``, ``name`` of the replicate, ``tensorboard_dir``,
    ``mlflow_uri``, ``experiment``); none without it."""
    track = track or {}
    trackers = []
    for tool in track.get("tools", []):
        if tool == "tensorboard":
            folder = Path(track["tensorboard_dir"]) / track["name"]
            trackers.append(TensorBoard(folder, settings, record, resumed_epoch))
        elif tool == "mlflow":
            _local_folder(track["mlflow_uri"])
            trackers.append(MLflow(track, settings, record, resumed_epoch))
        else:
            raise ValueError(f"track.tools: unknown tool {tool!r} (one of {', '.join(TOOLS)})")
    return trackers


def _local_folder(uri: str) -> None:
    """Make the folder of a local SQLite store (``sqlite:///results/tracking/mlflow.db``)."""
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def log_bundle(track: dict | None, name: str, bundle, card) -> None:
    """Log a replicate's bundle and model card into its MLflow run (when MLflow is tracked)."""
    if "mlflow" not in (track or {}).get("tools", []):
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(track["mlflow_uri"])
    found = client.get_experiment_by_name(track["experiment"])
    run = found and replicate_run(client, found.experiment_id, name)
    if not run:
        log.warning(
            "no MLflow run of %s in %s: the bundle is not logged", name, track["mlflow_uri"]
        )
        return
    for path in (bundle, card):
        client.log_artifact(run.info.run_id, str(path), "model")
