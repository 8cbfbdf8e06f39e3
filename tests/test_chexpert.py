"""The CheXpert layout: the real train.csv (223,414 rows), its splits, bad input, and the
synthetic copy in its exact format."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxr14 import DataError
from cxr14.entries import build_entries, write_official_lists
from cxr14.layouts.chexpert import LABELS, read_chexpert_csv, read_metadata
from cxr14.metadata import label_targets, read_image_list
from cxr14.splits import make_splits
from cxr14.synthetic import generate
from cxr14.testing.workflow import REPO

CHEXPERT_DIR = Path(os.environ.get("CXR14_CHEXPERT_SAMPLE", REPO.parent / "shared/data/chexpert"))
HEADER = (
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,"
    "Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,"
    "Pleural Effusion,Pleural Other,Fracture,Support Devices"
)
ROW = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP"


@pytest.fixture(scope="module")
def real_table():
    path = CHEXPERT_DIR / "train.csv"
    if not path.is_file():
        pytest.skip(f"real CheXpert train.csv not found at {path} (set CXR14_CHEXPERT_SAMPLE)")
    return read_chexpert_csv(path)


def test_real_train_csv_parses_with_views_and_raw_values_kept(real_table):
    t = real_table
    assert len(t) == 223_414 and t["patient"].nunique() == 64_540
    assert list(t.columns[-14:]) == list(LABELS)
    # Counts as documented in the shared README (shared/data/chexpert/README.md).
    assert t["view"].value_counts().to_dict() == {
        "AP": 161_590,
        "Lateral": 32_387,
        "PA": 29_420,
        "LL": 16,
        "RL": 1,
    }
    assert t["sex"].value_counts(dropna=False).to_dict() == {"M": 132_636, "F": 90_777, "": 1}
    assert t["age_years"].between(0, 90).all()
    atelectasis = t["Atelectasis"]
    assert (atelectasis == -1).sum() == 33_739 and (atelectasis == 1).sum() == 33_376
    assert set(t["No Finding"].dropna()) == {1.0}  # only 1.0 or blank
    assert t["Atelectasis"].isna().sum() > 100_000  # blank: not mentioned
    assert t["image"].is_unique
    first = t.iloc[0]
    assert first["image"] == "patient00001_study1_view1_frontal"
    assert first["path"] == "train/patient00001/study1/view1_frontal.jpg"
    assert (first["patient"], first["follow_up"], first["view"]) == (1, 1, "AP")


def test_random_splits_of_the_real_file_leak_no_patient(real_table, tmp_path):
    labels = real_table.drop(columns="path")
    labels.to_csv(tmp_path / "labels.csv", index=False)
    out = make_splits(
        tmp_path / "labels.csv", tmp_path / "splits.csv", tmp_path / "counts.csv", "patient_random"
    )
    per_patient = out.groupby("patient")["split"].nunique()
    assert (per_patient == 1).all()
    share = out["split"].value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.8, abs=0.01)
    # Stratified on definite positives: every split has each class's share within a point.
    counts = pd.read_csv(tmp_path / "counts.csv", index_col=0)
    pct = counts.loc[list(LABELS), ["train_%", "val_%", "test_%"]]
    assert (pct.max(axis=1) - pct.min(axis=1)).max() < 1.0


def _write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "train.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


CELLS = ",".join(["1.0"] + [""] * 13)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (f"{ROW},{','.join(['2'] + [''] * 13)}", r"line 2, column 'No Finding': value '2'"),
        (
            f"{ROW},{','.join([''] * 5 + ['yes'] + [''] * 8)}",
            r"line 2, column 'Edema': value 'yes'",
        ),
        (f"../../etc/passwd,Female,68,Frontal,AP,{CELLS}", r"line 2, column 'Path'"),
        (f"{ROW.replace('Female', 'Woman')},{CELLS}", r"line 2, column 'Sex'"),
        (f"{ROW.replace(',68,', ',old,')},{CELLS}", r"line 2, column 'Age'"),
    ],
)
def test_bad_values_name_the_file_line_and_column(tmp_path, row, message):
    path = _write(tmp_path, f"{ROW},{CELLS}".replace("patient00001", "patient00009"), row)
    with pytest.raises(DataError, match=message.replace("line 2", "line 3")) as err:
        read_chexpert_csv(path)
    assert str(path) in str(err.value)


def test_missing_column_duplicate_image_and_shared_patients_are_refused(tmp_path):
    with pytest.raises(DataError, match="missing column.*'Pleural Effusion'"):
        read_chexpert_csv(_write(tmp_path, header=HEADER.replace("Pleural Effusion", "Effusion")))
    with pytest.raises(DataError, match="line 3: image .* listed twice"):
        read_chexpert_csv(_write(tmp_path, f"{ROW},{CELLS}", f"{ROW},{CELLS}"))
    train = _write(tmp_path, f"{ROW},{CELLS}")
    valid = ROW.replace("/train/", "/valid/").replace("view1", "view2")
    (tmp_path / "valid.csv").write_text(f"{HEADER}\n{valid},{CELLS}\n")
    with pytest.raises(DataError, match="share patient"):
        read_metadata(train)


@pytest.fixture(scope="module")
def synthetic_release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chexpert") / "CheXpert-v1.0-small"
    generate(out, n_images=120, image_size=64, seed=2, writer="cxr14.synthetic_chexpert")
    return out


def test_synthetic_copy_is_in_chexpert_exact_format(synthetic_release):
    d = synthetic_release
    for name in ("train.csv", "valid.csv"):
        text = (d / name).read_text()
        assert text.splitlines()[0] == HEADER and "\r" not in text and text.endswith("\n")
    raw = pd.read_csv(d / "train.csv", dtype=str, keep_default_na=False)
    values = set(raw[list(LABELS)].to_numpy().ravel())
    assert values == {"1.0", "0.0", "-1.0", ""}
    assert set(raw["No Finding"]) <= {"1.0", ""}
    assert raw["Path"].str.startswith("CheXpert-v1.0-small/train/patient").all()
    lateral = raw["Frontal/Lateral"] == "Lateral"
    assert lateral.any() and (raw.loc[lateral, "AP/PA"] == "").all()
    assert set(raw.loc[~lateral, "AP/PA"]) <= {"AP", "PA"}
    valid = pd.read_csv(d / "valid.csv", dtype=str, keep_default_na=False)
    assert set(valid[list(LABELS[1:])].to_numpy().ravel()) <= {"1.0", "0.0"}
    image = Image.open(d / raw["Path"][0].split("/", 1)[1])
    assert image.format == "JPEG" and image.mode == "L" and image.size == (51, 64)


def test_synthetic_copy_parses_and_locates_and_gives_the_official_split(
    synthetic_release, tmp_path
):
    d = synthetic_release
    table = build_entries(
        "chexpert",
        d,
        d / "train.csv",
        "error",
        tmp_path / "e.csv",
        tmp_path / "m.csv",
        ["PA", "AP"],
    )
    assert table["path"].map(lambda p: (d / p).is_file()).all()
    skipped = pd.read_csv(tmp_path / "m.csv")
    assert skipped["reason"].eq("view Lateral not in data.views").all() and len(skipped)
    files = {"metadata": d / "train.csv"}
    write_official_lists("chexpert", files, tmp_path / "tv.txt", tmp_path / "t.txt")
    test = read_image_list(tmp_path / "t.txt")
    valid = read_chexpert_csv(d / "valid.csv")
    assert test == valid["image"].tolist() and valid["patient"].min() > 64_540
    # Every policy's targets from the raw values the table keeps.
    y = label_targets(table[list(LABELS)], "ones", "unknown")
    assert np.isnan(y).any() and set(np.unique(y[~np.isnan(y)])) == {0.0, 1.0}


def test_a_missing_jpeg_is_named(synthetic_release, tmp_path):
    d = tmp_path / "release"
    shutil.copytree(synthetic_release, d)
    first = pd.read_csv(d / "train.csv")["Path"][0].split("/", 1)[1]
    (d / first).unlink()
    with pytest.raises(DataError, match="1 image.*not found under .*paths of its CSVs"):
        build_entries("chexpert", d, d / "train.csv", "error", tmp_path / "e", tmp_path / "m")
