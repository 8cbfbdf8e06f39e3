"""Your own images through a CSV manifest: its format, every decoder, and each bad input named
by file, line and column before any training."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from cxr14 import DataError
from cxr14.dicom import load_image
from cxr14.entries import build_entries, write_boxes, write_expert_labels, write_official_lists
from cxr14.layouts.manifest import SyntheticManifest, read_manifest
from cxr14.metadata import read_image_list
from cxr14.splits import make_splits
from cxr14.store import downsample_shard
from cxr14.synthetic import generate

LABELS = list(SyntheticManifest.labels)
HEADER = "path,patient,study,view,sex,age,split,a,b"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("manifest")
    generate(out, n_images=40, image_size=48, seed=6, writer="cxr14.synthetic_manifest")
    return out


def test_every_format_is_decoded_into_the_store_as_predict_decodes_it(folder, tmp_path):
    entries = build_entries(
        "manifest",
        folder,
        folder / "manifest.csv",
        "error",
        tmp_path / "entries.csv",
        tmp_path / "missing.csv",
        ["PA", "AP"],
        options={"labels": LABELS},
    )
    suffixes = {Path(p).suffix for p in entries["path"]}
    assert suffixes == {".png", ".jpg", ".dcm"}
    store = tmp_path / "shard.h5"
    formats = ("PNG", "JPEG", "DICOM")
    n = downsample_shard(tmp_path / "entries.csv", folder, 0, 1, store, 32, formats=formats)
    assert n == len(entries)
    with h5py.File(store) as h5:
        for k in (0, 1, 2, 3):
            want = load_image(folder / entries["path"][k], 32, "bilinear")
            np.testing.assert_array_equal(h5["images"][k], want)
    with pytest.raises(DataError, match=r"\.(jpg|dcm): not a PNG file"):
        downsample_shard(tmp_path / "entries.csv", folder, 0, 1, tmp_path / "png.h5", 32)


def test_fixed_splits_boxes_and_expert_labels(folder, tmp_path):
    files = {"metadata": folder / "manifest.csv"}
    write_official_lists("manifest", files, *(tmp_path / f for f in ("tv", "t", "v")))
    table = read_manifest(folder / "manifest.csv", LABELS)
    labels = table.drop(columns=["path", "split"])
    labels.to_csv(tmp_path / "labels.csv", index=False)
    lists = {
        "train_val_list": tmp_path / "tv",
        "test_list": tmp_path / "t",
        "val_list": tmp_path / "v",
    }
    out = make_splits(
        tmp_path / "labels.csv", tmp_path / "s.csv", tmp_path / "c.csv", "official", **lists
    )
    assert (out["split"].to_numpy() == table["split"].to_numpy()).all()  # the manifest's own
    boxes = write_boxes("manifest", folder / "boxes.csv", 1, 256, tmp_path / "boxes.csv")
    assert boxes["image"].isin(table["image"]).all()
    assert boxes[["x", "y", "w", "h"]].to_numpy().max() <= 256
    expert = tmp_path / "expert.csv"
    expert.write_text(f"image,set_id,Effusion\n{table['path'][0]},test,1\n")
    got = write_expert_labels("manifest", expert, tmp_path / "e.csv")
    assert got["image"].tolist() == [table["image"][0]]
    assert read_image_list(tmp_path / "t") == sorted(table.loc[table.split == "test", "image"])


def _manifest(tmp_path: Path, *rows: str, header=HEADER) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD = "img/1.png,p1,0,PA,F,50,train,1,0"


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (["img/1.png,p1,1,0"], "path,patient,a,b", None),  # optional columns absent: fine
        ([GOOD], "path,a,b", r"missing column\(s\) 'patient'"),
        ([GOOD], "path,patient,study,view,sex,age,split,a", r"'b' .*data.labels names 'b'"),
        ([GOOD.replace(",1,0", ",2,0")], HEADER, r"line 2, column 'a': value '2'"),
        ([GOOD.replace(",1,0", ",1,yes")], HEADER, r"line 2, column 'b': value 'yes'"),
        ([GOOD.replace("img/1", "../x/1")], HEADER, r"line 2, column 'path': '../x/1.png' is"),
        ([GOOD.replace("img/1", "/abs/1")], HEADER, r"column 'path': '/abs/1.png' is empty or not"),
        ([GOOD.replace("img/1.png", "")], HEADER, r"line 2, column 'path': '' is empty"),
        ([GOOD, GOOD.replace("p1", "p2")], HEADER, r"line 3, column 'path': .* twice .*line 2"),
        ([GOOD, GOOD.replace("1.png", "2.png").replace("train", "test")], HEADER, "'p1' is in two"),
        ([GOOD, GOOD.replace("1.png", "2.png").replace("train", "")], HEADER, "line 3.*blank"),
        ([GOOD.replace(",F,", ",X,")], HEADER, r"line 2, column 'sex': 'X'"),
        ([GOOD.replace("train", "holdout")], HEADER, r"column 'split': 'holdout'"),
    ],
)
def test_bad_input_names_the_file_line_and_column(tmp_path, rows, header, message):
    path = _manifest(tmp_path, *rows, header=header)
    if message is None:
        table = read_manifest(path, ["a", "b"])
        assert table.loc[0, "view"] == "unknown" and table.loc[0, "image"] == "img__1.png"
        return
    with pytest.raises(DataError, match=message) as err:
        read_manifest(path, ["a", "b"])
    assert str(path) in str(err.value)


def test_text_patient_ids_are_numbered_and_uncertain_values_kept(tmp_path):
    rows = [GOOD, GOOD.replace("1.png", "2.png").replace("p1", "zz").replace(",1,0", ",-1,")]
    table = read_manifest(_manifest(tmp_path, *rows), ["a", "b"])
    assert table["patient"].tolist() == [1, 2]
    assert table.loc[1, "a"] == -1 and np.isnan(table.loc[1, "b"])
    assert isinstance(table, pd.DataFrame)
