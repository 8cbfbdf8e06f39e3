"""The test cluster's machine-wide configuration is safe beside another run of the suite."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cxr14.testing.slurm import MARK, claim_config, release_config, run_mark


def _write(etc, first_line):
    for name in ("slurm.conf", "gres.conf"):
        (etc / name).write_text(first_line + "\nClusterName=x\n")


def test_a_real_clusters_configuration_is_never_touched(tmp_path):
    (tmp_path / "slurm.conf").write_text("ClusterName=production\n")
    with pytest.raises(RuntimeError, match="is not a test configuration"):
        claim_config(tmp_path, run_mark(tmp_path / "me"))


def test_another_live_runs_cluster_is_a_clear_error_and_is_kept(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = f"{MARK} (pid {other.pid}, /tmp/other-checkout/slurm0)"
        _write(tmp_path, theirs)
        mine = run_mark(tmp_path / "me")
        with pytest.raises(
            RuntimeError, match=rf"another test run's SLURM cluster \(pid {other.pid}"
        ):
            claim_config(tmp_path, mine)
        release_config(tmp_path, mine)  # our teardown must not delete their files
        assert (tmp_path / "slurm.conf").read_text().startswith(theirs)
        assert (tmp_path / "gres.conf").exists()
    finally:
        other.kill()
        other.wait()


def test_a_finished_runs_leftovers_are_taken_over_and_only_ours_removed(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _write(tmp_path, f"{MARK} (pid {gone.pid}, /tmp/old/slurm0)")
    mine = run_mark(tmp_path / "me")
    claim_config(tmp_path, mine)  # stale: no error
    _write(tmp_path, mine)
    release_config(tmp_path, mine)
    assert not (tmp_path / "slurm.conf").exists() and not (tmp_path / "gres.conf").exists()
