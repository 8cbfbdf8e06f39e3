"""Planning a large experiment: 20 runs x 3 seeds x 5 folds (300 training jobs) at NIH scale.

    .venv/bin/python bench/bench_plan.py [--runs 20] [--seeds 3] [--folds 5] [--workdir DIR]

The NIH-layout placeholder folder of ``bench_scale.py`` (the real 112,120-row
``Data_Entry_2017.csv``, one hard-linked 16x16 PNG per image), ``split.method: patient_kfold``
and ``--runs`` named runs (the four architectures in turn, each run with its own learning
rate) with ``--seeds`` seeds each and one comparison per pair of neighbouring runs. Times:

1. ``snakemake -n`` on the empty results folder (the whole study planned, every job listed);
2. after the data stages have run for real and every later output has been written as an empty
   placeholder and marked done with ``snakemake --touch`` (no training), a no-op dry run and a
   no-op rerun;
3. a dry run after adding one run (which jobs it plans).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml
from bench_scale import build_placeholders, timed

ARCHS = ("simple_cnn", "vgg_like", "resnet18", "densenet121")


def study(n_runs: int, seeds: int, folds: int, nih_dir: Path) -> dict:
    runs = [
        {"name": f"run{i:02d}_{ARCHS[i % 4]}", "arch": ARCHS[i % 4], "lr": 1e-4 * (1 + i)}
        for i in range(n_runs)
    ]
    names = [r["name"] for r in runs]
    return {
        "data": {"source": "nih", "nih_dir": str(nih_dir)},
        "preprocess": {"size": 32, "shards": 8, "threads": 1},
        "split": {"method": "patient_kfold", "folds": folds},
        "train": {"seeds": list(range(seeds))},
        "runs": runs,
        "compare": [[a, b] for a, b in zip(names, names[1:], strict=False)],
    }


def job_table(out: str) -> str:
    table = out[out.index("Job stats:") : out.index("total")].splitlines()
    return "\n".join("    " + line for line in table[1:] if line.strip())


def write_placeholders(wd: Path) -> int:
    """An empty file for every output the workflow would still build (``--summary``)."""
    _, out = timed(wd, "--summary")
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    missing = [r[0] for r in rows[1:] if len(r) > 4 and r[4] == "missing"]
    for path in missing:
        (wd / path).parent.mkdir(parents=True, exist_ok=True)
        (wd / path).touch()
    return len(missing)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    wd = args.workdir or Path(tempfile.mkdtemp(prefix="cxr14-plan-"))
    wd.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    n = build_placeholders(wd / "nih")
    print(f"placeholder NIH folder: {n} images ({time.perf_counter() - t:.1f} s) in {wd}")
    cfg = study(args.runs, args.seeds, args.folds, wd / "nih")
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    dt, out = timed(wd, "-n", "--quiet", "rules")
    print(f"snakemake -n, nothing built ({dt:.2f} s), plans:\n{job_table(out)}")
    folds = [f"results/splits/nih/fold{f}/oversample_index.npy" for f in range(1, args.folds + 1)]
    stats = [f"results/stats/nih/fold{f}/pixel_stats.json" for f in range(1, args.folds + 1)]
    dt, _ = timed(wd, *folds, *stats)
    print(f"data stages for real:             {dt:.1f} s")
    n_outputs = write_placeholders(wd)
    dt, _ = timed(wd, "--touch")
    print(f"snakemake --touch ({n_outputs} placeholder outputs): {dt:.1f} s")
    dt, out = timed(wd, "-n")
    assert "Nothing to be done" in out, out[-2000:]
    print(f"no-op dry run (snakemake -n):     {dt:.2f} s")
    dt, out = timed(wd)
    assert "Nothing to be done" in out, out[-2000:]
    print(f"no-op rerun (snakemake):          {dt:.2f} s")
    cfg["runs"].append({"name": "added", "arch": "resnet18", "freeze": "none"})
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    dt, out = timed(wd, "-n", "--quiet", "rules")
    print(f"after adding one run, snakemake -n ({dt:.2f} s) plans:\n{job_table(out)}")


if __name__ == "__main__":
    main()
