"""Subprocesses with a hang guard: a timeout that only stops a run that hangs, and says what
the run was doing when it was stopped.

Every guard is at least 4x the slowest time measured for what it guards on a 2-core
development machine (docs/testing.md lists them), so no verdict depends on the machine's
speed. ``CXR14_TEST_TIMEOUT_SCALE`` multiplies every guard: 0.5 is the one-off check that the
suite still passes with half of each guard, a 2x margin on the machine that runs it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

SCALE = float(os.environ.get("CXR14_TEST_TIMEOUT_SCALE", "1"))

# Guards in seconds, by what they guard; the slowest measured times are in docs/testing.md.
DRY_RUN = 120  # a Snakemake dry run, --unlock, --report or a lint command
DATA_STAGES = 600  # the data stages of a tiny configuration, up to the oversampling index
WORKFLOW = 2400  # a tiny configuration trained and evaluated end to end (the big fixtures)
SLURM_WORKFLOW = 1800  # the SLURM tests' runs through the profile
COMMAND = 300  # one `cxr14 predict` or headless-browser command
TRAINING_EPOCHS = 240  # a test waiting for a real training process to reach an epoch

_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_FINISHED = re.compile(r"Finished jobid: (\d+)|Finished job (\d+)\.")


class HangError(AssertionError):
    """A guarded command ran past its guard and was stopped."""


def guard(seconds: float) -> float:
    """A guard of ``seconds`` on this machine (scaled by CXR14_TEST_TIMEOUT_SCALE)."""
    return seconds * SCALE


def run(
    cmd: list[str], *, timeout: float, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` with a hang guard of ``timeout``
    seconds (scaled). Past it, the command and every process it started are stopped and a
    HangError gives the running Snakemake jobs, their log tails and the last console lines."""
    return finish(start(cmd, cwd=cwd, env=env), timeout=timeout)


def start(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` in a process group of its own, its output going to temporary files, for
    a test that acts while it runs; ``finish`` collects it."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True, start_new_session=True
    )
    proc.outputs, proc.cwd = (out, err), cwd
    return proc


def finish(proc: subprocess.Popen, *, timeout: float) -> subprocess.CompletedProcess:
    """Wait for a command from ``start`` under a hang guard of ``timeout`` seconds (scaled)."""
    try:
        code = proc.wait(timeout=guard(timeout))
    except subprocess.TimeoutExpired:
        stop(proc)
        code = None
    stdout, stderr = (_read(f) for f in proc.outputs)
    if code is None:
        raise HangError(describe_hang(proc.args, guard(timeout), stdout + stderr, proc.cwd))
    return subprocess.CompletedProcess(proc.args, code, stdout, stderr)


def _read(file) -> str:
    with file:
        file.seek(0)
        return file.read()


def stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """Stop ``proc`` and its process group (Snakemake's jobs too): SIGTERM, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):  # the leader may be gone, its jobs not
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def running_jobs(console: str) -> list[dict[str, str]]:
    """Snakemake jobs that a console shows started and not finished: rule, jobid, wildcards,
    log (the fields Snakemake prints under each job)."""
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    finished = set()
    for line in console.splitlines():
        stripped = line.strip()
        if m := _JOB.match(stripped):
            current = {"rule": m.group(1)}
        elif current is not None and ":" in stripped and line[:1].isspace():
            key, _, value = stripped.partition(":")
            current[key] = value.strip()
            if key == "jobid":
                jobs[current["jobid"]] = current
        else:
            current = None
        if m := _FINISHED.search(line):
            finished.add(m.group(1) or m.group(2))
    return [job for jid, job in jobs.items() if jid not in finished]


def describe_hang(cmd: list[str], seconds: float, console: str, cwd: Path | None) -> str:
    """What a stopped run was doing: its command, its running jobs with the last lines of
    each job's log, and the last lines of its console."""
    lines = [f"stopped after {seconds:.0f} s (hang guard): {' '.join(map(str, cmd))}"]
    jobs = running_jobs(console)
    if jobs:
        lines.append(f"{len(jobs)} job(s) still running:")
    for job in jobs:
        lines.append(f"  {job['rule']} (jobid {job['jobid']}) {job.get('wildcards', '')}")
        for log in filter(None, job.get("log", "").split(", ")):
            path = Path(cwd or ".") / log
            tail = _tail(path.read_text(errors="replace"), 15) if path.is_file() else "(none)"
            lines.append(f"  --- last lines of {log}:\n{tail}")
    lines.append(f"--- last lines of the console:\n{_tail(console, 40)}")
    return "\n".join(lines)


def _tail(text: str, n: int) -> str:
    return "\n".join(text.splitlines()[-n:])
