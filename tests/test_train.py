"""Training runs on CPU: reproducibility, resume after a kill, DDP, checkpoints, live tracking."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import full_settings, tensorboard_scalars

import cxr14.train as train_module
from cxr14.checkpoint import load_checkpoint, load_model
from cxr14.testing import hangguard
from cxr14.tracking import missing_tools
from cxr14.train import RESUME_DIR, run, train

pytestmark = pytest.mark.slow
TIMING = ["seconds", "samples_per_s"]
HISTORY_COLUMNS = [
    "epoch",
    "lr",
    "train_loss",
    "val_loss",
    "val_mean_auroc",
    "seconds",
    "samples_per_s",
]
VGG = full_settings(
    {
        "arch": "vgg_like",
        "epochs": 3,
        "milestones": [2],
        "input_size": 32,
        "batch_size": 16,
        "device": "cpu",
        "seed": 1,
    }
) | {"widths": [8, 16], "fc": 32}


def _same_weights(a, b):
    sa = torch.load(a, weights_only=True)["model"]
    sb = torch.load(b, weights_only=True)["model"]
    assert sa.keys() == sb.keys()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_outputs_and_reproducibility(tmp_path, tiny_data):
    h1 = train(VGG, **tiny_data, out_dir=tmp_path / "a", threads=2)
    h2 = train(VGG, **tiny_data, out_dir=tmp_path / "b", threads=2)
    for d in ("a", "b"):
        assert sorted(p.name for p in (tmp_path / d).iterdir()) == [
            "best.pt",
            "history.csv",
            "last.pt",
        ]
    hist = pd.read_csv(tmp_path / "a" / "history.csv")
    assert list(hist.columns[:7]) == HISTORY_COLUMNS and len(hist) == 3
    assert hist["lr"].tolist() == pytest.approx([1e-3, 1e-3, 1e-4])
    # Two CPU runs: identical history (timing columns aside) and identical weights.
    pd.testing.assert_frame_equal(h1.drop(columns=TIMING), h2.drop(columns=TIMING))
    a = pd.read_csv(tmp_path / "a/history.csv").drop(columns=TIMING)
    assert a.equals(pd.read_csv(tmp_path / "b/history.csv").drop(columns=TIMING))
    assert _same_weights(tmp_path / "a/last.pt", tmp_path / "b/last.pt")
    ckpt = load_checkpoint(tmp_path / "a/best.pt", "vgg_like")
    assert ckpt["epoch"] == ckpt["best_epoch"] == hist["val_mean_auroc"].idxmax() + 1
    # best.pt is for scoring; the optimizer, scheduler and RNG state live in last.pt only.
    assert {"model", "epoch", "config", "labels"} <= set(ckpt)
    assert not {"optimizer", "scheduler", "rng"} & set(ckpt)
    last = load_checkpoint(tmp_path / "a/last.pt", "vgg_like")
    assert {"model", "optimizer", "scheduler", "epoch", "config", "rng"} <= set(last)
    assert ckpt["config"]["seed"] == 1 and ckpt["weights_used"].startswith("none")
    # What the training ran from: the code, and the device it ran on.
    record = ckpt["provenance"]
    assert record["cxr14_version"] and set(record["git"]) == {"commit", "dirty", "diff_sha256"}
    assert record["environment"]["device"].startswith("cpu") and record["environment"]["torch"]
    model, _ = load_model(tmp_path / "a/best.pt")
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 14)
    # The checkpoint holds its normalisation: it scores without the training run's stats files
    # exactly as with them; one without (older) needs them, and says so.
    from cxr14.data import read_rows
    from cxr14.inference import Scorer

    images = read_rows(tiny_data["store_h5"], np.arange(6))
    alone = Scorer.load(tmp_path / "a/best.pt", device="cpu").predict(images)
    files = (tiny_data["average_npy"], tiny_data["stats_json"])
    np.testing.assert_array_equal(
        alone, Scorer.load(tmp_path / "a/best.pt", *files, "cpu").predict(images)
    )
    old = {k: v for k, v in ckpt.items() if k != "normalization"}
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="holds no input normalisation"):
        Scorer.load(tmp_path / "old.pt", device="cpu")
    np.testing.assert_array_equal(
        alone, Scorer.load(tmp_path / "old.pt", *files, "cpu").predict(images)
    )


def test_mismatched_checkpoints_fail_clearly(tmp_path, tiny_data):
    train({**VGG, "epochs": 1}, **tiny_data, out_dir=tmp_path, threads=2)
    with pytest.raises(ValueError, match=r"checkpoint of architecture 'vgg_like', not 'resnet18'"):
        load_checkpoint(tmp_path / "best.pt", "resnet18")
    with pytest.raises(ValueError, match=r"other model settings \(widths: checkpoint \[8, 16\]"):
        load_checkpoint(tmp_path / "best.pt", "vgg_like", {**VGG, "widths": [8, 32]})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a cxr14 training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, tiny_data, sig):
    """Kill a real training process after its 2nd epoch; rerunning finishes with exactly the
    weights and history of an uninterrupted run."""
    settings = {**VGG, "epochs": 6, "input_size": 64, "milestones": [4]}
    _kill_and_resume(tmp_path, tiny_data, settings, sig, after=2)


@pytest.mark.parametrize("arch", ["convnext_tiny", "efficientnet_b0", "vit_small_patch16_224"])
def test_timm_backbones_train_and_resume_after_a_kill(tmp_path, tiny_data, arch):
    """Each named timm backbone fine-tunes (the backbone at a tenth of the head's rate) and
    resumes bit-identically after a SIGKILL, like the others."""
    base = {k: VGG[k] for k in ("input_size", "device", "seed")}
    settings = full_settings({**base, "arch": arch, "epochs": 3, "batch_size": 32}) | {
        "weights": "none",
        "backbone_lr_scale": 0.1,
    }
    _kill_and_resume(tmp_path, tiny_data, settings, signal.SIGKILL, after=1)
    history = pd.read_csv(tmp_path / "run/history.csv")
    assert history["train_loss"].notna().all() and (history["lr"] == settings["lr"]).all()


def _kill_and_resume(tmp_path, tiny_data, settings, sig, after):
    train(settings, **tiny_data, out_dir=tmp_path / "ref", threads=1)

    out = tmp_path / "run"
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps(
            {
                "settings": settings,
                "threads": 1,
                "out_dir": str(out),
                **{k: str(v) for k, v in tiny_data.items()},
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cxr14.train", "--job", str(job)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = out / RESUME_DIR / "last.pt"

    def after_epoch() -> bool:
        try:
            return last.exists() and torch.load(last, weights_only=True)["epoch"] >= after
        except (RuntimeError, EOFError, FileNotFoundError):
            return False  # replaced while reading

    caught = hangguard.wait_for(after_epoch, hangguard.TRAINING_EPOCHS, proc=proc)
    assert caught and proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(sig)
    proc.wait()
    assert not (out / "history.csv").exists()  # the run did not complete
    resumed_from = torch.load(last, weights_only=True)["epoch"]
    assert after <= resumed_from < settings["epochs"]

    history = train(settings, **tiny_data, out_dir=out, threads=1)
    assert _same_weights(out / "last.pt", tmp_path / "ref/last.pt")
    assert _same_weights(out / "best.pt", tmp_path / "ref/best.pt")
    ref = pd.read_csv(tmp_path / "ref/history.csv").drop(columns=TIMING)
    assert pd.read_csv(out / "history.csv").drop(columns=TIMING).equals(ref)
    assert len(history) == settings["epochs"] and not (out / RESUME_DIR).exists()


def test_changed_settings_do_not_resume_a_stale_run(tmp_path, tiny_data, caplog):
    out = tmp_path / "m"
    train({**VGG, "epochs": 1}, **tiny_data, out_dir=out, threads=1)
    (out / RESUME_DIR).mkdir()
    (out / "last.pt").rename(out / RESUME_DIR / "last.pt")  # as if interrupted after epoch 1
    caplog.set_level("WARNING")
    history = train({**VGG, "epochs": 2, "lr": 5e-4}, **tiny_data, out_dir=out, threads=1)
    assert len(history) == 2 and "starting afresh" in caplog.text and "lr" in caplog.text


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_ddp_two_processes_match_one(tmp_path, tiny_data, compiled):
    """torchrun with 2 gloo processes on the CPU = one eager process with the same global
    batch, also with torch.compile around the DDP module (train.compile)."""
    settings = full_settings(
        {
            "arch": "simple_cnn",
            "epochs": 2,
            "milestones": [10],
            "input_size": 32,
            "batch_size": 16,
            "device": "cpu",
            "seed": 4,
        }
    )
    run(settings, gpus=1, threads=2, **tiny_data, out_dir=tmp_path / "one")
    env_before = dict(os.environ)
    run({**settings, "compile": compiled}, gpus=2, threads=2, **tiny_data, out_dir=tmp_path / "two")
    assert dict(os.environ) == env_before
    one = torch.load(tmp_path / "one/last.pt", weights_only=True)
    two = torch.load(tmp_path / "two/last.pt", weights_only=True)
    for k in one["model"]:
        torch.testing.assert_close(two["model"][k], one["model"][k], rtol=1e-4, atol=1e-5)
    h1 = pd.read_csv(tmp_path / "one/history.csv")
    h2 = pd.read_csv(tmp_path / "two/history.csv")
    for c in ("train_loss", "val_loss", "val_mean_auroc"):
        assert h2[c].tolist() == pytest.approx(h1[c].tolist(), rel=1e-4, abs=1e-5), c


def test_a_defined_validation_auroc_replaces_an_undefined_best():
    """A tiny validation split may give NaN at epoch 1: later epochs must still become best."""
    from cxr14.train import State, record_epoch

    state = State()
    for epoch, auroc in [(1, float("nan")), (2, 0.6), (3, 0.55), (4, float("nan")), (5, 0.7)]:
        state = record_epoch(state, {"epoch": epoch, "val_mean_auroc": auroc})
        if epoch == 2:
            assert (state.best_epoch, state.best_auroc) == (2, 0.6)
    assert (state.best_epoch, state.best_auroc, state.epoch) == (5, 0.7, 5)
    assert len(state.history) == 5


class _Interrupt(Exception):
    pass


def _stop_after(epoch: int, monkeypatch) -> None:
    """Make train() fail after ``epoch`` epochs were saved (the next one's log line raises)."""
    log_epoch = train_module._log_epoch

    def fail(settings, row):
        if row["epoch"] > epoch:
            raise _Interrupt
        log_epoch(settings, row)

    monkeypatch.setattr(train_module, "_log_epoch", fail)


def _close_weights(a, b, rtol=1e-5, atol=1e-5):
    sa = torch.load(a, weights_only=True)["model"]
    sb = torch.load(b, weights_only=True)["model"]
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], rtol, atol) for k in sa)


def test_compiled_training_checkpoints_load_eagerly_and_resume(tmp_path, tiny_data, monkeypatch):
    """train.compile: the checkpoint has the eager names and gives the compiled model's
    outputs in an eager one; an interrupted run resumes with compile on, from a compiled or an
    eager start (compile changes speed, not what is computed)."""
    settings = {**VGG, "epochs": 3, "compile": True}
    train(settings, **tiny_data, out_dir=tmp_path / "ref", threads=2)
    model, ckpt = load_model(tmp_path / "ref/best.pt")
    assert ckpt["config"]["compile"] and not any("_orig_mod" in k for k in ckpt["model"])
    x = torch.randn(4, 1, 32, 32)
    model.eval()
    compiled = torch.compile(copy.deepcopy(model))
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)

    for start in (True, False):  # interrupted with compile on, or off; resumed with it on
        out = tmp_path / f"start_compiled_{start}"
        _stop_after(1, monkeypatch)
        with pytest.raises(_Interrupt):
            train({**settings, "compile": start}, **tiny_data, out_dir=out, threads=2)
        monkeypatch.undo()
        assert torch.load(out / RESUME_DIR / "last.pt", weights_only=True)["epoch"] == 1
        history = train(settings, **tiny_data, out_dir=out, threads=2)
        assert history["epoch"].tolist() == [1, 2, 3]  # resumed, not restarted
        # An eager first epoch rounds differently from a compiled one (1e-3 on values ~27).
        tol = 1e-5 if start else 1e-2
        assert _close_weights(out / "last.pt", tmp_path / "ref/last.pt", tol, tol)


class _Console:
    """A stream that keeps each line written with the time it arrived."""

    def __init__(self):
        self.lines: list[tuple[float, str]] = []

    def write(self, text: str) -> None:
        self.lines += [(time.monotonic(), line) for line in text.splitlines() if line]

    def flush(self) -> None:
        pass


def test_the_longest_demo_training_never_leaves_the_console_silent(
    tmp_path, tiny_data, monkeypatch
):
    """densenet121 (the demo's longest training) with a progress line after every batch
    (CXR14_PROGRESS_SECONDS=0 instead of 20): every phase of an epoch, training and
    validation batches, says where it is, so the console's silences are at most the interval
    plus one batch (on the demo, well under 30 s). Measured: no silence longer than a few
    batches of a loaded machine; every line names the job."""
    from cxr14.logs import log_to

    monkeypatch.setenv("CXR14_PROGRESS_SECONDS", "0")
    settings = full_settings({"arch": "densenet121", "weights": "none", "epochs": 1})
    settings |= {"input_size": 64, "batch_size": 8, "val_batch_size": 4, "device": "cpu"}
    console = _Console()
    monkeypatch.setattr(sys, "stderr", console)
    log = tmp_path / "logs" / "train_model" / "densenet121" / "holdout" / "seed0.log"
    log.parent.mkdir(parents=True)
    start = time.monotonic()
    with log_to(str(log)):
        train(settings, **tiny_data, out_dir=tmp_path / "run", threads=2)
    times = [start, *(t for t, _ in console.lines), time.monotonic()]
    lines = [line for _, line in console.lines]
    assert all(line.startswith("[train_model densenet121/holdout/seed0] ") for line in lines)
    for phase in ("batches", "validation batches"):
        what = f"densenet121 epoch 1/1, {phase}: 1/"
        assert any(what in line and "left" in line for line in lines), (what, lines)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) < 30, (max(gaps), lines)


# Live tracking of a training (TensorBoard event files, an MLflow run in a local SQLite store),
# read back through each library's own API: every value equal to history.csv; a training
# interrupted and resumed still one curve per metric, one value per epoch.


def _track(tmp_path) -> dict:
    return {
        "tools": ["tensorboard", "mlflow"],
        "name": "vgg_like/holdout/seed1",
        "tensorboard_dir": str(tmp_path / "tb"),
        "mlflow_uri": f"sqlite:///{tmp_path}/ml/mlflow.db",
        "mlflow_artifacts": str(tmp_path / "ml" / "artifacts"),
        "experiment": "cxr14-test",
    }


def mlflow_runs(track: dict):
    """The MLflow runs of the track's experiment, and the client."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(track["mlflow_uri"])
    experiment = client.get_experiment_by_name(track["experiment"])
    return client.search_runs([experiment.experiment_id]), client


def assert_tracked_as_history(track: dict, history: pd.DataFrame) -> None:
    """Both tools hold every column of ``history`` per epoch, exactly once."""
    scalars = tensorboard_scalars(f"{track['tensorboard_dir']}/{track['name']}")
    columns = [c for c in history.columns if c != "epoch"]
    assert set(scalars) == set(columns)
    (run,), client = mlflow_runs(track)
    for column in columns:
        want = list(zip(history["epoch"], history[column].astype(float), strict=True))
        assert [(s, pytest.approx(v, nan_ok=True)) for s, v in want] == scalars[column], column
        got = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, column)]
        assert sorted(got) == [(s, pytest.approx(v, nan_ok=True)) for s, v in want], column
    assert run.info.status == "FINISHED" and run.data.tags["cxr14.replicate"] == track["name"]
    assert run.data.params["arch"] == "vgg_like" and json.loads(run.data.params["widths"]) == [
        8,
        16,
    ]
    record = client.download_artifacts(run.info.run_id, "provenance.json")
    assert json.loads(open(record).read())["environment"]["device"].startswith("cpu")


def test_tensorboard_and_mlflow_hold_the_history(tmp_path, tiny_data):
    track = _track(tmp_path)
    history = train(VGG, **tiny_data, out_dir=tmp_path / "out", threads=2, tracking=track)
    assert history.equals(pd.read_csv(tmp_path / "out" / "history.csv"))
    assert_tracked_as_history(track, pd.read_csv(tmp_path / "out" / "history.csv"))


def test_an_interrupted_training_resumes_its_own_curves(tmp_path, tiny_data, monkeypatch):
    track = _track(tmp_path)
    _stop_after(1, monkeypatch)  # epoch 2 is trained and tracked, then the job dies
    with pytest.raises(_Interrupt):
        train(VGG, **tiny_data, out_dir=tmp_path / "out", threads=2, tracking=track)
    monkeypatch.undo()
    (run,), _ = mlflow_runs(track)
    assert run.info.status == "RUNNING"  # left open for the resumed job
    train(VGG, **tiny_data, out_dir=tmp_path / "out", threads=2, tracking=track)
    assert_tracked_as_history(track, pd.read_csv(tmp_path / "out" / "history.csv"))


def test_a_tool_that_is_not_installed_is_named_before_any_job(monkeypatch):
    import cxr14.tracking

    monkeypatch.setattr(cxr14.tracking, "find_spec", lambda name: None)
    assert missing_tools({"tools": ["mlflow"]}) == [
        "track.tools: mlflow is not installed (pip install 'cxr14[mlflow]')"
    ]
    assert missing_tools({"tools": []}) == []
