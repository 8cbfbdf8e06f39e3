"""The project's workflow run by tests and benchmarks: a tiny configuration, its config file,
and Snakemake under a hang guard."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from cxr14.testing import hangguard

REPO = Path(__file__).resolve().parents[3]

# A tiny configuration (a --configfile over config/config.yaml): the whole data pipeline runs
# in seconds.
TINY_CONFIG = {
    "data": {"source": "synthetic"},
    "synthetic": {"n_images": 60, "image_size": 128, "seed": 3},
    "preprocess": {"size": 32, "shards": 3, "threads": 1, "on_bad_image": "error"},
    "average_image": {"over": "train"},
    "split": {"method": "patient_random", "seed": 1},
    "oversample": {"enabled": True},
    "train": {
        "threads": 2,
        "epochs": 2,
        "milestones": [1],
        "input_size": 32,
        "batch_size": 8,
        "device": "cpu",
    },
    # Merged over config/config.yaml's models sections: their demo epochs are set back too.
    "models": {
        "simple_cnn": {"epochs": 2, "milestones": [1]},
        "vgg_like": {"widths": [4, 8], "fc": 16},
        "resnet18": {"weights": "none", "epochs": 2},
        "densenet121": {"weights": "none", "epochs": 1, "milestones": [1]},
    },
    "runs": [
        {"name": "simple_cnn", "arch": "simple_cnn"},
        {"name": "vgg_like", "arch": "vgg_like"},
        {"name": "resnet18", "arch": "resnet18"},
        {"name": "densenet121", "arch": "densenet121"},
    ],
    "compare": [],
    "eval": {"bootstrap": 20, "cam_images": 2, "device": "cpu"},
}

DATA_TARGETS = (
    "results/splits/synthetic/holdout/oversample_index.npy",
    "results/stats/synthetic/holdout/pixel_stats.json",
)


def write_config(workdir: Path, overrides: dict | None = None, base: dict | None = None) -> Path:
    """Write a config file into ``workdir``; ``overrides`` are merged one level deep (lists,
    such as ``runs`` and ``compare``, are replaced)."""
    cfg = {k: dict(v) if isinstance(v, dict) else list(v) for k, v in (base or TINY_CONFIG).items()}
    for k, v in (overrides or {}).items():
        if isinstance(v, dict):
            cfg.setdefault(k, {}).update(v)
        else:
            cfg[k] = v
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command that runs the project's workflow in ``workdir`` with its config.yaml."""
    config = ["--configfile", str(workdir / "config.yaml")]  # takes every word up to "-s"
    return [sys.executable, "-m", "snakemake", *config, "-s", str(REPO / "Snakefile"), *args]


def snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    guard: hangguard.Guard = hangguard.DRY_RUN,
    env: dict | None = None,
):
    """Run the project's workflow in ``workdir`` with ``workdir/config.yaml`` on 2 cores
    under ``guard`` (cxr14.testing.hangguard): pass the one for what the run builds."""
    cmd = snakemake_command(workdir, "--cores", "2", *args)
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    return hangguard.run(cmd, cwd=workdir, env=env, guard=guard, check=check)


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Job counts per rule of a dry run (empty when there is nothing to do)."""
    proc = snakemake(workdir, *args, "-n", "--quiet", "rules")  # --quiet takes several words
    jobs: dict[str, int] = {}
    in_table = False
    for line in (proc.stdout + proc.stderr).splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] != "total":
                jobs[parts[0]] = int(parts[1])
    return jobs
