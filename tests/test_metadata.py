"""Parsers of the NIH metadata files, on the real 112,120-row release and on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr14 import DataError
from cxr14.entries import build_entries
from cxr14.layouts.nih import LABELS, find_pngs, parse_age, read_bbox_list, read_data_entry
from cxr14.metadata import read_image_list

# Per-class image counts of Data_Entry_2017.csv, as documented by NIH (shared README).
NIH_COUNTS = {
    "Atelectasis": 11535,
    "Cardiomegaly": 2772,
    "Consolidation": 4667,
    "Edema": 2303,
    "Effusion": 13307,
    "Emphysema": 2516,
    "Fibrosis": 1686,
    "Hernia": 227,
    "Infiltration": 19870,
    "Mass": 5746,
    "Nodule": 6323,
    "Pleural_Thickening": 3385,
    "Pneumonia": 1353,
    "Pneumothorax": 5298,
}


@pytest.fixture(scope="module")
def table_2017(nih_dir):
    return read_data_entry(nih_dir / "Data_Entry_2017.csv")


def test_real_2017_release(table_2017):
    t = table_2017
    assert len(t) == 112_120
    assert list(t.columns[:6]) == ["image", "patient", "follow_up", "view", "age_years", "sex"]
    assert list(t.columns[6:]) == list(LABELS)
    assert t[list(LABELS)].sum().to_dict() == NIH_COUNTS
    assert (t[list(LABELS)].sum(axis=1) == 0).sum() == 60_412  # No Finding
    assert t["patient"].nunique() == 30_805
    assert t.groupby("patient").size().max() == 184
    assert t["image"].is_monotonic_increasing
    assert set(t["view"]) == {"PA", "AP"} and set(t["sex"]) == {"M", "F"}
    # 058Y -> 58; months and days are converted; the 16 impossible ages become missing.
    row = t.set_index("image").loc["00000001_000.png"]
    assert row["age_years"] == 58 and row["patient"] == 1 and row["Cardiomegaly"] == 1
    assert t["age_years"].isna().sum() == 16
    assert t["age_years"].max() <= 120 and t["age_years"].min() > 0


def test_2020_release_layout_gives_the_same_table(tmp_path, nih_dir, table_2017):
    """LF endings, integer ages, rows re-ordered by patient, renumbered follow-ups."""
    raw = pd.read_csv(nih_dir / "Data_Entry_2017.csv", dtype=str, index_col=False)
    raw = raw.drop(columns=[c for c in raw.columns if c.startswith("Unnamed")])
    raw["Patient Age"] = raw["Patient Age"].str.extract(r"(\d+)Y")[0].fillna("0")
    raw["Patient Age"] = raw["Patient Age"].astype(int).astype(str)
    raw = raw.sample(frac=1, random_state=0).sort_values("Patient ID", kind="stable")
    raw["Follow-up #"] = raw.groupby("Patient ID").cumcount().astype(str)
    path = tmp_path / "Data_Entry_2017_v2020.csv"
    raw.to_csv(path, index=False, lineterminator="\n")
    t = read_data_entry(path)
    assert t["image"].tolist() == table_2017["image"].tolist()
    np.testing.assert_array_equal(t[list(LABELS)], table_2017[list(LABELS)])
    assert t["patient"].equals(table_2017["patient"])


@pytest.mark.parametrize(
    "value, years",
    [("058Y", 58), ("011M", 11 / 12), ("001D", 1 / 365.25), ("58", 58), ("", np.nan)],
)
def test_parse_age(value, years):
    np.testing.assert_allclose(parse_age(value), years)


def test_split_lists_and_boxes(nih_dir, table_2017):
    train_val = read_image_list(nih_dir / "train_val_list.txt")
    test = read_image_list(nih_dir / "test_list.txt")
    assert (len(train_val), len(test)) == (86_524, 25_596)
    assert set(train_val) | set(test) == set(table_2017["image"])
    boxes = read_bbox_list(nih_dir / "BBox_List_2017.csv")
    assert len(boxes) == 984 and boxes["image"].nunique() == 880
    assert "Infiltration" in set(boxes["label"])  # spelled "Infiltrate" in the file
    assert set(boxes["label"]) <= set(LABELS)
    assert set(boxes["image"]) <= set(test)
    assert boxes[["x", "y", "w", "h"]].to_numpy().max() < 1024


def _write(tmp_path, text: str, name="Data_Entry_2017.csv"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", "\r\n").encode())
    return path


HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
    "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
)
ROW1 = "00000001_000.png,Cardiomegaly,000,00000001,058Y,M,PA,2682,2749,0.143,0.143\n"
ROW2 = "00000002_000.png,No Finding,000,00000002,081Y,M,PA,2500,2048,0.171,0.171\n"


def test_small_file_parses(tmp_path):
    t = read_data_entry(_write(tmp_path, HEADER + ROW1 + ROW2))
    assert t["image"].tolist() == ["00000001_000.png", "00000002_000.png"]
    assert t.loc[0, "Cardiomegaly"] == 1 and t.loc[1, list(LABELS)].sum() == 0


@pytest.mark.parametrize(
    "rows, match",
    [
        (
            ROW1 + ROW2.replace("No Finding", "Effusion|Lung Cancer"),
            r"line 3: unknown finding label 'Lung Cancer'",
        ),
        (ROW1 + ROW2.replace("No Finding", "No Finding|Mass"), r"line 3: 'No Finding' combined"),
        (ROW1 + ROW1, r"duplicate image name '00000001_000.png' on lines 2, 3"),
        (
            ROW1 + ROW2.replace("00000002_000.png", "../../etc/passwd", 1),
            r"line 3: image name '../../etc/passwd' .* escape",
        ),
        (ROW1 + ROW2.replace("00000002_000.png", "/abs/x.png", 1), r"line 3: .*escape"),
        (ROW1 + ROW2.replace(",081Y,", ",eighty,"), r"line 3: unreadable age 'eighty'"),
        (ROW1 + ROW2.replace(",00000002,", ",P2,"), r"line 3: patient 'P2' is not a number"),
        ("", r"no data rows"),
    ],
    ids=[
        "unknown-label",
        "no-finding-mixed",
        "duplicate",
        "escape-relative",
        "escape-absolute",
        "bad-age",
        "bad-patient",
        "no-rows",
    ],
)
def test_bad_metadata_names_the_line(tmp_path, rows, match):
    path = _write(tmp_path, HEADER + rows)
    with pytest.raises(DataError, match=match) as err:
        read_data_entry(path)
    assert str(path) in str(err.value)


def test_missing_columns_are_named(tmp_path):
    path = _write(tmp_path, "Image Index,Finding Labels\n00000001_000.png,Mass\n")
    with pytest.raises(DataError, match=r"missing column\(s\) 'Follow-up #', 'Patient ID'"):
        read_data_entry(path)


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_data_entry(_write(tmp_path, ""))


def test_bbox_unknown_label(tmp_path):
    path = tmp_path / "BBox_List_2017.csv"
    path.write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\nx.png,Tumour,1,2,3,4\n")
    with pytest.raises(DataError, match=r"line 2: unknown finding label 'Tumour'"):
        read_bbox_list(path)


def test_locate_images_in_both_layouts(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").touch()
    for k, n in ((1, "b.png"), (12, "c.png")):
        d = tmp_path / f"images_{k:03d}" / "images"
        d.mkdir(parents=True)
        (d / n).touch()
    assert find_pngs(tmp_path) == {
        "a.png": "images/a.png",
        "b.png": "images_001/images/b.png",
        "c.png": "images_012/images/c.png",
    }
    (tmp_path / "images_001" / "images" / "a.png").touch()
    with pytest.raises(DataError, match="'a.png' found twice"):
        find_pngs(tmp_path)


def test_build_entries_missing_image(tmp_path, nih_copy):
    (nih_copy / "images" / "00000003_004.png").unlink()
    args = ("nih", nih_copy, nih_copy / "Data_Entry_2017.csv")
    with pytest.raises(DataError, match=r"not found .* first: '00000003_004.png'"):
        build_entries(*args, "error", tmp_path / "e.csv", tmp_path / "m.csv")
    t = build_entries(*args, "skip", tmp_path / "e.csv", tmp_path / "m.csv")
    assert len(t) == 23 and "00000003_004.png" not in set(t["image"])
    missing = pd.read_csv(tmp_path / "m.csv")
    assert missing["image"].tolist() == ["00000003_004.png"]
    assert missing["reason"].tolist() == ["missing file"]


def test_views_are_filtered_before_anything_else_and_listed(tmp_path, nih_copy):
    meta = pd.read_csv(nih_copy / "Data_Entry_2017.csv", index_col=False)
    n_ap = int((meta["View Position"] == "AP").sum())
    assert 0 < n_ap < len(meta)  # the 24 real images hold both views
    # An AP image missing on disk does not matter once AP is left out.
    ap_image = meta.loc[meta["View Position"] == "AP", "Image Index"].iloc[0]
    (nih_copy / "images" / ap_image).unlink()
    args = ("nih", nih_copy, nih_copy / "Data_Entry_2017.csv", "error")
    t = build_entries(*args, tmp_path / "e.csv", tmp_path / "m.csv", views=["PA"])
    assert len(t) == len(meta) - n_ap and set(t["view"]) == {"PA"}
    missing = pd.read_csv(tmp_path / "m.csv")
    assert len(missing) == n_ap and (missing["reason"] == "view AP not in data.views").all()
    with pytest.raises(DataError, match="no image of the views"):
        build_entries(*args, tmp_path / "e.csv", tmp_path / "m.csv", views=["LL"])


def test_metadata_release_is_named_by_hash_or_format(nih_dir, nih_copy, tmp_path):
    from cxr14.layouts import LAYOUTS

    nih = LAYOUTS["nih"]
    assert nih.metadata_release(nih_dir / "Data_Entry_2017.csv").startswith("NIH 2017 release")
    # A subset in the 2017 format is not the original file; LF endings read as the 2020 format.
    assert "not the original file" in nih.metadata_release(nih_copy / "Data_Entry_2017.csv")
    lf = tmp_path / "Data_Entry_2017_v2020.csv"
    lf.write_bytes((nih_copy / "Data_Entry_2017.csv").read_bytes().replace(b",\r\n", b"\n", 1))
    assert nih.metadata_release(lf).startswith("2020 re-release format")
