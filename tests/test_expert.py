"""Expert re-read labels (google2019_labels.csv): parsing the real file, the synthetic file in
its format, and scoring against experts beside NIH's labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cxr14.errors import DataError
from cxr14.expert import evaluate_expert_labels, expert_table
from cxr14.layouts.nih import EXPERT_FINDINGS, LABELS, read_expert_labels
from cxr14.layouts.synthetic import EXPERT_FILE
from cxr14.synthetic import generate
from cxr14.tables import expert_columns

MAPPING = {
    "Pneumothorax": ["Pneumothorax"],
    "Nodule or mass": ["Nodule", "Mass"],
    "Airspace opacity": ["Consolidation", "Pneumonia", "Infiltration", "Edema"],
}


def test_the_real_file_parses_with_its_published_counts(nih_dir):
    table = read_expert_labels(nih_dir / "google2019_labels.csv")
    assert len(table) == 4376 and table["image"].is_unique
    assert table["set_id"].value_counts().to_dict() == {"val": 2414, "test": 1962}
    assert table[list(EXPERT_FINDINGS)].sum().to_dict() == {
        "Fracture": 186,
        "Pneumothorax": 238,
        "Airspace opacity": 2166,
        "Nodule or mass": 605,
    }
    test_list = set((nih_dir / "test_list.txt").read_text().split())
    assert table.loc[table["set_id"] == "test", "image"].isin(test_list).all()
    assert not table.loc[table["set_id"] == "val", "image"].isin(test_list).any()


def test_a_value_other_than_yes_or_no_is_named_with_its_line(nih_dir, tmp_path):
    lines = (nih_dir / "google2019_labels.csv").read_bytes().split(b"\r\n")
    lines[3] = lines[3].replace(b",YES,", b",MAYBE,", 1).replace(b",NO,", b",MAYBE,", 1)
    bad = tmp_path / "google2019_labels.csv"
    bad.write_bytes(b"\n".join(lines))  # LF endings parse too
    with pytest.raises(DataError, match=r"line 4: .* is 'MAYBE', not YES or NO"):
        read_expert_labels(bad)
    (tmp_path / "other.csv").write_text("Image Index,Finding Labels\na.png,No Finding\n")
    with pytest.raises(DataError, match="missing column"):
        read_expert_labels(tmp_path / "other.csv")


def test_the_synthetic_file_has_the_real_files_exact_format(nih_dir, tmp_path):
    meta = generate(tmp_path, n_images=80, image_size=32, seed=3)
    ours, real = tmp_path / EXPERT_FILE, nih_dir / "google2019_labels.csv"
    assert ours.read_bytes().split(b"\r\n")[0] == real.read_bytes().split(b"\r\n")[0]
    assert not ours.read_bytes().endswith(b"\n")  # no final newline, as the real file
    a, b = pd.read_csv(ours), pd.read_csv(real)
    assert list(a.columns) == list(b.columns) and a.dtypes.equals(b.dtypes)
    parsed = read_expert_labels(ours)
    test_list = set((tmp_path / "test_list.txt").read_text().split())
    assert (parsed["set_id"] == "test").equals(parsed["image"].isin(test_list))
    # Read off the planted findings: Nodule or mass is either of them.
    found = meta.set_index("Image Index").loc[parsed["image"], "Finding Labels"]
    planted = found.str.contains("Nodule|Mass").to_numpy()
    assert np.array_equal(parsed["Nodule or mass"].to_numpy(), planted.astype(int))


def _predictions(n=60, seed=0):
    rng = np.random.default_rng(seed)
    pred = pd.DataFrame({"image": [f"{i:08d}_000.png" for i in range(n)]})
    pred["patient"] = np.arange(n) // 2
    y = (rng.random((n, len(LABELS))) < 0.3).astype(int)
    p = np.clip(y * 0.4 + rng.random((n, len(LABELS))) * 0.6, 0, 1)
    pred[[f"prob_{c}" for c in LABELS]] = p
    pred[[f"label_{c}" for c in LABELS]] = y
    return pred


def _expert_from(pred, rows):
    """Expert labels equal to NIH's under the mapping, for ``rows`` of the predictions."""
    sub = pred.iloc[rows]
    out = pd.DataFrame({"image": sub["image"], "set_id": "test"})
    out["Fracture"] = 0
    for finding, classes in MAPPING.items():
        out[finding] = sub[[f"label_{c}" for c in classes]].max(axis=1).to_numpy()
    return out[["image", *EXPERT_FINDINGS, "set_id"]].reset_index(drop=True)


def test_a_model_against_experts_who_agree_with_nih_scores_the_same_on_both():
    pred = _predictions()
    table = expert_table(pred, _expert_from(pred, range(10, 50)), MAPPING, n_boot=50)
    table = table.set_index("finding")
    assert list(table.index) == [
        "Pneumothorax",
        "Airspace opacity",
        "Nodule or mass",
        "Fracture",
        "mean",
    ]
    scored = table.drop("Fracture")
    assert (scored["n_images"] == 40).all() and (scored["sets"] == "test: 40").all()
    assert np.allclose(scored["auroc_expert"], scored["auroc_original"])
    assert np.allclose(scored["auroc_expert_ci_low"], scored["auroc_original_ci_low"])
    assert (table.loc[["Pneumothorax", "Nodule or mass"], "kappa_original_vs_expert"] == 1.0).all()
    # The paired difference of the same images' two AUROCs: exactly 0, and so is its CI.
    pairs = scored[["auroc_difference", "auroc_difference_ci_low", "auroc_difference_ci_high"]]
    assert (pairs.abs() < 1e-12).all().all()
    assert "skipped" in table.loc["Fracture", "note"]
    # Nodule or mass is scored by max(prob_Nodule, prob_Mass), by hand:
    sub = pred.iloc[10:50]
    by_hand = roc_auc_score(
        sub[["label_Nodule", "label_Mass"]].max(axis=1),
        sub[["prob_Nodule", "prob_Mass"]].max(axis=1),
    )
    assert table.loc["Nodule or mass", "auroc_expert"] == pytest.approx(by_hand)


def test_disagreeing_experts_move_the_auroc_and_the_kappa():
    pred = _predictions()
    expert = _expert_from(pred, range(60))
    expert["Pneumothorax"] = 1 - expert["Pneumothorax"]  # experts read every case the other way
    row = expert_table(pred, expert, MAPPING, n_boot=20).set_index("finding").loc["Pneumothorax"]
    assert row["auroc_expert"] == pytest.approx(1 - row["auroc_original"])
    assert row["auroc_difference"] == pytest.approx(row["auroc_expert"] - row["auroc_original"])
    low, high = row["auroc_difference_ci_low"], row["auroc_difference_ci_high"]
    assert low <= row["auroc_difference"] <= high and not low <= 0 <= high
    # Never agreeing: observed agreement 0, chance agreement pe = 2q(1 - q) at NIH prevalence q.
    q = pred["label_Pneumothorax"].mean()
    pe = 2 * q * (1 - q)
    assert row["kappa_original_vs_expert"] == pytest.approx(-pe / (1 - pe))


def test_a_finding_with_one_positive_patient_gets_no_interval_and_a_note():
    pred = _predictions()
    expert = _expert_from(pred, range(60))
    expert["Pneumothorax"] = 0
    expert.loc[:1, "Pneumothorax"] = 1  # both images of patient 0
    table = expert_table(pred, expert, MAPPING, n_boot=100).set_index("finding")
    row = table.loc["Pneumothorax"]
    assert not np.isnan(row["auroc_expert"]) and np.isnan(row["auroc_expert_ci_low"])
    assert "too few positive patients" in row["note"]
    assert table.loc["Nodule or mass", "note"] == ""


def test_bad_mappings_and_no_overlap_are_reported():
    pred = _predictions()
    expert = _expert_from(pred, range(20))
    with pytest.raises(ValueError, match="'Nodule/mass'"):
        expert_table(pred, expert, {**MAPPING, "Nodule/mass": ["Nodule"]}, n_boot=5)
    with pytest.raises(ValueError, match=r"Pneumothorax -> \['Pneumothorax_X'\]"):
        expert_table(pred, expert, {"Pneumothorax": ["Pneumothorax_X"]}, n_boot=5)
    elsewhere = expert.assign(image=expert["image"].str.replace("_000", "_999"))
    table = expert_table(pred, elsewhere, MAPPING, n_boot=5)
    assert (table["n_images"] == 0).all() and table["auroc_expert"].isna().all()
    assert "no image of the expert file" in table.iloc[0]["note"]


def test_alternative_mappings_are_scored_beside_the_main_one(tmp_path):
    pred = _predictions()
    expert = _expert_from(pred, range(60))
    pred.to_csv(tmp_path / "p.csv", index=False)
    expert.to_csv(tmp_path / "e.csv", index=False)
    alternatives = {
        "Airspace opacity": {
            "same": MAPPING["Airspace opacity"],
            "with Atelectasis": [*MAPPING["Airspace opacity"], "Atelectasis"],
            "unknown class": ["Opacity"],
        }
    }
    table = evaluate_expert_labels(
        tmp_path / "p.csv", tmp_path / "e.csv", MAPPING, tmp_path / "o.csv", 20, 0, alternatives
    ).set_index("finding")
    main, same = table.loc["Airspace opacity"], table.loc["Airspace opacity [same]"]
    assert same["auroc_expert"] == pytest.approx(main["auroc_expert"])
    assert same["mapping_variant"] == "same" and pd.isna(main["mapping_variant"])
    assert not pd.isna(table.loc["Airspace opacity [with Atelectasis]", "auroc_expert"])
    assert "Opacity not in this model" in table.loc["Airspace opacity [unknown class]", "note"]
    assert table.index[-1] == "mean"  # of the main mapping only
    plain = expert_table(pred, expert, MAPPING, n_boot=20).set_index("finding")
    assert table.loc["mean", "auroc_expert"] == pytest.approx(plain.loc["mean", "auroc_expert"])
    assert "expert_auroc_Airspace opacity [same]" not in expert_columns(table.reset_index())
