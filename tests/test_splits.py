"""Patient-wise splits on the real 112,120-row metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr14 import DataError
from cxr14.layouts.nih import LABELS, read_data_entry
from cxr14.splits import label_subset, make_splits, patient_folds, stratified_group_split


@pytest.fixture(scope="module")
def labels_csv(nih_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "labels.csv"
    read_data_entry(nih_dir / "Data_Entry_2017.csv").to_csv(path, index=False)
    return path


def _split(labels_csv, tmp_path, **kw):
    out = make_splits(labels_csv, tmp_path / "splits.csv", tmp_path / "counts.csv", **kw)
    return out, pd.read_csv(tmp_path / "counts.csv", index_col=0)


def test_patient_random_on_real_metadata(labels_csv, tmp_path):
    splits, counts = _split(labels_csv, tmp_path, seed=42)
    labels = pd.read_csv(labels_csv)
    assert splits["image"].tolist() == labels["image"].tolist()
    # No patient in two splits.
    assert splits.groupby("patient")["split"].nunique().max() == 1
    # Image fractions 80/10/10 within half a percentage point.
    frac = splits["split"].value_counts(normalize=True)
    np.testing.assert_allclose(frac[["train", "val", "test"]], [0.8, 0.1, 0.1], atol=0.005)
    # Per-class prevalence in every split within 10% (relative) of the whole set's, for every
    # class, Hernia (227 images) included; measured: within 3%.
    for s in ("train", "val", "test"):
        rel = counts.loc[list(LABELS), f"{s}_%"] / counts.loc[list(LABELS), "all_%"]
        assert rel.between(0.9, 1.1).all(), (s, rel)
    assert counts.loc["images", "all"] == 112_120


def test_splits_are_reproducible_and_seeded(labels_csv, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    a, _ = _split(labels_csv, tmp_path / "a", seed=7)
    b, _ = _split(labels_csv, tmp_path / "b", seed=7)
    c, _ = _split(labels_csv, tmp_path / "c", seed=8)
    assert (tmp_path / "a/splits.csv").read_bytes() == (tmp_path / "b/splits.csv").read_bytes()
    assert not a["split"].equals(c["split"])


def test_split_does_not_depend_on_row_order():
    rng = np.random.default_rng(0)
    y = (rng.random((500, 14)) < 0.1).astype(np.uint8)
    groups = rng.integers(0, 120, 500)
    fr = {"train": 0.8, "val": 0.1, "test": 0.1}
    base = stratified_group_split(y, groups, fr, seed=3)
    perm = rng.permutation(500)
    shuffled = stratified_group_split(y[perm], groups[perm], fr, seed=3)
    assert (shuffled == base[perm]).all()


def _official(labels_csv, nih_dir, tmp_path):
    """NIH's official split, 10% of the train/val images (whole patients) as validation."""
    lists = {
        "train_val_list": nih_dir / "train_val_list.txt",
        "test_list": nih_dir / "test_list.txt",
    }
    return _split(labels_csv, tmp_path, method="official", **lists, val_fraction=0.1)


def test_official_split(labels_csv, nih_dir, tmp_path):
    splits, counts = _official(labels_csv, nih_dir, tmp_path)
    test = set((nih_dir / "test_list.txt").read_text().split())
    assert set(splits.loc[splits["split"] == "test", "image"]) == test
    assert splits.groupby("patient")["split"].nunique().max() == 1
    assert counts.loc["patients", "test"] == 2_797
    assert counts.loc["images", "val"] == pytest.approx(0.1 * 86_524, rel=0.02)


def test_official_split_refuses_leaky_lists(tmp_path, labels_csv, nih_dir):
    test = (nih_dir / "test_list.txt").read_text().split()
    train_val = (nih_dir / "train_val_list.txt").read_text().split()
    # Move one image of a test patient into the train/val list.
    moved = test[0]
    (tmp_path / "tv.txt").write_text("\n".join(sorted(train_val + [moved])))
    (tmp_path / "t.txt").write_text("\n".join(test[1:]))
    with pytest.raises(DataError, match=r"patient 3 has images in both"):
        _split(
            labels_csv,
            tmp_path,
            method="official",
            train_val_list=tmp_path / "tv.txt",
            test_list=tmp_path / "t.txt",
        )
    (tmp_path / "t.txt").write_text("\n".join(test[:-1]))
    (tmp_path / "tv.txt").write_text("\n".join(train_val))
    with pytest.raises(DataError, match=r"1 image\(s\) in neither .* first: '00030805_000.png'"):
        _split(
            labels_csv,
            tmp_path,
            method="official",
            train_val_list=tmp_path / "tv.txt",
            test_list=tmp_path / "t.txt",
        )


def test_patient_folds_on_real_metadata(labels_csv):
    """Five patient-disjoint folds: every patient in exactly one, sizes and label prevalence
    balanced across folds, Hernia included."""
    table = pd.read_csv(labels_csv)
    y = table[list(LABELS)].to_numpy()
    folds = patient_folds(y, table["patient"].to_numpy(), 5, seed=0)
    assert set(folds) == set(range(5))
    assert table.assign(fold=folds).groupby("patient")["fold"].nunique().max() == 1
    sizes = np.bincount(folds) / len(folds)
    np.testing.assert_allclose(sizes, 0.2, atol=0.005)
    overall = y.mean(axis=0)
    for f in range(5):
        rel = y[folds == f].mean(axis=0) / overall
        assert ((rel > 0.9) & (rel < 1.1)).all(), (f, dict(zip(LABELS, rel.round(3), strict=True)))
    np.testing.assert_array_equal(folds, patient_folds(y, table["patient"].to_numpy(), 5, seed=0))


def test_patient_folds_refuse_impossible_counts():
    y = np.zeros((6, 2), int)
    groups = np.array([1, 1, 2, 2, 3, 3])
    with pytest.raises(
        ValueError, match=r"split.folds must be between 2 and the number of patients \(3\), not 4"
    ):
        patient_folds(y, groups, 4, seed=0)
    with pytest.raises(ValueError, match="not 1"):
        patient_folds(y, groups, 1, seed=0)


def test_kfold_splits_on_real_metadata(labels_csv, tmp_path):
    """Fold k of 5 is fold k's patients as test, whole patients of the rest as train/val; the
    five test splits together hold every image exactly once and never share a patient."""
    labels = pd.read_csv(labels_csv)
    tests = []
    for k in range(1, 6):
        (tmp_path / str(k)).mkdir()
        kw = {"method": "patient_kfold", "folds": 5, "fold": k, "seed": 0, "val_fraction": 0.1}
        splits, counts = _split(labels_csv, tmp_path / str(k), **kw)
        assert splits["image"].tolist() == labels["image"].tolist()
        assert (splits["split"] == "test").eq(splits["fold"] == k).all()
        assert splits.groupby("patient")["split"].nunique().max() == 1
        rest = splits[splits["split"] != "test"]
        frac = rest["split"].value_counts(normalize=True)
        assert frac["val"] == pytest.approx(0.1, abs=0.005)
        # Every class in every part, within 10% (relative) of its prevalence overall.
        for s in ("train", "val", "test"):
            rel = counts.loc[list(LABELS), f"{s}_%"] / counts.loc[list(LABELS), "all_%"]
            assert rel.between(0.85, 1.15).all(), (k, s, rel)
        tests.append(splits.loc[splits["split"] == "test", ["image", "patient"]])
    pooled = pd.concat(tests)
    assert sorted(pooled["image"]) == sorted(labels["image"])
    assert pooled.groupby("patient").ngroups == labels["patient"].nunique()
    # The folds themselves are the same in every fold's file.
    first = pd.read_csv(tmp_path / "1" / "splits.csv")["fold"]
    assert first.equals(pd.read_csv(tmp_path / "5" / "splits.csv")["fold"])


def test_kfold_split_refuses_a_fold_outside_the_folds(labels_csv, tmp_path):
    with pytest.raises(ValueError, match=r"fold must be between 1 and split.folds \(3\), not 4"):
        _split(labels_csv, tmp_path, method="patient_kfold", folds=3, fold=4)


def test_label_fractions_are_nested_patient_wise_and_stratified(labels_csv, nih_dir, tmp_path):
    """train.label_fraction on the official split's training images (real metadata): every
    class present at 10% (Hernia: 0.2% of images) with its prevalence kept, the 1% inside the
    10% inside the 25%, whole patients, and the image counts as asked."""
    splits, _ = _official(labels_csv, nih_dir, tmp_path)
    train = (splits["split"] == "train").to_numpy()
    y = pd.read_csv(labels_csv)[list(LABELS)].to_numpy(dtype=float)[train]
    patients = splits["patient"].to_numpy()[train]
    subsets = {f: label_subset(y, patients, f, seed=42) for f in (0.01, 0.1, 0.25)}
    for f, keep in subsets.items():
        assert keep.sum() == pytest.approx(f * len(keep), rel=0.01)  # whole patients: close
        assert not set(patients[keep]) & set(patients[~keep])
    assert (subsets[0.01] <= subsets[0.1]).all() and (subsets[0.1] <= subsets[0.25]).all()
    ten = subsets[0.1]
    assert (y[ten].sum(0) > 0).all(), dict(zip(LABELS, y[ten].sum(0), strict=True))
    # Patients with each finding: a tenth of them, rarest included (measured 0.093-0.104).
    with_finding = pd.DataFrame(y > 0).groupby(patients).any()
    share = with_finding.loc[np.unique(patients[ten])].sum() / with_finding.sum()
    assert share.between(0.09, 0.11).all(), share.round(3).to_dict()
    assert (y[subsets[0.01]].sum(0) > 0).all()  # even 1% (786 images): Hernia has 1
    assert (label_subset(y, patients, 0.1, seed=42) == ten).all()  # fixed by the seed
    assert not (label_subset(y, patients, 0.1, seed=7) == ten).all()
    assert label_subset(y, patients, 1.0, seed=42).all()
