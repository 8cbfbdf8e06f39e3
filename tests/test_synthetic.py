"""The synthetic data set: NIH layout, determinism and planted, boxed findings."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxr14.layouts.nih import LABELS, read_bbox_list, read_data_entry
from cxr14.metadata import read_image_list
from cxr14.synthetic import BASE, Anatomy, generate, render


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    generate(out, n_images=300, image_size=256, seed=5, workers=1)
    return out


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_exact_nih_layout(synth, nih_dir):
    names = sorted(p.name for p in synth.iterdir())
    assert names == [
        "BBox_List_2017.csv",
        "Data_Entry_2017.csv",
        "google2019_labels.csv",
        "images",
        "test_list.txt",
        "train_val_list.txt",
    ]
    ours = (synth / "Data_Entry_2017.csv").read_bytes()
    real = (nih_dir / "Data_Entry_2017.csv").read_bytes()
    assert ours.split(b"\r\n")[0] == real.split(b"\r\n")[0]  # same header, trailing comma
    assert ours.endswith(b"\r\n") and b"\n" not in ours.replace(b"\r\n", b"")
    real_box = (nih_dir / "BBox_List_2017.csv").read_text().splitlines()[0]
    assert (synth / "BBox_List_2017.csv").read_text().splitlines()[0] == real_box
    assert not (synth / "test_list.txt").read_text().endswith("\n")
    table = read_data_entry(synth / "Data_Entry_2017.csv")
    assert len(table) == 300 and table.groupby("patient").size().max() > 1
    assert (table[list(LABELS)].sum() > 0).all()  # every class present
    im = Image.open(synth / "images" / table["image"][0])
    assert im.mode == "L" and im.size == (256, 256)
    test, tv = (
        read_image_list(synth / "test_list.txt"),
        read_image_list(synth / "train_val_list.txt"),
    )
    assert sorted(test + tv) == table["image"].tolist()
    patients = table.set_index("image")["patient"]
    assert not set(patients[test]) & set(patients[tv])


def test_boxes_match_labels(synth):
    table = read_data_entry(synth / "Data_Entry_2017.csv").set_index("image")
    boxes = read_bbox_list(synth / "BBox_List_2017.csv")
    labelled = {(i, c) for i, row in table[list(LABELS)].iterrows() for c in LABELS if row[c]}
    assert set(zip(boxes["image"], boxes["label"], strict=True)) == labelled
    assert (boxes[["w", "h"]] > 0).all().all()
    assert (boxes["x"] >= 0).all() and (boxes["x"] + boxes["w"] <= 256 + 1e-6).all()


def test_deterministic_and_independent_of_workers(synth, tmp_path):
    generate(tmp_path, n_images=300, image_size=256, seed=5, workers=2)
    assert _digest(tmp_path) == _digest(synth)
    other = tmp_path / "other"
    generate(other, n_images=300, image_size=256, seed=6, workers=1)
    assert (other / "Data_Entry_2017.csv").read_bytes() != (
        synth / "Data_Entry_2017.csv"
    ).read_bytes()


@pytest.mark.parametrize("label", LABELS)
def test_each_finding_is_planted_inside_its_box(label):
    """The image with a finding differs from the same image without it mainly in the box."""
    for s in range(5):
        anatomy = Anatomy.sample(np.random.default_rng([0, s]))
        healthy, _ = render(np.random.default_rng([1, s]), anatomy, [])
        sick, boxes = render(np.random.default_rng([1, s]), anatomy, [label])
        x0, y0, x1, y1 = (np.clip(boxes[label], 0, 1) * BASE).astype(int)
        diff = np.abs(sick - healthy)
        inside = np.zeros_like(diff, dtype=bool)
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
        assert diff[inside].mean() > 2 * diff[~inside].mean(), (label, s)


def test_prevalence_is_nih_like_with_rare_classes_boosted(tmp_path):
    meta = generate(tmp_path, n_images=3000, image_size=64, seed=1, workers=2)
    y = read_data_entry(tmp_path / "Data_Entry_2017.csv")[list(LABELS)]
    prev = y.mean()
    assert prev["Infiltration"] > prev["Effusion"] > prev["Nodule"]  # NIH's order at the top
    assert prev.min() > 0.02  # Hernia is 0.2% in NIH; boosted towards 4%
    assert 0.3 < (y.sum(axis=1) == 0).mean() < 0.6
    assert isinstance(meta, pd.DataFrame)


def test_relabel_changes_what_the_labeller_reports_not_the_images(tmp_path):
    """synthetic.relabel: a finding reported where other planted findings are; images, boxes
    and expert re-reads stay those of the planted findings."""
    plain, shifted = tmp_path / "plain", tmp_path / "shifted"
    generate(plain, n_images=60, image_size=32, seed=4)
    generate(shifted, n_images=60, image_size=32, seed=4, relabel={"Consolidation": ["Pneumonia"]})
    a = pd.read_csv(plain / "Data_Entry_2017.csv", index_col=False)["Finding Labels"]
    b = pd.read_csv(shifted / "Data_Entry_2017.csv", index_col=False)["Finding Labels"]
    for before, after in zip(a, b, strict=True):
        planted = set(before.split("|")) - {"No Finding"}
        # Consolidation is reported where pneumonia is planted, and only there.
        expected = planted - {"Consolidation"} | (
            {"Consolidation"} if "Pneumonia" in planted else set()
        )
        assert set(after.split("|")) - {"No Finding"} == expected, (before, after)
    assert (a != b).any()
    for name in ("BBox_List_2017.csv", "google2019_labels.csv"):
        assert (plain / name).read_bytes() == (shifted / name).read_bytes()
    first = sorted((plain / "images").iterdir())[0].name
    assert (plain / "images" / first).read_bytes() == (shifted / "images" / first).read_bytes()
    with pytest.raises(ValueError, match="synthetic.relabel: unknown finding 'Pneumonitis'"):
        generate(tmp_path / "bad", n_images=10, image_size=32, relabel={"Edema": ["Pneumonitis"]})
