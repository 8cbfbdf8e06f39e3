"""One end-to-end run of the tiny configuration, shared by every test of this folder."""

from __future__ import annotations

import pytest
from tiny_workflow import tiny_runs

from cxr14.testing import hangguard
from cxr14.testing.workflow import snakemake


@pytest.fixture(scope="session")
def done(tmp_path_factory):
    """One complete run of the default target."""
    wd = tmp_path_factory.mktemp("wf")
    tiny_runs(wd)
    proc = snakemake(wd, guard=hangguard.WORKFLOW)
    (wd / "console.txt").write_text(proc.stdout + proc.stderr)
    return wd
