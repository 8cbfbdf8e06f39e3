"""Where a result came from, as one record of plain values (JSON): the code (cxr14's version,
the git commit of the project's tree, whether it had uncommitted changes and a hash of them),
the resolved configuration and its hash, the data (each data set's metadata files with their
sha256, the image store's content hash) and the environment (Python, torch, torchvision, CUDA,
the device).

Training embeds the record in its checkpoints; bundles and model cards carry it on; `cxr14
predict` writes it beside its predictions; the report's landing page shows the record of the
invocation that made the report. Every job collects its own when it runs and nothing is written
at parse time, so a rerun that changes nothing plans no job and keeps every record.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import cxr14

# The project's tree: src/cxr14/ -> the repository root (an editable install or a clone).
REPO = Path(__file__).resolve().parents[2]


def sha256_file(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def config_sha256(config: dict) -> str:
    """A hash of a resolved configuration (keys sorted: the order in the file does not matter)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _git(repo: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, check=True, timeout=60
    ).stdout


def git_state(repo=REPO) -> dict:
    """``commit`` (None where ``repo`` is no git work tree), ``dirty`` (uncommitted changes or
    untracked files that are not ignored) and ``diff_sha256``: a hash of those changes (the
    diff against the commit, and each untracked file's name and content, or size when over
    ``UNTRACKED_CONTENT``), None when clean."""
    try:
        commit = _git(repo, "rev-parse", "HEAD").decode().strip()
        diff = _git(repo, "diff", "HEAD", "--binary")
        untracked = _git(repo, "ls-files", "--others", "--exclude-standard", "-z").split(b"\0")
    except (OSError, subprocess.SubprocessError):  # no git, not a work tree, no commit yet
        return {"commit": None, "dirty": None, "diff_sha256": None}
    digest = hashlib.sha256(diff)
    for name in sorted(n for n in untracked if n):
        digest.update(b"\0" + name + b"\0" + _untracked_digest(repo / name.decode()))
    dirty = bool(diff) or any(untracked)
    return {"commit": commit, "dirty": dirty, "diff_sha256": digest.hexdigest() if dirty else None}


# Untracked files up to this size are hashed by content, larger ones (data left in the tree)
# by size: the record is made at every parse of the workflow and must stay quick.
UNTRACKED_CONTENT = 1 << 20


def _untracked_digest(path: Path) -> bytes:
    """An untracked entry as the change hash sees it: a link by its target (git lists a link to
    a folder, e.g. a linked .venv, as one entry), a file by content or size."""
    if path.is_symlink():
        return b"link " + os.fsencode(os.readlink(path))
    try:
        size = path.stat().st_size
        if size > UNTRACKED_CONTENT or not path.is_file():
            return f"size {size}".encode()
        return bytes.fromhex(sha256_file(path))
    except OSError as exc:  # unreadable: named, never fatal to the workflow's parse
        return f"unreadable {exc.errno}".encode()


def environment(device=None) -> dict:
    """Versions of Python, torch and torchvision, and with ``device`` (a torch device or its
    name) the device's name and torch's CUDA version (without it, torch is not imported: the
    workflow's parse stays quick)."""
    env = {
        "python": sys.version.split()[0],
        "torch": version("torch"),
        "torchvision": version("torchvision"),
        "cuda": None,
        "device": None,
    }
    if device is not None:
        import torch

        device = torch.device(device)
        env["cuda"] = torch.version.cuda
        env["device"] = (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else f"cpu ({platform.processor() or platform.machine()})"
        )
    return env


def data_record(config: dict, names, stores) -> dict:
    """Per data set of ``names`` (its store in ``stores``): its layout, the files its metadata
    was parsed from with their sha256, and its store's ``content_sha256`` (None for a store
    merged before the store recorded it)."""
    import h5py

    from cxr14.layouts import get_layout
    from cxr14.settings import datasets

    configs = datasets(config)
    out = {}
    for name, store in zip(names, stores, strict=True):
        own = configs[name]
        files = get_layout(own["data"]["source"]).parse_inputs(own)
        with h5py.File(store, "r") as h5:
            content = h5.attrs.get("content_sha256")
        out[name] = {
            "layout": own["data"]["source"],
            # Files only: a layout may list its image folder (the synthetic ones do).
            "metadata": {str(f): sha256_file(f) for f in files.values() if Path(f).is_file()},
            "store": str(store),
            "store_sha256": None if content is None else str(content),
        }
    return out


def settings_of(config: dict) -> dict:
    """The configuration without the keys the workflow derives (``_``: this record itself)."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


def collect(config: dict | None = None, data: dict | None = None, device=None, repo=REPO) -> dict:
    """The record (see the module docstring): ``config`` the resolved configuration, ``data``
    each data set's files (``data_record``), ``device`` the device used (None: not recorded).
    The same tree, configuration, data and environment give the same record."""
    config = None if config is None else settings_of(config)
    return {
        "cxr14_version": cxr14.__version__,
        "git": git_state(repo),
        "config_sha256": None if config is None else config_sha256(config),
        "config": config,
        "data": data,
        "environment": environment(device),
    }


def rebuild_commands(bundle: dict, config_file: str = "config.yaml") -> list[str]:
    """Shell commands that rebuild a bundle's model: the commit, then the workflow with the
    recorded configuration (written to ``config_file`` by ``cxr14 provenance --config``)
    asking for the bundle. Data paths in it are the training machine's."""
    record = bundle["provenance"].get("record") or {}
    if not record.get("config"):
        raise ValueError("the bundle records no configuration (made before cxr14 kept one)")
    git = record["git"]
    lines = []
    if git["commit"]:
        lines.append(f"git checkout {git['commit']}")
        if git["dirty"]:
            lines.append(
                f"# the tree had uncommitted changes (diff sha256 {git['diff_sha256']}), "
                "which the record does not hold"
            )
    run = bundle["provenance"]["run"]
    lines.append(
        f"snakemake --cores 8 --resources gpu=1 --configfile {config_file} "
        f"results/models/{run}/bundle.pt"
    )
    return lines
