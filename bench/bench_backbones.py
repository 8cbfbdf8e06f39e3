"""Planning the backbones preset at NIH size: ``snakemake -n`` of config/nih.yaml and
config/backbones.yaml over the real NIH metadata.

    .venv/bin/python bench/bench_backbones.py [--workdir DIR]

The real ``Data_Entry_2017.csv`` (112,120 rows), split lists and boxes (../shared/data/nih, or
$CXR14_NIH_SAMPLE), no images: a dry run reads metadata only. The preset asks for ImageNet
weights of all four backbones, looked for before any job: empty placeholders in torchvision's
and the Hugging Face cache of the work folder (``cxr14.testing.weights``). Times the dry run
three times (the whole study planned, nothing built) and prints the planned jobs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import yaml
from bench_plan import job_table
from bench_scale import NIH, timed
from snakemake.utils import update_config

from cxr14.testing.weights import placeholder_caches

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    wd = args.workdir or Path(tempfile.mkdtemp(prefix="cxr14-backbones-"))
    nih = wd / "nih"
    (nih / "images").mkdir(parents=True, exist_ok=True)
    for f in ("Data_Entry_2017.csv", "train_val_list.txt", "test_list.txt", "BBox_List_2017.csv"):
        (nih / f).write_bytes((NIH / f).read_bytes())
    os.environ.update(placeholder_caches(wd / "caches"))
    # The two presets merged as `--configfile config/nih.yaml config/backbones.yaml` does.
    cfg = yaml.safe_load((REPO / "config" / "nih.yaml").read_text())
    update_config(cfg, yaml.safe_load((REPO / "config" / "backbones.yaml").read_text()))
    update_config(cfg, {"data": {"nih_dir": str(nih)}})
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    times = []
    for _ in range(3):
        dt, out = timed(wd, "-n", "--quiet", "rules")
        times.append(dt)
    print(f"snakemake -n of nih.yaml + backbones.yaml ({len(cfg['runs'])} runs), nothing built:")
    print("  " + ", ".join(f"{t:.2f} s" for t in times) + "; plans:")
    print(job_table(out))


if __name__ == "__main__":
    main()
