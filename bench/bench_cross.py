"""Planning the cross-data-set preset at full size: ``snakemake -n`` of config/cross_dataset.yaml
over NIH's, CheXpert's and a MIMIC-CXR-sized metadata.

    .venv/bin/python bench/bench_cross.py [--mimic-studies 227835] [--workdir DIR]

NIH: the real ``Data_Entry_2017.csv``, split lists and boxes (../shared/data/nih; 112,120 rows);
CheXpert: the real ``train.csv`` (223,414 rows); MIMIC-CXR-JPG: its four tables drawn by the
synthetic MIMIC writer at the release's study count (227,835 studies; the real files are
credentialed), without images. A dry run reads metadata only, so no image is written. Times
the dry run (the whole study planned, nothing built) and prints the planned jobs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml
from bench_plan import job_table
from bench_scale import CHEXPERT, NIH, timed

from cxr14.layouts.synthetic import MAX_IMAGES_PER_PATIENT, sample_metadata
from cxr14.synthetic_mimic_cxr import write_tables
from cxr14.testing.weights import placeholder_caches

REPO = Path(__file__).resolve().parents[1]


def folders(wd: Path, mimic_studies: int) -> dict:
    """The three release folders; returns the ``datasets`` keys that name them."""
    nih, chexpert, mimic = wd / "nih", wd / "CheXpert-v1.0-small", wd / "mimic-cxr-jpg"
    (nih / "images").mkdir(parents=True, exist_ok=True)
    for f in ("Data_Entry_2017.csv", "train_val_list.txt", "test_list.txt", "BBox_List_2017.csv"):
        (nih / f).write_bytes((NIH / f).read_bytes())
    chexpert.mkdir(parents=True, exist_ok=True)
    (chexpert / "train.csv").write_bytes((CHEXPERT / "train.csv").read_bytes())
    if not (mimic / "mimic-cxr-2.0.0-split.csv.gz").exists():
        meta = sample_metadata(mimic_studies, 0.04, MAX_IMAGES_PER_PATIENT, 0.02, 0)
        write_tables(mimic, meta, 1024, 0)
    return {
        "nih": {"nih_dir": str(nih)},
        "chexpert": {"chexpert_dir": str(chexpert)},
        "mimic": {"mimic_dir": str(mimic), "mimic_patients_csv": str(mimic / "patients.csv.gz")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mimic-studies", type=int, default=227_835)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    wd = args.workdir or Path(tempfile.mkdtemp(prefix="cxr14-cross-"))
    wd.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    datasets = folders(wd, args.mimic_studies)
    print(f"three metadata folders in {wd} ({time.perf_counter() - t:.1f} s)")
    cfg = yaml.safe_load((REPO / "config" / "cross_dataset.yaml").read_text())
    for name, keys in datasets.items():
        cfg["datasets"][name].update(keys)
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    # The preset asks for ImageNet weights, looked for before any job: a dry run needs the
    # files, not their contents (empty placeholders in caches of the work folder).
    os.environ.update(placeholder_caches(wd / "caches"))
    dt, out = timed(wd, "-n", "--quiet", "rules")
    print(f"snakemake -n of config/cross_dataset.yaml, nothing built: {dt:.2f} s; plans:")
    print(job_table(out))


if __name__ == "__main__":
    main()
