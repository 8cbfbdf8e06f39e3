"""Fixtures for every test: the real NIH files in ../shared/data/nih and the tiny
configuration's data stages (helpers to import are in helpers.py and cxr14.testing)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cxr14.testing import hangguard
from cxr14.testing.workflow import DATA_TARGETS, REPO, snakemake, write_config

NIH_DIR = Path(os.environ.get("CXR14_NIH_SAMPLE", REPO.parent / "shared" / "data" / "nih"))


@pytest.fixture(scope="session")
def nih_dir() -> Path:
    """The real NIH metadata and 24 images; skipped where the shared folder is absent."""
    if not (NIH_DIR / "Data_Entry_2017.csv").is_file():
        pytest.skip(
            f"real NIH sample files not found at {NIH_DIR} (they sit in ../shared/data/nih "
            "beside the project's clone; set CXR14_NIH_SAMPLE to point elsewhere)"
        )
    return NIH_DIR


@pytest.fixture
def nih_copy(tmp_path, nih_dir) -> Path:
    """A writable NIH-layout folder: the real metadata rows of the 24 sample images."""
    import pandas as pd

    out = tmp_path / "nih"
    (out / "images").mkdir(parents=True)
    names = sorted(p.name for p in (nih_dir / "images").glob("*.png"))
    for n in names:
        shutil.copy(nih_dir / "images" / n, out / "images" / n)
    raw = (nih_dir / "Data_Entry_2017.csv").read_bytes().split(b"\r\n")
    keep = [raw[0]] + [line for line in raw[1:] if line.split(b",")[0].decode() in names]
    (out / "Data_Entry_2017.csv").write_bytes(b"\r\n".join(keep) + b"\r\n")
    assert len(pd.read_csv(out / "Data_Entry_2017.csv", index_col=False)) == len(names)
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """The data stages of the tiny configuration, run once: train()'s path arguments."""
    wd = tmp_path_factory.mktemp("tiny")
    write_config(wd, {"synthetic": {"n_images": 160}, "preprocess": {"size": 64}})
    snakemake(wd, *DATA_TARGETS, guard=hangguard.PARTIAL_RUN)
    r = wd / "results"
    return {
        "store_h5": r / "hdf5/synthetic/images_64.h5",
        "labels_csv": r / "metadata/synthetic/labels.csv",
        "splits_csv": r / "splits/synthetic/holdout/splits.csv",
        "index_npy": r / "splits/synthetic/holdout/oversample_index.npy",
        "average_npy": r / "stats/synthetic/holdout/average_image.npy",
        "stats_json": r / "stats/synthetic/holdout/pixel_stats.json",
    }
