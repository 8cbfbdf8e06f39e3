"""The tests' hang guard: a Snakemake run stopped past its guard says what it was doing and
leaves no job behind."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from cxr14.testing import hangguard

# A job that hangs after writing to its log, beside one that finishes.
SNAKEFILE = """
rule all:
    input: "hung.txt", "quick.txt"

rule quick:
    output: "quick.txt"
    log: "logs/quick.log"
    shell: "echo quick > {log}; touch {output}"

rule hang:
    output: "{name}.txt"
    log: "logs/hang/{name}.log"
    shell: "echo waiting for the network > {log}; echo $$ > pid; sleep 600; touch {output}"
"""

# The guard that stops the run; Snakemake starts the job within about 3 s on the development
# machine (scaling is turned off: this guard is what is tested).
STOP_AFTER = hangguard.Guard("TEST", 20, "a run that hangs on purpose")


@pytest.fixture(autouse=True)
def unscaled(monkeypatch):
    monkeypatch.setattr(hangguard, "SCALE", 1.0)


def test_a_hung_run_names_its_running_job_and_is_stopped_whole(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2"]
    with pytest.raises(hangguard.HangError) as caught:
        hangguard.run(cmd, cwd=tmp_path, guard=STOP_AFTER)
    message = str(caught.value)
    assert message.startswith(f"stopped after 20 s (TEST): {sys.executable}")
    assert "1 job(s) still running:\n  hang (jobid" in message and "name=hung" in message
    assert "last lines of logs/hang/hung.log:\nwaiting for the network" in message
    jobs, console = message.split("--- last lines of the console:\n")
    assert "quick" not in jobs and "rule quick:" in console
    # The job's shell was stopped with Snakemake, not left running.
    pid = int((tmp_path / "pid").read_text())
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.1)
    assert not _alive(pid), f"the hung job's shell (pid {pid}) is still running"


def _alive(pid: int) -> bool:
    try:  # a zombie has ended and waits only for its exit status to be read
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_running_jobs_reads_snakemake_9_consoles():
    console = """
[Sun Nov 29 22:26:44 2026]
localrule plot_roc:
    input: results/eval/a/predictions.csv
    output: results/eval/a/roc.png
    log: logs/plot_roc/a.log
    jobid: 56
    wildcards: run=a
    resources: tmpdir=/tmp
[Sun Nov 29 22:26:44 2026]
rule train_model:
    output: results/models/a/best.pt
    log: logs/train_model/a.log, logs/train_model/a.err
    jobid: 7
    threads: 2
Select jobs to execute...
[Sun Nov 29 22:26:50 2026]
Finished jobid: 56 (Rule: plot_roc)
"""
    jobs = hangguard.running_jobs(console)
    assert [(j["rule"], j["jobid"], j["threads"]) for j in jobs] == [("train_model", "7", "2")]
    assert jobs[0]["log"] == "logs/train_model/a.log, logs/train_model/a.err"


def test_guards_scale_with_the_environment(monkeypatch):
    monkeypatch.setattr(hangguard, "SCALE", 0.5)
    assert hangguard.WORKFLOW.limit == hangguard.WORKFLOW.seconds / 2


def test_timings_are_recorded_and_summarised(tmp_path, monkeypatch):
    timings = tmp_path / "timings.tsv"
    monkeypatch.setenv("CXR14_TEST_TIMINGS", str(timings))
    hangguard.run([sys.executable, "-c", "pass"], guard=hangguard.COMMAND, check=True)
    assert hangguard.wait_for(lambda: True, hangguard.TRAINING_EPOCHS)
    lines = [line.split("\t") for line in timings.read_text().splitlines()]
    test = "tests/test_hangguard.py::test_timings_are_recorded_and_summarised (call)"
    assert [(g, t) for g, _, t, _ in lines] == [("COMMAND", test), ("TRAINING_EPOCHS", test)]
    table = hangguard.slowest(timings)
    assert "| COMMAND | one `cxr14 predict`" in table and "| WORKFLOW |" in table


def test_a_wait_past_its_guard_names_it():
    guard = hangguard.Guard("SHORT", 0.2, "a condition that never holds")
    with pytest.raises(hangguard.HangError, match=r"not within 0 s \(SHORT\): a condition"):
        hangguard.wait_for(lambda: False, guard, interval=0.01)
