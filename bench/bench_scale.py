"""Snakemake's own overhead at full scale: dry run and no-op rerun with 112,120 NIH images, or
223,414 CheXpert rows.

    .venv/bin/python bench/bench_scale.py [--shards 32] [--workdir DIR]
    .venv/bin/python bench/bench_scale.py --layout chexpert [--shards 32]

With ``--layout chexpert``: the real CheXpert ``train.csv`` (../shared/data/chexpert), one
placeholder JPEG per row (hard links in its patient/study folders), ``data.source: chexpert``,
a patient-wise random split; it times the dry runs (also of a 5-fold plan, which counts the
patients of the whole file before any job) and the data stages on the 191,027 frontal images.

Builds an NIH-layout folder from the real ``Data_Entry_2017.csv`` (and split lists) with one
placeholder per image: hard links to a single 16x16 grayscale PNG, so the folder costs no disk
and every stage can really run. Then, with ``data.source: nih``, ``preprocess.size: 32`` (the
store stays small; DAG work does not depend on the size) and ``--cores 2``, it times:

1. ``snakemake -n`` on the empty results folder (the whole workflow planned);
2. the full run (every stage, for real, on 112,120 placeholder PNGs);
3. a no-op rerun (``snakemake``) and a no-op dry run (``snakemake -n``);
4. a dry run after changing an oversampling-only setting (shows which jobs would rerun).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from cxr14.testing.workflow import snakemake_command

REPO = Path(__file__).resolve().parents[1]
NIH = Path(os.environ.get("CXR14_NIH_SAMPLE", REPO.parent / "shared/data/nih"))
CHEXPERT = Path(os.environ.get("CXR14_CHEXPERT_SAMPLE", REPO.parent / "shared/data/chexpert"))


def build_placeholders(out: Path) -> int:
    (out / "images").mkdir(parents=True, exist_ok=True)
    for f in ("Data_Entry_2017.csv", "train_val_list.txt", "test_list.txt", "BBox_List_2017.csv"):
        (out / f).write_bytes((NIH / f).read_bytes())
    rows = (NIH / "Data_Entry_2017.csv").read_text().splitlines()[1:]
    names = [line.split(",", 1)[0] for line in rows]
    for i, n in enumerate(names):
        master = out / f"placeholder{i // 50_000}.png"  # file systems cap links per inode
        if not master.exists():
            Image.fromarray(np.full((16, 16), 128, np.uint8)).save(master)
        target = out / "images" / n
        if not target.exists():
            os.link(master, target)
    return len(names)


def build_chexpert_placeholders(out: Path) -> int:
    """A CheXpert release folder: the real train.csv and one hard-linked 16x16 JPEG per row."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.csv").write_bytes((CHEXPERT / "train.csv").read_bytes())
    rows = (CHEXPERT / "train.csv").read_text().splitlines()[1:]
    done = set()
    for i, line in enumerate(rows):
        target = out / line.split(",", 1)[0].split("/", 1)[1]
        master = out / f"placeholder{i // 50_000}.jpg"
        if not master.exists():
            Image.fromarray(np.full((16, 16), 128, np.uint8)).save(master)
        if target.parent not in done:
            target.parent.mkdir(parents=True, exist_ok=True)
            done.add(target.parent)
        if not target.exists():
            os.link(master, target)
    return len(rows)


def chexpert_scale(wd: Path, shards: int) -> None:
    t = time.perf_counter()
    n = build_chexpert_placeholders(wd / "CheXpert-v1.0-small")
    print(f"placeholder CheXpert folder: {n} rows ({time.perf_counter() - t:.1f} s) in {wd}")
    cfg = {
        "data": {"source": "chexpert", "chexpert_dir": str(wd / "CheXpert-v1.0-small")},
        "preprocess": {"size": 32, "shards": shards, "threads": 1},
        "runs": [{"name": "simple_cnn", "arch": "simple_cnn"}],
        "compare": [],
    }
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    dt, _ = timed(wd, "-n")
    print(f"snakemake -n (nothing built yet):     {dt:.2f} s")
    folds = {**cfg, "split": {"method": "patient_kfold", "folds": 5}}
    (wd / "config.yaml").write_text(yaml.safe_dump(folds))
    dt, _ = timed(wd, "-n")
    print(f"snakemake -n, 5 patient folds:        {dt:.2f} s (counts 64,540 patients first)")
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    targets = (
        "results/splits/chexpert/holdout/oversample_index.npy",
        "results/stats/chexpert/holdout/pixel_stats.json",
    )
    dt, _ = timed(wd, *targets)
    print(f"data stages on the placeholders:      {dt:.1f} s")
    dt, out = timed(wd, *targets)
    assert "Nothing to be done" in out, out[-2000:]
    print(f"no-op rerun of the data stages:       {dt:.2f} s")
    dt, _ = timed(wd, "-n")
    print(f"snakemake -n (data stages built):     {dt:.2f} s")


def timed(cwd: Path, *args: str) -> tuple[float, str]:
    cmd = snakemake_command(cwd, "--cores", "2", *args)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return dt, proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=32)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--layout", choices=("nih", "chexpert"), default="nih")
    args = ap.parse_args()
    wd = args.workdir or Path(tempfile.mkdtemp(prefix="cxr14-scale-"))
    wd.mkdir(parents=True, exist_ok=True)
    if args.layout == "chexpert":
        chexpert_scale(wd, args.shards)
        return
    t = time.perf_counter()
    n = build_placeholders(wd / "nih")
    print(f"placeholder NIH folder: {n} images ({time.perf_counter() - t:.1f} s) in {wd}")
    cfg = {
        "data": {"source": "nih", "nih_dir": str(wd / "nih")},
        "preprocess": {"size": 32, "shards": args.shards, "threads": 1},
        "split": {"method": "official"},
    }
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))

    dt, _ = timed(wd, "-n")
    print(f"snakemake -n (nothing built yet): {dt:.2f} s")
    dt, _ = timed(wd)
    print(f"full run on placeholders:         {dt:.1f} s")
    dt, out = timed(wd)
    assert "Nothing to be done" in out, out[-2000:]
    print(f"no-op rerun (snakemake):          {dt:.2f} s")
    dt, out = timed(wd, "-n")
    print(f"no-op dry run (snakemake -n):     {dt:.2f} s")
    cfg["oversample"] = {"threshold": 0.2}
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    dt, out = timed(wd, "-n", "--quiet", "rules")
    print(f"after changing oversample.threshold, snakemake -n plans ({dt:.2f} s):")
    table = out[out.index("Job stats:") : out.index("total")].splitlines()
    print("\n".join("    " + line for line in table[1:] if line.strip()))


if __name__ == "__main__":
    main()
