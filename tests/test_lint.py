"""The workflow and the code stay clean: snakemake --lint, snakefmt, ruff; pins agree."""

from __future__ import annotations

import re
import sys

import yaml

from cxr14.testing import hangguard
from cxr14.testing.workflow import REPO, planned_jobs, write_config


def _run(*cmd):
    return hangguard.run(list(cmd), cwd=REPO, guard=hangguard.DRY_RUN)


def test_snakemake_lint():
    proc = _run(sys.executable, "-m", "snakemake", "--lint", "--cores", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_snakefmt():
    proc = _run(sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff():
    check = _run(sys.executable, "-m", "ruff", "check", ".")
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_conda_env_pins_match_requirements():
    pins = {
        line.strip()
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    env = yaml.safe_load((REPO / "envs/cxr14.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) == pins
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][^ ]*", p) for p in pins)


def test_the_container_image_installs_the_pinned_environment():
    """The Dockerfile installs requirements.txt itself (so its pins are those), on the Python of
    envs/cxr14.yaml, and the package editable from the tree (provenance names its commit)."""
    docker = (REPO / "Dockerfile").read_text()
    python = next(
        d
        for d in yaml.safe_load((REPO / "envs/cxr14.yaml").read_text())["dependencies"]
        if isinstance(d, str) and d.startswith("python")
    )
    assert re.search(r"^FROM python:(\S+)-slim", docker, re.M).group(1) == python.split("=")[-1]
    assert "COPY requirements.txt ./\nRUN pip install --no-cache-dir -r requirements.txt" in docker
    assert "pip install --no-cache-dir --no-deps -e ." in docker
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {"results/", ".venv/", "*.pt"} <= set(ignored) and ".git/" not in ignored


def test_every_rule_has_a_log_and_a_script_of_its_name():
    rules = {}
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", smk.read_text(), re.S | re.M):
            rules[m.group(1)] = m.group(2)
    assert len(rules) >= 10
    for name, body in rules.items():
        assert "log:" in body, name
        assert "threads:" in body, name  # what the job may use: no oversubscription
        assert f'script:\n        "../scripts/{name}.py"' in body, name
        assert (REPO / "workflow/scripts" / f"{name}.py").is_file(), name


def test_lint_and_dry_run_with_the_slurm_profile(tmp_path):
    """Both work on a machine without SLURM: a dry look at what would be submitted."""
    lint = _run(sys.executable, "-m", "snakemake", "--lint", "--profile", "profiles/slurm")
    assert "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    write_config(tmp_path)
    jobs = planned_jobs(tmp_path, "--profile", str(REPO / "profiles/slurm"))
    assert jobs["downsample_images"] == 3 and jobs["train_model"] == 4
    # Every run x fold x seed is its own (GPU) job.
    write_config(
        tmp_path,
        {"split": {"method": "patient_kfold", "folds": 3}, "train": {"seeds": [0, 1]}},
    )
    jobs = planned_jobs(tmp_path, "--profile", str(REPO / "profiles/slurm"))
    assert jobs["train_model"] == 4 * 3 * 2 and jobs["make_splits"] == 3
