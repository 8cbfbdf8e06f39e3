"""Performance by subgroup: the bands, a planted gap found with its sign, rates by hand, the
real metadata's groups, bad input named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxr14.figures import plot_subgroups
from cxr14.layouts.nih import LABELS, read_data_entry
from cxr14.metrics import mean_auroc, per_class_auroc
from cxr14.subgroups import (
    age_band,
    class_rates,
    evaluate_subgroups,
    subgroup_columns,
    subgroup_table,
)


def test_age_bands_start_at_their_edges_and_missing_ages_are_unknown():
    ages = pd.Series([5, 19.9, 20, 39.5, 40, 80, 95, np.nan])
    bands = age_band(ages, [40, 20, 80, 60]).tolist()  # edges in any order
    assert bands == ["<20", "<20", "20-39", "20-39", "40-59", "80+", "80+", "unknown"]
    columns = pd.DataFrame({"age": age_band(pd.Series([85, 5, 50, np.nan]), [20, 40, 60, 80])})
    table = subgroup_table(np.eye(4, 2), np.eye(4, 2), np.arange(4), columns, np.full(2, 0.5), 5)
    assert list(table["level"]) == ["all", "<20", "40-59", "80+", "unknown"]  # in age order


def _case(n_patients=150, seed=0):
    """Two images per patient; the model is informative for men and guesses for women."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_patients), 2)
    n = len(groups)
    y = (rng.random((n, 3)) < 0.3).astype(int)
    p = np.clip(0.5 * y + 0.5 * rng.random((n, 3)), 0, 1)
    women = groups % 2 == 0
    p[women] = rng.random((women.sum(), 3))
    columns = pd.DataFrame(
        {
            "sex": np.where(women, "F", "M"),
            "view": np.where(rng.random(n) < 0.5, "PA", "AP"),  # unrelated to the scores
        }
    )
    return y, p, groups, columns


def test_a_planted_gap_is_found_with_its_sign_and_rates_match_by_hand():
    y, p, groups, columns = _case()
    thresholds = np.array([0.5, 0.4, 0.6])
    table = subgroup_table(y, p, groups, columns, thresholds, 200, 0, ["A", "B", "C"])
    table = table.set_index(["variable", "level"])
    assert list(table.index) == [("all", "all"), ("sex", "F"), ("sex", "M")] + [
        ("view", "AP"),
        ("view", "PA"),
    ]
    assert table.loc[("all", "all"), "auroc"] == pytest.approx(mean_auroc(y, p))
    assert np.isnan(table.loc[("all", "all"), "gap"])  # no rest to compare with
    women, men = table.loc[("sex", "F")], table.loc[("sex", "M")]
    assert women["auroc"] == pytest.approx(0.5, abs=0.08) and men["auroc"] > 0.8
    assert women["gap_ci_high"] < 0 < men["gap_ci_low"]  # the guessing group, below the rest
    assert women["gap"] == pytest.approx(-men["gap"])  # each sex's rest is the other
    assert women["tpr_gap_ci_high"] < 0  # guessing at the thresholds: under-diagnosed
    # The planted gap's bootstrap p is as small as the replicates allow, also after Holm's
    # adjustment over the subgroups, which never lowers a p-value.
    assert women["p_gap"] <= 0.05 and women["p_gap_holm"] <= 0.2
    rows = table.drop(("all", "all"))
    assert (rows["p_gap_holm"] >= rows["p_gap"]).all()
    assert np.isnan(table.loc[("all", "all"), "p_gap"])
    assert (table["n_classes"] == 3).all()
    for _, row in table.drop(("all", "all")).iterrows():  # every CI brackets its estimate
        for m in ("auroc", "tpr", "fpr", "gap", "tpr_gap"):
            assert row[f"{m}_ci_low"] <= row[m] <= row[f"{m}_ci_high"]
    assert (table["n_patients"] <= table["n_images"]).all()
    assert table.loc[("sex", "F"), "n_patients"] == 75
    # TPR and FPR at the thresholds, for the men, by hand:
    m = (columns["sex"] == "M").to_numpy()
    pred = p[m] >= thresholds
    tpr = np.mean([pred[y[m][:, k] == 1, k].mean() for k in range(3)])
    fpr = np.mean([pred[y[m][:, k] == 0, k].mean() for k in range(3)])
    assert men["tpr"] == pytest.approx(tpr) and men["fpr"] == pytest.approx(fpr)
    assert women["tpr_rest"] == pytest.approx(tpr) and women["fpr_rest"] == pytest.approx(fpr)
    assert np.mean(class_rates(y[m], p[m], thresholds)[0]) == pytest.approx(tpr)
    by_class = table.loc[("sex", "M"), ["auroc_A", "auroc_B", "auroc_C"]].to_numpy(float)
    np.testing.assert_allclose(by_class, per_class_auroc(y[m], p[m]))
    assert men["auroc"] == pytest.approx(by_class.mean())


def test_a_class_missing_from_a_subgroup_does_not_make_a_gap():
    """Two classes, the model equally good at each everywhere; the hard class has no
    positives among the young. Averaging each side over the classes it has would show the
    young 'better' by class mix alone; one fixed class set shows no gap."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(400), 2)
    y = (rng.random((800, 2)) < 0.3).astype(int)
    young = groups < 100
    y[young, 1] = 0
    p = np.column_stack([0.4 * y[:, 0], 0.15 * y[:, 1]]) + rng.random((800, 2))
    columns = pd.DataFrame({"age": np.where(young, "young", "old")})
    table = subgroup_table(y, p, groups, columns, np.full(2, 0.5), 200, 0, ["easy", "hard"])
    table = table.set_index("level")
    assert (table.loc[["young", "old"], "n_classes"] == 1).all()  # the easy class only
    assert (table.loc[["young", "old"], "classes"] == "easy").all()  # named
    assert table.loc["all", "n_classes"] == 2 and table.loc["all", "classes"] == "easy; hard"
    assert table.loc["young", "gap_ci_low"] < 0 < table.loc["young", "gap_ci_high"]
    assert abs(table.loc["young", "gap"]) < 0.05


def test_the_real_metadata_gives_nihs_groups(nih_dir):
    meta = read_data_entry(nih_dir / "Data_Entry_2017.csv")
    columns = subgroup_columns(meta, [20, 40, 60, 80])
    assert columns["sex"].value_counts().to_dict() == {"M": 63340, "F": 48780}
    assert columns["view"].value_counts().to_dict() == {"PA": 67310, "AP": 44810}
    ages = columns["age"].value_counts().to_dict()
    assert ages["unknown"] == 16  # the implausible ages (> 120 years), set to missing
    assert sum(ages.values()) == 112120 and set(ages) == {
        "<20",
        "20-39",
        "40-59",
        "60-79",
        "80+",
        "unknown",
    }


def _files(tmp_path):
    y, p, groups, columns = _case(n_patients=40)
    labels = list(LABELS[:3])
    images = [f"{g:08d}_{i % 2:03d}.png" for i, g in enumerate(groups)]
    meta = pd.DataFrame({"image": images, "patient": groups, "follow_up": 0})
    meta["view"], meta["sex"] = columns["view"], columns["sex"]
    meta["age_years"] = np.where(groups < 20, 30.0, 70.0)
    meta[list(LABELS)] = 0
    meta[labels] = y
    meta.iloc[::-1].to_csv(tmp_path / "labels.csv", index=False)  # another order
    pred = pd.DataFrame({"image": images, "patient": groups})
    pred[[f"prob_{c}" for c in LABELS]] = 0.1
    pred[[f"prob_{c}" for c in labels]] = p
    pred[[f"label_{c}" for c in LABELS]] = meta[list(LABELS)].to_numpy()
    pred.to_csv(tmp_path / "predictions.csv", index=False)
    metrics = pd.DataFrame({"label": [*LABELS, "mean"], "threshold_at_val": 0.5})
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    return [tmp_path / f for f in ("predictions.csv", "labels.csv", "metrics.csv")]


def test_evaluate_subgroups_writes_the_table_and_its_figure(tmp_path):
    files = _files(tmp_path)
    table = evaluate_subgroups(*files, tmp_path / "subgroups.csv", [20, 60], n_boot=50)
    again = pd.read_csv(tmp_path / "subgroups.csv")
    assert list(again["level"]) == ["all", "F", "M", "20-59", "60+", "AP", "PA"]
    assert (again["n_images"].iloc[1:5] == 40).all()
    np.testing.assert_allclose(again["auroc"], table["auroc"], rtol=1e-5)
    assert list(again.columns[-14:]) == [f"auroc_{c}" for c in LABELS]  # per class
    assert again[[f"auroc_{c}" for c in LABELS[3:]]].isna().all().all()  # no positives
    plot_subgroups(tmp_path / "subgroups.csv", tmp_path / "subgroups.png", "tiny")
    assert (tmp_path / "subgroups.png").stat().st_size > 5000


def test_a_missing_validation_threshold_is_named(tmp_path):
    pred_csv, labels_csv, metrics_csv = _files(tmp_path)
    metrics = pd.read_csv(metrics_csv)
    metrics.loc[metrics["label"] == "Effusion", "threshold_at_val"] = np.nan
    metrics[metrics["label"] != "Hernia"].to_csv(metrics_csv, index=False)
    with pytest.raises(ValueError, match=r"no validation threshold .* \['Effusion', 'Hernia'\]"):
        evaluate_subgroups(pred_csv, labels_csv, metrics_csv, tmp_path / "s.csv", [40], 5)


def test_a_predicted_image_missing_from_the_label_table_is_named(tmp_path):
    pred_csv, labels_csv, metrics_csv = _files(tmp_path)
    meta = pd.read_csv(labels_csv)
    meta[meta["image"] != "00000003_001.png"].to_csv(labels_csv, index=False)
    with pytest.raises(ValueError, match="'00000003_001.png' is not in .*labels.csv"):
        evaluate_subgroups(pred_csv, labels_csv, metrics_csv, tmp_path / "s.csv", [40], 5)
