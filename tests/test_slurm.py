"""The workflow through `snakemake --profile profiles/slurm` on a real one-node SLURM cluster.

The test starts the cluster itself (Debian's munge + slurm 22.05, installed when missing) and
stops it afterwards. It is skipped only where the packages cannot be installed, never in CI.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from cxr14.testing import hangguard
from cxr14.testing import slurm as slurm_cluster
from cxr14.testing.workflow import DATA_TARGETS, REPO, snakemake, snakemake_command, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if slurm_cluster.missing_binaries():
        try:
            slurm_cluster.install()
        except (subprocess.CalledProcessError, FileNotFoundError, PermissionError) as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"cannot install {', '.join(slurm_cluster.PACKAGES)} here ({exc})")
    with slurm_cluster.cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


def _run(wd, env, *args):
    cmd = snakemake_command(
        wd, "--profile", str(REPO / "profiles/slurm"), *args, *slurm_cluster.FIT_NODE
    )
    return hangguard.run(cmd, cwd=wd, env=env, guard=hangguard.SLURM_WORKFLOW)


def _jobs(env) -> list[dict[str, str]]:
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-O", "JobID:12,State:14,tres-per-job:24,Comment:200"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = []
    for line in out.splitlines():
        job_id, state, tres, *comment = line.split()
        jobs.append({"id": job_id, "state": state, "tres": tres, "comment": " ".join(comment)})
    return jobs


def test_workflow_runs_through_sbatch(slurm, tmp_path):
    write_config(
        tmp_path,
        {
            "runs": [{"name": "simple_cnn", "arch": "simple_cnn", "seeds": [0, 1]}],
            "train": {
                "threads": 1,
                "epochs": 1,
                "milestones": [1],
                "input_size": 32,
                "batch_size": 8,
                "device": "cpu",
            },
        },
    )
    before = {j["id"] for j in _jobs(slurm)}
    proc = _run(tmp_path, slurm)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert (tmp_path / "results/report/summary.md").exists()
    # Every job but the local `all` went through sbatch and completed.
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", out)
    n_jobs = int(done[-1][1]) - 1
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    jobs = [j for j in _jobs(slurm) if j["id"] not in before]
    assert len(submitted) == len(jobs) == n_jobs > 10
    assert {j["state"] for j in jobs} == {"COMPLETED"}
    # Each training job (one per seed) asked the scheduler for a GPU (the rule's gpu resource
    # -> --gpus).
    train = [j for j in jobs if "train_model" in j["comment"]]
    assert len(train) == 2 and all("gpu:1" in j["tres"] for j in train), train
    others = [j for j in jobs if "train_model" not in j["comment"]]
    assert all("gpu" not in j["tres"] for j in others)


def test_failing_job_is_reported_as_failed(slurm, tmp_path):
    write_config(tmp_path, {"synthetic": {"n_images": 40, "image_size": 128}})
    proc = _run(tmp_path, slurm, "results/synthetic/Data_Entry_2017.csv")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    image = sorted((tmp_path / "results/synthetic/images").iterdir())[3]
    image.write_bytes(b"")
    before = {j["id"] for j in _jobs(slurm)}
    proc = _run(tmp_path, slurm, "results/hdf5/synthetic/images_32.h5", "--retries", "0")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error in rule downsample_images" in out and "FAILED" in out
    failed = [j for j in _jobs(slurm) if j["id"] not in before and j["state"] == "FAILED"]
    assert failed and all("downsample_images" in j["comment"] for j in failed)
    log = next((tmp_path / "logs/downsample_images/synthetic").glob("*.log")).read_text()
    assert (
        f"{image.name}: zero-byte file"
        in "".join(
            p.read_text() for p in (tmp_path / "logs/downsample_images/synthetic").glob("*.log")
        )
        or log
    )


def test_preempted_training_is_resubmitted_and_resumes(slurm, tmp_path):
    """scancel the training job mid-run (what pre-emption does): the profile's `retries`
    resubmits it, and it continues from its last complete epoch instead of starting over.
    The data stages run locally first: only the training goes through sbatch (the test above
    sends every stage)."""

    import torch

    write_config(
        tmp_path,
        {
            "synthetic": {"n_images": 400, "image_size": 128},
            "preprocess": {"size": 64},
            "runs": [{"name": "vgg_like", "arch": "vgg_like"}],
            "train": {
                "threads": 1,
                "epochs": 12,
                "milestones": [100],
                "input_size": 64,
                "batch_size": 16,
                "device": "cpu",
            },
            "models": {"vgg_like": {"widths": [16, 32], "fc": 64}},
        },
    )
    snakemake(tmp_path, *DATA_TARGETS, guard=hangguard.PARTIAL_RUN)
    target = "results/models/vgg_like/holdout/seed0/history.csv"
    profile = ["--profile", str(REPO / "profiles/slurm")]
    proc = hangguard.start(
        snakemake_command(tmp_path, *profile, target, *slurm_cluster.FIT_NODE),
        cwd=tmp_path,
        env=slurm,
    )
    last = tmp_path / "results/models/vgg_like/holdout/seed0/.resume/last.pt"
    cancelled = []  # (SLURM job id, epoch)

    def cancel_after_epoch_2() -> bool:
        try:
            epoch = torch.load(last, weights_only=True)["epoch"] if last.exists() else 0
        except (RuntimeError, EOFError, FileNotFoundError):
            return False  # replaced while reading
        jobs = [j for j in _jobs(slurm) if j["state"] == "RUNNING"] if epoch >= 2 else []
        running = [j for j in jobs if "train_model" in j["comment"]]
        if running:
            subprocess.run(["scancel", running[0]["id"]], env=slurm, check=True)
            cancelled.append((running[0]["id"], epoch))
        return bool(running)

    hangguard.wait_for(cancel_after_epoch_2, hangguard.TRAINING_EPOCHS, proc=proc, interval=0.2)
    done = hangguard.finish(proc, guard=hangguard.SLURM_WORKFLOW)
    out = done.stdout + done.stderr
    assert cancelled, "the training job could not be caught while running"
    assert proc.returncode == 0, out[-5000:]
    assert "Trying to restart job" in out
    log = (tmp_path / "logs/train_model/vgg_like/holdout/seed0.log").read_text()
    resumed = re.search(r"resuming after epoch (\d+)", log)
    assert resumed and int(resumed.group(1)) >= cancelled[0][1]
    history = (tmp_path / target).read_text().splitlines()
    assert len(history) == 1 + 12
    states = {j["id"]: j["state"] for j in _jobs(slurm)}
    assert states[cancelled[0][0]] == "CANCELLED"
