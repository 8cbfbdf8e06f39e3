"""Peak memory of one store shard job as the number of JPEGs grows (it must stay flat).

    .venv/bin/python bench/bench_store_memory.py [--sizes 1000 4000 16000] [--threads 2]

Each size runs ``cxr14.store.downsample_shard`` on that many CheXpert-sized JPEGs (390x320,
8-bit, hard links to one file so the folder costs no disk) to 256x256, in a fresh Python process,
and reports its peak resident memory (``ru_maxrss``) and throughput. The shard streams rows into
HDF5 in blocks and keeps at most ``4 * threads`` decoded images in flight, so memory should not
depend on the number of images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHILD = """
import json, resource, sys, time
from cxr14.store import downsample_shard
entries, folder, out, threads = sys.argv[1:5]
t = time.perf_counter()
n = downsample_shard(entries, folder, 0, 1, out, 256, threads=int(threads), formats=("JPEG",))
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": n, "seconds": dt, "peak_mb": peak}))
"""


def folder_of(n: int, root: Path) -> Path:
    """``n`` JPEG paths (hard links) and their entries.csv under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    master = root / "master.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (390, 320), dtype=np.uint8)).save(master, quality=95)
    lines = ["image,path"]
    for i in range(n):
        rel = f"train/patient{i:05d}/study1/view1_frontal.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if not (root / rel).exists():
            os.link(master, root / rel)
        lines.append(f"patient{i:05d}_study1_view1_frontal,{rel}")
    (root / "entries.csv").write_text("\n".join(lines) + "\n")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cxr14-store-mem-"))
    print("| JPEGs | peak RSS (MB) | images/s |")
    print("| --- | --- | --- |")
    for n in args.sizes:
        root = folder_of(n, tmp / str(n))
        cmd = [sys.executable, "-c", CHILD, str(root / "entries.csv"), str(root)]
        cmd += [str(root / "shard.h5"), str(args.threads)]
        result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        assert result["n"] == n
        print(f"| {n} | {result['peak_mb']:.0f} | {n / result['seconds']:.0f} |")


if __name__ == "__main__":
    main()
