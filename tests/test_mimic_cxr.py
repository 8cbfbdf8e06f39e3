"""The MIMIC-CXR-JPG layout on its synthetic copy (the real files are credentialed), and its
errors on bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxr14 import DataError
from cxr14.entries import build_entries, write_official_lists
from cxr14.layouts import get_layout
from cxr14.layouts.chexpert import LABELS
from cxr14.layouts.mimic_cxr import LABEL_FILES, METADATA, SPLIT, official_lists, read_mimic
from cxr14.metadata import read_image_list
from cxr14.synthetic import generate


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mimic")
    generate(out, n_images=100, image_size=48, seed=4, writer="cxr14.synthetic_mimic_cxr")
    return out


def _files(d: Path, labeller="chexpert", patients=True) -> dict[str, str]:
    files = {"metadata": d / METADATA, "labels": d / LABEL_FILES[labeller], "split": d / SPLIT}
    return files | ({"patients": d / "patients.csv.gz"} if patients else {})


def _rewrite(src: Path, dst: Path, edit) -> Path:
    lines = gzip.decompress(src.read_bytes()).decode().splitlines()
    dst.write_bytes(gzip.compress(("\n".join(edit(lines)) + "\n").encode()))
    return dst


def test_synthetic_copy_has_mimics_published_format(release):
    meta = pd.read_csv(release / METADATA, dtype=str, keep_default_na=False)
    assert list(meta.columns[:5]) == [
        "dicom_id",
        "subject_id",
        "study_id",
        "PerformedProcedureStepDescription",
        "ViewPosition",
    ]
    assert meta["dicom_id"].str.fullmatch(r"([0-9a-f]{8}-){4}[0-9a-f]{8}").all()
    assert meta["StudyDate"].str.fullmatch(r"2[01]\d{6}").all()
    assert {"PA", "AP", "LATERAL", ""} == set(meta["ViewPosition"])
    labels = pd.read_csv(release / LABEL_FILES["negbio"], dtype=str, keep_default_na=False)
    assert list(labels.columns) == ["subject_id", "study_id", *sorted(LABELS)]
    assert set(labels[list(LABELS)].to_numpy().ravel()) == {"1.0", "0.0", "-1.0", ""}
    split = pd.read_csv(release / SPLIT)
    assert list(split.columns) == ["dicom_id", "study_id", "subject_id", "split"]
    assert set(split["split"]) == {"train", "validate", "test"}
    assert (split.groupby("subject_id")["split"].nunique() == 1).all()  # patient-disjoint
    first = meta.iloc[0]
    sid = first["subject_id"]
    jpg = release / f"files/p{sid[:2]}/p{sid}/s{first['study_id']}/{first['dicom_id']}.jpg"
    assert Image.open(jpg).format == "JPEG"


def test_every_image_gets_its_studys_labels_and_sex_and_age_from_mimic_iv(release):
    table = read_mimic(_files(release))
    meta = pd.read_csv(release / METADATA)
    assert len(table) == len(meta) and table["image"].is_monotonic_increasing
    labels = pd.read_csv(release / LABEL_FILES["chexpert"]).set_index(["subject_id", "study_id"])
    row = meta.iloc[3]
    got = table.set_index("image").loc[row["dicom_id"], list(LABELS)].to_numpy(float)
    want = labels.loc[(row["subject_id"], row["study_id"]), list(LABELS)].to_numpy(float)
    np.testing.assert_array_equal(got, want)
    assert set(table["sex"]) <= {"M", "F"} and table["age_years"].notna().all()
    assert "unknown" in set(table["view"])  # a blank ViewPosition
    without = read_mimic(_files(release, patients=False))
    assert without["age_years"].isna().all() and (without["sex"] == "").all()
    first = table.iloc[0]
    assert first["path"] == (
        f"files/p{str(first['patient'])[:2]}/p{first['patient']}/"
        f"s{meta.set_index('dicom_id').loc[first['image'], 'study_id']}/{first['image']}.jpg"
    )


def test_parse_stage_finds_the_jpegs_and_writes_the_official_split(release, tmp_path):
    table = build_entries(
        "mimic_cxr",
        release,
        release / METADATA,
        "error",
        tmp_path / "e.csv",
        tmp_path / "m.csv",
        ["PA", "AP"],
        files=_files(release),
    )
    assert table["path"].map(lambda p: (release / p).is_file()).all()
    write_official_lists("mimic_cxr", _files(release), tmp_path / "tv.txt", tmp_path / "t.txt")
    split = pd.read_csv(release / SPLIT)
    assert read_image_list(tmp_path / "t.txt") == sorted(
        split.loc[split.split == "test", "dicom_id"]
    )


def test_bad_files_name_file_line_and_column(release, tmp_path):
    bad = _rewrite(
        release / LABEL_FILES["chexpert"],
        tmp_path / "labels.csv.gz",
        lambda lines: [lines[0], lines[1], lines[2].rsplit(",", 1)[0] + ",yes", *lines[3:]],
    )
    with pytest.raises(DataError, match=r"labels.csv.gz, line 3, column 'Support Devices'"):
        read_mimic({**_files(release), "labels": bad})
    twice = _rewrite(release / METADATA, tmp_path / "meta.csv.gz", lambda rows: [*rows, rows[1]])
    with pytest.raises(DataError, match=r"line \d+: image .* listed twice"):
        read_mimic({**_files(release), "metadata": twice})
    split = _rewrite(release / SPLIT, tmp_path / "split.csv.gz", lambda rows: [*rows, "x,1,2,val"])
    with pytest.raises(DataError, match=r"column 'split': 'val' is none of train, validate"):
        official_lists({"split": split})
    no_view = _rewrite(
        release / METADATA,
        tmp_path / "m2.csv.gz",
        lambda rows: [rows[0].replace("ViewPosition", "V")],
    )
    with pytest.raises(DataError, match="missing column.*'ViewPosition'"):
        read_mimic({**_files(release), "metadata": no_view})


def test_missing_files_are_named_with_their_keys(tmp_path):
    config = {
        "data": {"mimic_dir": str(tmp_path), "mimic_labels": "negbio", "mimic_patients_csv": "p"},
        "split": {"method": "official"},
    }
    missing = get_layout("mimic_cxr").missing_paths(config)
    assert any(m.startswith("data.mimic_labels: file") and "negbio" in m for m in missing)
    assert any(m.startswith("data.mimic_patients_csv: file p ") for m in missing)
