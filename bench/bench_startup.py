"""What the workflow's small jobs pay before they start, and where a run's time goes.

    python bench/bench_startup.py imports [--repeats 3] [--checkout DIR] [--before DIR]
    python bench/bench_startup.py jobs WORKDIR [--checkout DIR]

``imports``: per workflow script, the seconds a fresh interpreter takes to import the cxr14
modules the script imports (the median of ``--repeats``; ``python -c pass`` is listed for
scale), and which heavy libraries that loads. ``--checkout`` measures another checkout's scripts and
package (e.g. an older commit's ``git worktree``) with this interpreter; ``--before`` adds a
second checkout's seconds beside them, measured in the same run.

``jobs``: a finished run's wall time (its newest ``.snakemake/log``), split by kind of job
(data, training, evaluation, plots, tables), with the jobs' count and their import seconds as
``imports`` measures them: how much of the run is start-up.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "torch._dynamo", "sklearn", "scipy", "matplotlib")
TRAINING = {"train_model"}
EVALUATION = {"evaluate_model", "localize_findings", "evaluate_expert_labels"}
EVALUATION |= {"evaluate_subgroups", "export_model", "compare_runs", "predict_images"}
TABLES = {"aggregate_run", "collect_comparisons", "summarize_models", "count_classes"}


def kind(rule: str) -> str:
    if rule in TRAINING:
        return "training"
    if rule in EVALUATION:
        return "evaluation"
    if rule.startswith("plot_"):
        return "plots"
    return "tables" if rule in TABLES else "data"


def script_modules(script: Path) -> list[str]:
    """The cxr14 modules a workflow script imports."""
    found = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cxr14"):
            found.append(node.module)
    return sorted(set(found))


def import_seconds(modules: list[str], src: Path, repeats: int) -> tuple[float, str]:
    """Median seconds of a fresh interpreter importing ``modules``, and the heavy libraries
    it loaded."""
    code = f"import sys{''.join(f', {m}' for m in modules)}\n"
    code += f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(src)}
    times, heavy = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        times.append(time.perf_counter() - start)
        heavy = proc.stdout.strip()
    return statistics.median(times), heavy


def _before(before: Path | None, name: str, repeats: int) -> str:
    script = before / "workflow" / "scripts" / f"{name}.py" if before else None
    if script is None or not script.is_file():
        return " |" if before else ""
    s, heavy = import_seconds(script_modules(script), before / "src", repeats)
    return f" {s:.2f} | {heavy} |"


def imports_table(checkout: Path, repeats: int, before: Path | None = None) -> dict[str, float]:
    """Print each of ``checkout``'s scripts' import seconds (and ``before``'s, measured in
    turn with them); return ``checkout``'s by rule (script)."""
    head = "| script | import s | heavy libraries loaded |"
    head += " before: import s | before: heavy |" if before else ""
    print(head + "\n|" + " --- |" * (head.count("|") - 1))
    src = checkout / "src"
    base, _ = import_seconds([], src, repeats)
    print(f"| (python -c pass) | {base:.2f} | |" + (" | |" if before else ""))
    seconds = {}
    for script in sorted((checkout / "workflow" / "scripts").glob("*.py")):
        seconds[script.stem], heavy = import_seconds(script_modules(script), src, repeats)
        print(f"| {script.stem} | {seconds[script.stem]:.2f} | {heavy} |", end="")
        print(_before(before, script.stem, repeats))
    return seconds


STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")


def job_times(workdir: Path) -> list[tuple[str, float]]:
    """(rule, seconds) of every job of the newest Snakemake log in ``workdir`` (1 s steps)."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        raise SystemExit(f"{workdir}: no Snakemake log in .snakemake/log (not a run's folder?)")
    log = logs[-1]
    now, rule, started, jobs = None, None, {}, []
    for line in log.read_text().splitlines():
        if m := STAMP.match(line.strip()):
            now = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"^(?:local)?rule (\w+):$", line.strip()):
            rule = m.group(1)
        elif m := re.match(r"^jobid: (\d+)$", line.strip()):
            started[m.group(1)] = (rule, now)
        elif m := re.match(r"^Finished jobid: (\d+)", line.strip()):
            name, begin = started.pop(m.group(1))
            jobs.append((name, (now - begin).total_seconds()))
    return jobs


def jobs_table(workdir: Path, seconds: dict[str, float]) -> None:
    jobs = job_times(workdir)
    by_kind: dict[str, list] = defaultdict(lambda: [0, 0.0, 0.0])
    for rule, s in jobs:
        row = by_kind[kind(rule)]
        row[0] += 1
        row[1] += s
        row[2] += seconds.get(rule, 0.0)  # a rule without a script (all) imports nothing
    print("\n| kind of job | jobs | job seconds (sum) | of which imports (sum) |")
    print("| --- | --- | --- | --- |")
    for name, (n, s, imp) in sorted(by_kind.items()):
        print(f"| {name} | {n} | {s:.0f} | {imp:.0f} |")
    total = sum(s for _, s in jobs)
    print(f"| all | {len(jobs)} | {total:.0f} | {sum(r[2] for r in by_kind.values()):.0f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["imports", "jobs"])
    parser.add_argument("workdir", nargs="?", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkout", type=Path, default=REPO, help="another checkout")
    parser.add_argument("--before", type=Path, help="a checkout to measure beside it")
    args = parser.parse_args(argv)
    if args.what == "jobs" and args.workdir is None:
        parser.error("jobs needs the folder of a finished run (WORKDIR)")
    before = args.before.resolve() if args.before else None
    seconds = imports_table(args.checkout.resolve(), args.repeats, before)
    if args.what == "jobs":
        jobs_table(args.workdir, seconds)


if __name__ == "__main__":
    main()
