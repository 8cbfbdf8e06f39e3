"""Harmonised findings and training on several data sets: the table, the mapping of one data
set's labels onto another's, the masking of findings a set does not label, the pooled epoch
index and the pooled normalisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from cxr14.findings import (
    FINDING,
    pooled_findings,
    read_findings,
    shared_labels,
    targets_for,
    to_findings,
    vocabularies,
)
from cxr14.layouts import LAYOUTS
from cxr14.layouts.chexpert import LABELS as CHEXPERT
from cxr14.layouts.nih import LABELS as NIH
from cxr14.losses import wcel
from cxr14.pooling import DataSet, pooled_index, pooled_normalization

NAN = float("nan")


def test_the_table_maps_every_layouts_labels_and_says_why():
    table = read_findings()
    assert vocabularies(table) == ["nih", "chexpert"]
    assert (table["note"] != "").all()  # every row says why it is matched or not
    for layout in LAYOUTS.values():
        if layout.vocabulary != FINDING:
            column = set(table[layout.vocabulary]) - {""}
            assert set(layout.labels) == column, layout.name


def test_nih_and_chexpert_share_seven_findings_effusion_by_its_chexpert_name():
    table = read_findings()
    pairs = shared_labels(NIH, "nih", CHEXPERT, "chexpert", table)
    assert dict(pairs) == {
        "Atelectasis": "Atelectasis",
        "Cardiomegaly": "Cardiomegaly",
        "Effusion": "Pleural Effusion",
        "Pneumonia": "Pneumonia",
        "Pneumothorax": "Pneumothorax",
        "Consolidation": "Consolidation",
        "Edema": "Edema",
    }
    # Infiltration is not matched to Lung Opacity, nor Mass and Nodule to Lung Lesion.
    assert to_findings(["Lung Opacity"], "chexpert", table) == {"Lung Opacity": "Lung Opacity"}


def test_a_manifests_own_names_match_by_name_and_unknown_ones_stay_their_own():
    table = read_findings()
    pairs = shared_labels(["Effusion", "Goitre"], FINDING, NIH, "nih", table)
    assert pairs == [("Effusion", "Effusion")]
    with pytest.raises(ValueError, match="unknown label vocabulary 'radlex'"):
        to_findings(["x"], "radlex", table)


def test_a_table_naming_a_label_twice_is_refused(tmp_path):
    bad = tmp_path / "findings.csv"
    bad.write_text("finding,nih,note\nA,X,\nB,X,\n")
    with pytest.raises(ValueError, match="column 'nih' names 'X' twice"):
        read_findings(bad)


def test_a_finding_a_data_set_does_not_label_is_unknown_never_negative():
    table = read_findings()
    classes = pooled_findings([(NIH, "nih"), (CHEXPERT, "chexpert")], table)
    assert len(classes) == 14 + 14 - 7  # the union, each shared finding once
    y = pd.DataFrame({c: [1.0, 0.0] for c in CHEXPERT})
    targets = targets_for(classes, FINDING, y, "chexpert", table)
    by_class = dict(zip(classes, targets.T, strict=True))
    np.testing.assert_array_equal(by_class["Effusion"], [1, 0])  # Pleural Effusion's values
    assert np.isnan(by_class["Infiltration"]).all() and np.isnan(by_class["Hernia"]).all()


def test_a_pooled_loss_counts_each_images_known_findings_only():
    """Two images from two data sets on three findings: the first set does not label the third
    finding, the second not the second; W-CEL's |P| and |N| count known entries only."""
    logits = torch.tensor([[1.0, -1.0, 2.0], [0.0, 0.5, -2.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, NAN], [0.0, NAN, 1.0]])
    # Known: (0,0) +, (0,1) -, (1,0) -, (1,2) +. |P| = 2, |N| = 2.
    pos = [math.log(1 + math.e**-1), math.log(1 + math.e**2)]
    neg = [math.log(1 + math.e**-1), math.log(2)]
    loss = wcel(logits, targets)
    assert loss.item() == pytest.approx(sum(pos) / 2 + sum(neg) / 2, abs=1e-6)
    loss.backward()
    assert logits.grad[0, 2] == 0 and logits.grad[1, 1] == 0


def _part(index) -> DataSet:
    n = 10
    return DataSet(np.zeros((n, 1), np.float32), np.array(["train"] * n), np.asarray(index))


def test_pooling_proportional_keeps_each_index_and_equal_repeats_the_smaller_sets():
    small, large = _part([0, 1, 2]), _part(np.arange(8))
    same = pooled_index([small, large], "proportional", seed=0)
    assert [len(i) for i in same] == [3, 8]
    equal = pooled_index([small, large], "equal", seed=0)
    assert [len(i) for i in equal] == [8, 8]
    # Two whole copies of the small index, then two of its images once more.
    assert sorted(np.bincount(equal[0])) == [2, 3, 3]
    assert np.array_equal(equal[0], pooled_index([small, large], "equal", seed=0)[0])
    with pytest.raises(ValueError, match="pooling must be one of"):
        pooled_index([small], "mixed", seed=0)


def test_the_pooled_normalisation_is_the_mixtures_mean_image_and_std(tmp_path):
    """Two sets' statistics mixed by their share of the epoch equal those of the images
    themselves, pooled with those weights."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (6, 4, 4)).astype(np.float64)
    b = rng.integers(0, 120, (3, 4, 4)).astype(np.float64)
    files = []
    for name, x in (("a", a), ("b", b)):
        np.save(tmp_path / f"{name}.npy", x.mean(axis=0).astype(np.float32))
        stats = {"mean": float(x.mean()), "std": float(x.std())}
        (tmp_path / f"{name}.json").write_text(json.dumps(stats))
        files.append((tmp_path / f"{name}.npy", tmp_path / f"{name}.json"))
    average, std = pooled_normalization([f[0] for f in files], [f[1] for f in files], [6, 3])
    both = np.concatenate([a, b])  # weights 6:3 = their image counts
    np.testing.assert_allclose(average, both.mean(axis=0), rtol=1e-6)
    assert std == pytest.approx(both.std(), rel=1e-9)


def test_pooled_rows_are_read_from_each_store_into_one_tensor(tmp_path):
    import h5py

    from cxr14.data import read_pooled_rows, read_rows

    rng = np.random.default_rng(1)
    stores = []
    for name, n in (("a", 5), ("b", 4)):
        path = tmp_path / f"{name}.h5"
        with h5py.File(path, "w") as h5:
            h5["images"] = rng.integers(0, 256, (n, 3, 3), dtype=np.uint8)
        stores.append(str(path))
    rows = np.array([1, 4, 5, 8])  # two of the first store, two of the second (offset 5)
    pooled = read_pooled_rows(stores, np.array([0, 5]), rows)
    both = torch.cat([read_rows(stores[0], np.array([1, 4])), read_rows(stores[1], [0, 3])])
    assert torch.equal(pooled, both)
    # Rows of the second store only: the first contributes nothing.
    assert torch.equal(read_pooled_rows(stores, np.array([0, 5]), np.array([5])), both[2:3])
