"""Per-job scheduling overhead through SLURM vs. local execution, on this machine.

    .venv/bin/python bench/bench_slurm.py [--shards 8]

Starts the one-node test cluster (cxr14/testing/slurm.py; needs root and Debian's munge and
slurm packages), then runs the data stages of a small synthetic configuration (40 images at
128x128, `preprocess.shards` jobs) twice from scratch: locally (`--cores 2`) and through
`--profile profiles/slurm`. Reports wall time, job count and the extra seconds per job.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cxr14.testing import slurm as slurm_cluster
from cxr14.testing.workflow import DATA_TARGETS, REPO, snakemake_command, write_config


def run(wd: Path, env, *args) -> tuple[float, int]:
    shutil.rmtree(wd / "results", ignore_errors=True)
    shutil.rmtree(wd / ".snakemake", ignore_errors=True)
    cmd = snakemake_command(wd, *args, *DATA_TARGETS)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    out = proc.stdout + proc.stderr
    if proc.returncode:
        sys.exit(out[-3000:])
    return dt, int(re.findall(r"of (\d+) steps \(100%\) done", out)[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=8)
    args = ap.parse_args()
    wd = Path(tempfile.mkdtemp(prefix="cxr14-slurm-bench-"))
    write_config(
        wd,
        {"synthetic": {"n_images": 40, "image_size": 128}, "preprocess": {"shards": args.shards}},
    )
    local, n = run(wd, None, "--cores", "2")
    with slurm_cluster.cluster(wd / "cluster") as env:
        slurm, n2 = run(wd, env, "--profile", str(REPO / "profiles/slurm"), *slurm_cluster.FIT_NODE)
    print(f"{n} jobs ({args.shards} shards), 2 CPUs")
    print(f"local (--cores 2):          {local:6.1f} s")
    print(f"through SLURM (sbatch):     {slurm:6.1f} s")
    print(f"extra per job through SLURM: {(slurm - local) / n:.1f} s")
    assert n == n2


if __name__ == "__main__":
    main()
