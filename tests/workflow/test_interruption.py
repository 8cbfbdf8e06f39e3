"""A workflow killed mid-shard resumes to the store of an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import h5py
import numpy as np
import pytest
from tiny_workflow import DATA_OUTPUTS

from cxr14.testing import hangguard
from cxr14.testing.workflow import planned_jobs, snakemake, snakemake_command, write_config

pytestmark = pytest.mark.slow


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
    snakemake(wd, "results/metadata/synthetic/entries.csv", guard=hangguard.PARTIAL_RUN)

    shards = wd / "results/hdf5/synthetic/shards"
    cmd = snakemake_command(wd, "--cores", "1", *targets)
    proc = subprocess.Popen(
        cmd, cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def shard_in_progress() -> bool:  # one shard finished and another one being written
        return bool(list(shards.glob("*.h5")) and list(shards.glob("*.partial")))

    # Past its guard the run is stopped by wait_for; a run that ended by itself needs no kill.
    caught = hangguard.wait_for(shard_in_progress, hangguard.PARTIAL_RUN, proc=proc, interval=0.02)
    assert caught, "workflow finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its shard jobs, abruptly
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
        h5py.File(ref / "results/hdf5/synthetic/images_32.h5") as a,
        h5py.File(wd / "results/hdf5/synthetic/images_32.h5") as b,
    ):
        np.testing.assert_array_equal(a["images"][:], b["images"][:])
        assert a["image_index"].asstr()[:].tolist() == b["image_index"].asstr()[:].tolist()
    for out in (
        "results/metadata/synthetic/labels.csv",
        "results/splits/synthetic/holdout/splits.csv",
    ):
        assert (ref / out).read_bytes() == (wd / out).read_bytes()
    np.testing.assert_array_equal(
        np.load(ref / "results/stats/synthetic/holdout/average_image.npy"),
        np.load(wd / "results/stats/synthetic/holdout/average_image.npy"),
    )
    shutil.rmtree(ref / "results/synthetic")  # 120 1024x1024 PNGs: free the space early
