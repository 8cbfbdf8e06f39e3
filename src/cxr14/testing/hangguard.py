"""Subprocesses with a hang guard: a timeout that only stops a run that hangs, and says what
the run was doing when it was stopped.

Every guard is at least 4x the slowest time measured for what it guards on a 2-core
development machine on a slow day (docs/testing.md lists them), so no verdict depends on the
machine's speed. ``CXR14_TEST_TIMEOUT_SCALE`` multiplies every guard: 0.5 is the one-off check
that the suite still passes with half of each guard. With ``CXR14_TEST_TIMINGS=FILE`` every
guarded command appends its guard, duration and test to FILE;
``python -m cxr14.testing.hangguard FILE`` prints the slowest of each guard and its margin.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SCALE = float(os.environ.get("CXR14_TEST_TIMEOUT_SCALE", "1"))


@dataclass(frozen=True)
class Guard:
    """The longest that ``what`` may take before it counts as hung (``seconds`` unscaled)."""

    name: str
    seconds: float
    what: str

    @property
    def limit(self) -> float:
        """Seconds on this machine (scaled by CXR14_TEST_TIMEOUT_SCALE)."""
        return self.seconds * SCALE


DRY_RUN = Guard("DRY_RUN", 120, "a Snakemake dry run, --unlock or --lint, or a lint tool")
PARTIAL_RUN = Guard(
    "PARTIAL_RUN", 300, "the data stages of a tiny configuration, or a few jobs of a built one"
)
WORKFLOW = Guard("WORKFLOW", 2400, "a tiny configuration trained and evaluated end to end")
SLURM_WORKFLOW = Guard("SLURM_WORKFLOW", 2400, "a run through the SLURM profile")
COMMAND = Guard("COMMAND", 120, "one `cxr14 predict`, `snakemake --report` or Chromium command")
TRAINING_EPOCHS = Guard("TRAINING_EPOCHS", 240, "a wait for a real training to reach epoch 2")
CLUSTER_START = Guard("CLUSTER_START", 120, "the test SLURM cluster's node becoming idle")
GUARDS = (DRY_RUN, PARTIAL_RUN, WORKFLOW, SLURM_WORKFLOW, COMMAND, TRAINING_EPOCHS, CLUSTER_START)

_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_FINISHED = re.compile(r"Finished jobid: (\d+)|Finished job (\d+)\.")


class HangError(AssertionError):
    """A guarded command ran past its guard and was stopped."""


def run(
    cmd: list[str],
    *,
    guard: Guard,
    cwd: Path | None = None,
    env: dict | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` under ``guard``. Past it, the
    command and every process it started are stopped and a HangError gives the running
    Snakemake jobs, their log tails and the last console lines. ``check``: a non-zero exit
    status fails with the command's output."""
    proc = finish(start(cmd, cwd=cwd, env=env), guard=guard)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def start(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` in a process group of its own, its output going to temporary files, for
    a test that acts while it runs; ``finish`` collects it."""
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True, start_new_session=True
    )
    proc.outputs, proc.cwd, proc.started = (out, err), cwd, time.perf_counter()
    return proc


def finish(proc: subprocess.Popen, *, guard: Guard) -> subprocess.CompletedProcess:
    """Wait for a command from ``start`` under ``guard``."""
    try:
        code = proc.wait(timeout=max(0, proc.started + guard.limit - time.perf_counter()))
    except subprocess.TimeoutExpired:
        stop(proc)
        code = None
    _record(guard, time.perf_counter() - proc.started, proc.args)
    stdout, stderr = (_read(f) for f in proc.outputs)
    if code is None:
        raise HangError(describe_hang(proc.args, guard, stdout + stderr, proc.cwd))
    return subprocess.CompletedProcess(proc.args, code, stdout, stderr)


def _record(guard: Guard, seconds: float, cmd: list[str]) -> None:
    if path := os.environ.get("CXR14_TEST_TIMINGS"):
        test = os.environ.get("PYTEST_CURRENT_TEST", "?")
        with open(path, "a") as f:
            f.write(f"{guard.name}\t{seconds:.1f}\t{test}\t{' '.join(map(str, cmd))[-200:]}\n")


def _read(file) -> str:
    with file:
        file.seek(0)
        return file.read()


def wait_for(condition, guard: Guard, *, proc=None, interval: float = 0.05) -> bool:
    """Poll ``condition()`` until it is true (True), or until ``proc`` has ended (False);
    past ``guard``, ``proc`` is stopped and a HangError raised."""
    started = time.perf_counter()
    while not condition():
        if proc is not None and proc.poll() is not None:
            return False
        if time.perf_counter() - started > guard.limit:
            if proc is not None:
                stop(proc)
            raise HangError(f"not within {guard.limit:.0f} s ({guard.name}): {guard.what}")
        time.sleep(interval)
    _record(guard, time.perf_counter() - started, ["(waiting)"])
    return True


def stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """Stop ``proc`` and, when it leads a process group (``start``), the group (Snakemake's
    jobs too): SIGTERM, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):  # the leader may be gone, its jobs not
            os.killpg(proc.pid, sig)
        proc.send_signal(sig)  # a process without a group of its own
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)


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


def describe_hang(cmd: list[str], guard: Guard, console: str, cwd: Path | None) -> str:
    """What a stopped run was doing: its command, its running jobs with the last lines of
    each job's log, and the last lines of its console."""
    lines = [f"stopped after {guard.limit:.0f} s ({guard.name}): {' '.join(map(str, cmd))}"]
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


def slowest(timings: Path) -> str:
    """The slowest command of each guard in a CXR14_TEST_TIMINGS file, with its margin."""
    worst: dict[str, tuple[float, str]] = {}
    for line in Path(timings).read_text().splitlines():
        name, seconds, test, _ = line.split("\t", 3)
        if float(seconds) > worst.get(name, (-1.0, ""))[0]:
            worst[name] = (float(seconds), test)
    rows = ["| guard | guards | slowest measured | its test | guard | margin |", "|---" * 6 + "|"]
    for g in GUARDS:
        seconds, test = worst.get(g.name, (float("nan"), "(not used)"))
        margin = g.seconds / max(seconds, 1.0)  # under a second counts as one
        took = "under 1 s" if seconds < 1 else f"{seconds:.0f} s"
        cells = (g.name, g.what, took, f"`{test}`", f"{g.seconds:.0f} s")
        rows.append(f"| {' | '.join(cells)} | {margin:.1f}x |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(slowest(Path(sys.argv[1])))
