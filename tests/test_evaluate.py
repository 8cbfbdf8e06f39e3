"""Evaluation metrics on hand-made cases, CAM boxes and IoU."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import expit, logit
from sklearn.metrics import roc_auc_score

from cxr14.calibration import (
    apply_recalibration,
    apply_temperatures,
    calibrate,
    calibration_slope_intercept,
    fit_calibration,
    fit_recalibration,
    fit_temperatures,
    isotonic_knots,
)
from cxr14.evaluate import metrics_table
from cxr14.gradcam import grad_cam
from cxr14.layouts.nih import LABELS
from cxr14.localization import accuracy_table, cam_to_box, iobb, iou
from cxr14.metrics import (
    bootstrap_auroc,
    calibration_bins,
    operating_point,
    per_class_ap,
    per_class_auroc,
    per_class_brier,
    per_class_ece,
    percentile_ci,
    rate_at_fixed,
    rates_at,
    wilson_interval,
    youden_thresholds,
)
from cxr14.predictions import read_predictions


def _case(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 14), int)
    y[: n // 4] = 1  # first quarter positive for every class ...
    y[:, 13] = 0  # ... except Pneumothorax: no positives in this split
    p = rng.random((n, 14)) * 0.4
    p[:, 0] = y[:, 0] * 0.5 + 0.25  # Atelectasis: perfect, at 0.75 / 0.25
    p[:, 1] = 0.0  # Cardiomegaly: constant all-zero predictor (the seed's ResNet18)
    groups = np.repeat(np.arange(n // 2), 2)
    return y, p, groups


def test_metrics_by_hand():
    y, p, groups = _case()
    table = metrics_table(y, p, groups, np.full(14, 0.5), LABELS, n_boot=50).set_index("label")
    assert list(table.index) == [*LABELS, "mean"]
    perfect = table.loc["Atelectasis"]
    assert perfect["auroc"] == 1.0 and perfect["auroc_ci_low"] == 1.0
    assert (perfect["tp_at_0.5"], perfect["fn_at_0.5"], perfect["fp_at_0.5"]) == (10, 0, 0)
    assert perfect["tn_at_0.5"] == 30 and perfect["f1_at_0.5"] == 1.0
    # The all-zero predictor: AUROC 0.5, nothing predicted positive, recall 0, precision
    # undefined, and a note - not a high accuracy.
    zero = table.loc["Cardiomegaly"]
    assert zero["auroc"] == 0.5 and zero["predicted_pos_at_0.5"] == 0
    assert zero["recall_at_0.5"] == 0 and math.isnan(zero["precision_at_0.5"])
    assert zero["specificity_at_0.5"] == 1.0 and zero["tn_at_0.5"] == 30
    assert "predicts no positives at threshold 0.5" in zero["note"]
    # No positives in the split: AUROC NaN with a note, no crash.
    none = table.loc["Pneumothorax"]
    assert math.isnan(none["auroc"]) and "AUROC undefined" in none["note"]
    assert math.isnan(none["recall_at_0.5"])
    mean = table.loc["mean"]
    assert mean["auroc"] == pytest.approx(np.nanmean(table.loc[list(LABELS), "auroc"]))
    assert "classes never predicted positive at 0.5" in mean["note"]


def test_operating_point_and_youden():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    op = operating_point(y, p, 0.5)
    assert (op["tp"], op["fp"], op["fn"], op["tn"]) == (2, 1, 1, 2)
    assert op["precision"] == pytest.approx(2 / 3) and op["recall"] == pytest.approx(2 / 3)
    assert op["specificity"] == pytest.approx(2 / 3) and op["f1"] == pytest.approx(2 / 3)
    # Youden's J: at 0.4 sensitivity 1 and specificity 2/3 (J = 2/3) beats 0.7 (J = 2/3 - ...)
    thr = youden_thresholds(np.tile(y[:, None], 14), np.tile(p[:, None], 14))
    assert thr[0] == pytest.approx(0.4)
    only_neg = youden_thresholds(np.zeros((6, 14), int), np.tile(p[:, None], 14))
    assert (only_neg == 0.5).all()


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    y = (rng.random((300, 14)) < 0.3).astype(int)
    p = np.clip(y * 0.3 + rng.random((300, 14)) * 0.7, 0, 1)
    groups = np.repeat(np.arange(100), 3)
    lo1, hi1 = bootstrap_auroc(y, p, groups, n_boot=100, seed=3)
    lo2, hi2 = bootstrap_auroc(y, p, groups, n_boot=100, seed=3)
    np.testing.assert_array_equal(lo1, lo2)
    from cxr14.metrics import mean_auroc

    assert lo1[-1] < mean_auroc(y, p) < hi1[-1]
    assert (hi1 - lo1 > 0).all()


def test_patient_bootstrap_is_wider_than_image_bootstrap():
    """Images of a patient are near-duplicates; resampling patients must show that."""
    rng = np.random.default_rng(0)
    base_y = (rng.random((40, 14)) < 0.4).astype(int)
    base_p = np.clip(base_y * 0.2 + rng.random((40, 14)) * 0.8, 0, 1)
    y, p = np.repeat(base_y, 10, axis=0), np.repeat(base_p, 10, axis=0)  # 10 copies each
    lo_pat, hi_pat = bootstrap_auroc(y, p, np.repeat(np.arange(40), 10), n_boot=100, seed=0)
    lo_img, hi_img = bootstrap_auroc(y, p, np.arange(400), n_boot=100, seed=0)
    assert (hi_pat[-1] - lo_pat[-1]) > 2 * (hi_img[-1] - lo_img[-1])


def test_a_class_with_too_few_positive_patients_gets_no_interval_and_a_note():
    """One positive patient: most resamples that draw it give the same AUROC, a third draw
    none; a 95% interval read off the rest would be narrow and wrong."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 2)
    y = (rng.random((120, 2)) < 0.3).astype(int)
    y[:, 1] = 0
    y[:2, 1] = 1  # class B: both images of patient 0, the only positive patient
    p = np.clip(0.3 * y + rng.random(y.shape) * 0.7, 0, 1)
    table = metrics_table(y, p, groups, np.full(2, 0.5), ["A", "B"], 200, 0).set_index("label")
    low, auroc, high = table.loc["A", ["auroc_ci_low", "auroc", "auroc_ci_high"]]
    assert low < auroc < high
    assert not np.isnan(table.loc["B", "auroc"])
    assert table.loc["B", ["auroc_ci_low", "auroc_ci_high", "ap_ci_low"]].isna().all()
    assert "too few positive patients" in table.loc["B", "note"]
    assert table.loc["B", "ece_ci_low"] <= table.loc["B", "ece_ci_high"]  # defined everywhere
    assert not np.isnan(table.loc["mean", "auroc_ci_low"])  # the mean skips B where undefined


def test_auroc_equals_scikit_learn_with_ties_and_refuses_nan_scores_and_odd_labels():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 5)) < 0.2).astype(int)
    y[:, 4] = 1  # one label value: undefined
    p = np.round(rng.random((300, 5)), 1)  # many ties
    expected = [roc_auc_score(y[:, k], p[:, k]) for k in range(4)]
    np.testing.assert_allclose(per_class_auroc(y, p)[:4], expected, rtol=0, atol=1e-12)
    assert np.isnan(per_class_auroc(y, p)[4])
    p[7, 2] = np.nan
    with pytest.raises(ValueError, match="scores contain NaN"):
        per_class_auroc(y, p)
    # NaN is an unknown label (left out of its class's AUROC); -1 is a raw uncertain code,
    # which a label policy turns into 0, 1 or NaN first: never counted as a positive.
    y_nan = y.astype(float)
    y_nan[3, 1] = np.nan
    known = np.arange(300) != 3
    q = np.nan_to_num(p)
    assert per_class_auroc(y_nan, q)[1] == pytest.approx(roc_auc_score(y[known, 1], q[known, 1]))
    for bad in (-1, 2):
        y_bad = y.astype(float)
        y_bad[3, 1] = bad
        with pytest.raises(ValueError, match="labels must be 0, 1 or NaN"):
            per_class_auroc(y_bad, np.nan_to_num(p))


def test_percentile_ci_needs_the_interval_share_of_replicates_defined():
    stats = np.tile(np.linspace(0, 1, 100)[:, None], (1, 3))
    stats[:5, 1] = np.nan  # 95% defined: enough for a 95% interval
    stats[:6, 2] = np.nan  # 94%: not
    low, high = percentile_ci(stats, 0.05)
    assert not np.isnan(low[:2]).any() and not np.isnan(high[:2]).any()
    assert np.isnan(low[2]) and np.isnan(high[2])


def test_iou_and_cam_box():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (5, 5, 1, 1)) == 0.0
    cam = np.zeros((20, 20))
    cam[2:5, 3:9] = 1.0  # larger region
    cam[15:17, 15:17] = 0.9  # smaller region
    assert cam_to_box(cam, 0.5) == (3.0, 2.0, 6.0, 3.0)
    assert cam_to_box(np.zeros((5, 5)), 0.5) == (0.0, 0.0, 0.0, 0.0)


class _Spot(torch.nn.Module):
    """Logit = mean brightness: its Grad-CAM is the image itself."""

    def __init__(self):
        super().__init__()
        conv = torch.nn.Conv2d(1, 1, 1, bias=False)
        torch.nn.init.ones_(conv.weight)
        self.features = torch.nn.Sequential(conv, torch.nn.ReLU(inplace=True))
        self.head = torch.nn.Linear(1, 14, bias=False)
        torch.nn.init.ones_(self.head.weight)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def test_grad_cam_finds_the_spot():
    x = torch.zeros(2, 1, 32, 32)
    x[0, 0, 4:8, 20:26] = 1.0
    x[1, 0, 20:30, 2:6] = 1.0
    model = _Spot()
    cam = grad_cam(model, model.features, x, torch.tensor([0, 5])).numpy()
    assert cam.shape == (2, 32, 32) and cam.max() == pytest.approx(1.0)
    assert cam_to_box(cam[0], 0.5) == (20.0, 4.0, 6.0, 4.0)
    assert cam_to_box(cam[1], 0.5) == (2.0, 20.0, 4.0, 10.0)
    assert all(m.inplace for m in model.modules() if hasattr(m, "inplace"))  # restored


def test_average_precision_by_hand_with_its_interval_and_prevalence():
    # One class, ranked: pos 0.9, neg 0.8, pos 0.7, neg 0.1 -> precision at each positive:
    # 1/1 and 2/3 -> AP = (1 + 2/3) / 2.
    y = np.array([[1], [0], [1], [0]] * 25)
    p = np.array([[0.9], [0.8], [0.7], [0.1]] * 25)
    assert per_class_ap(y[:4], p[:4])[0] == pytest.approx((1 + 2 / 3) / 2)
    assert np.isnan(per_class_ap(np.zeros((4, 1)), p[:4])[0])  # no positives: undefined
    groups = np.repeat(np.arange(25), 4)
    table = metrics_table(y, p, groups, np.array([0.5]), ["A"], n_boot=50).set_index("label")
    row = table.loc["A"]
    assert row["prevalence"] == pytest.approx(0.5)
    assert row["ap"] == pytest.approx((1 + 2 / 3) / 2)
    assert row["ap_ci_low"] <= row["ap"] <= row["ap_ci_high"]
    assert table.loc["mean", "ap"] == pytest.approx(row["ap"])


def test_brier_and_calibration_error_by_hand():
    # Bin [0.2, 0.3): p = 0.2, 0.2, observed 1 of 2 -> |0.5 - 0.2| = 0.3;
    # bin [0.8, 0.9): p = 0.8, 0.8, observed 2 of 2 -> |1 - 0.8| = 0.2; ECE = (2*0.3 + 2*0.2)/4.
    y = np.array([[0], [1], [1], [1]])
    p = np.array([[0.2], [0.2], [0.8], [0.8]])
    assert per_class_ece(y, p)[0] == pytest.approx(0.25)
    # Brier: (0.04 + 0.64 + 0.04 + 0.04) / 4.
    assert per_class_brier(y, p)[0] == pytest.approx(0.19)
    count, mean_p, frac = calibration_bins(y[:, 0], p[:, 0])
    assert count.tolist() == [0, 0, 2, 0, 0, 0, 0, 0, 2, 0]
    assert mean_p[2] == pytest.approx(0.2) and frac[8] == 1.0 and np.isnan(frac[0])
    # p = 1.0 falls in the last bin, not past it; a perfectly calibrated constant scores 0.
    assert calibration_bins(np.array([1]), np.array([1.0]))[0][-1] == 1
    half = np.array([[0], [1]] * 10)
    assert per_class_ece(half, np.full((20, 1), 0.5))[0] == 0.0
    assert per_class_brier(half, np.full((20, 1), 0.5))[0] == pytest.approx(0.25)


def test_temperature_scaling_fixes_overconfidence_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (4000, 2))
    y = (rng.random((4000, 2)) < expit(z)).astype(int)  # calibrated at logit z ...
    p_over = expit(3 * z)  # ... so a model reporting 3z is over-confident by T = 3
    temps = fit_temperatures(y[:2000], p_over[:2000])  # fitted on "validation" only
    assert temps == pytest.approx([3, 3], rel=0.15)
    scaled = apply_temperatures(p_over[2000:], temps)
    recalibration = (1 / temps, np.zeros(2))
    table = metrics_table(
        y[2000:], p_over[2000:], np.arange(2000), np.full(2, 0.5), ["A", "B"], 20, 0, recalibration
    ).set_index("label")
    assert (table["ece_scaled"] < table["ece"] / 2).all()
    assert (table.loc[["A", "B"], "brier_scaled"] < table.loc[["A", "B"], "brier"]).all()
    assert table.loc["A", "ece_ci_low"] <= table.loc["A", "ece"] <= table.loc["A", "ece_ci_high"]
    auroc = per_class_auroc(y[2000:], p_over[2000:])
    assert per_class_auroc(y[2000:], scaled) == pytest.approx(auroc, abs=1e-6)  # same ranking
    # No positives on validation: nothing to fit, T = 1.
    assert fit_temperatures(np.zeros((5, 1)), np.full((5, 1), 0.3))[0] == 1.0


def test_platt_scaling_removes_a_planted_base_rate_shift_that_temperature_cannot():
    """The weighted loss raises every class's logit by a constant (its base-rate shift).
    Temperature scaling has no intercept and leaves the probabilities too high; Platt scaling
    fits the intercept back. The calibration slope and intercept measure both."""
    rng = np.random.default_rng(1)
    z = rng.normal(-2.5, 1.5, (8000, 3))
    y = (rng.random(z.shape) < expit(z)).astype(float)
    shifted = expit(z + np.array([2.0, 1.0, 0.3]))  # W-CEL-like shifts
    val, test = slice(0, 4000), slice(4000, None)
    slope, intercept = calibration_slope_intercept(y[test], shifted[test])
    assert slope == pytest.approx([1, 1, 1], abs=0.1)
    assert intercept == pytest.approx([-2.0, -1.0, -0.3], abs=0.15)  # the shift, measured
    ece = {}
    for method in ("platt", "temperature"):
        a, b = fit_recalibration(y[val], shifted[val], method)
        ece[method] = per_class_ece(y[test], apply_recalibration(shifted[test], a, b))
    assert (ece["platt"] < 0.03).all()
    assert ece["temperature"][0] > 0.2  # the largest shift: temperature cannot undo it
    table = metrics_table(
        y[test],
        shifted[test],
        np.arange(4000),
        np.full(3, 0.5),
        ["A", "B", "C"],
        20,
        0,
        fit_recalibration(y[val], shifted[val], "platt"),
    ).set_index("label")
    assert table.loc["A", "cal_intercept"] == pytest.approx(-2.0, abs=0.15)
    a = table.loc["A"]
    assert a["cal_intercept_ci_low"] <= a["cal_intercept"] <= a["cal_intercept_ci_high"] < -1
    assert abs(a["cal_intercept_scaled"]) < 0.25  # recalibrated on validation: near 0
    assert table.loc["A", "recal_intercept"] == pytest.approx(-2.0, abs=0.2)


def test_a_class_separated_at_half_on_validation_keeps_temperature_1():
    """Positives all at p >= 0.5, negatives all below: the log-loss falls all the way to
    T -> 0, which would make every probability 0 or 1. Separated by rank only (a positive
    below 0.5) the minimum is finite (T = 0.229 here, by a grid), and it is fitted."""
    y = np.array([0, 0, 0, 0, 1, 1])[:, None]
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.55, 0.6])[:, None]
    assert fit_temperatures(y, p)[0] == 1.0
    by_rank = p.copy()
    by_rank[4] = 0.45  # still above every negative, but below 0.5
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 20001))
    z = logit(by_rank[:, 0])
    losses = [np.mean(np.logaddexp(0, z / t) - y[:, 0] * z / t) for t in grid]
    assert grid[np.argmin(losses)] == pytest.approx(0.229, abs=0.002)
    assert fit_temperatures(y, by_rank)[0] == pytest.approx(grid[np.argmin(losses)], rel=1e-3)


def test_wilson_intervals_at_the_edges_and_iobb_by_hand():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)  # not a zero-width [0, 0]
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.7225, abs=1e-4)
    assert all(np.isnan(wilson_interval(0, 0)))
    # A small detected box inside a large expert box: IoU 1/16 (area 1 vs 16), IoBB 1.
    assert iobb((1, 1, 1, 1), (0, 0, 4, 4)) == 1.0 and iou((1, 1, 1, 1), (0, 0, 4, 4)) == 1 / 16
    # A large detection around a small finding: IoBB 1/16; an empty detection scores 0.
    assert iobb((0, 0, 4, 4), (1, 1, 1, 1)) == 1 / 16 and iobb((0, 0, 0, 0), (0, 0, 4, 4)) == 0


def test_localisation_table_counts_boxes_with_intervals():
    results = pd.DataFrame(
        {"label": ["Mass"] * 4 + ["Nodule"] * 2, "iou": [0.5, 0.4, 0.1, 0.0, 0.35, 0.2]}
    )
    results["iobb"] = [1.0, 0.9, 0.5, 0.0, 0.6, 0.3]
    in_file = pd.Series(["Mass"] * 10 + ["Nodule"] * 5 + ["Hernia"])
    table = accuracy_table(results, ["Mass", "Nodule", "Hernia"], [0.3], [0.5], in_file).set_index(
        "label"
    )
    assert table.loc["Mass", "n_boxes"] == 4 and table.loc["Mass", "n_boxes_in_file"] == 10
    assert table.loc["Mass", "acc_iou_0.3"] == 0.5 and table.loc["Mass", "acc_iobb_0.5"] == 0.75
    assert (table.loc["all", "n_boxes"], table.loc["all", "n_boxes_in_file"]) == (6, 16)
    assert table.loc["all", "acc_iou_0.3"] == pytest.approx(3 / 6)
    assert table.loc["all", ["acc_iou_0.3_ci_low", "acc_iou_0.3_ci_high"]].tolist() == (
        pytest.approx(list(wilson_interval(3, 6)))
    )
    # A class without boxes on the test images: counted as 0, accuracy undefined, no crash.
    assert table.loc["Hernia", "n_boxes"] == 0 and np.isnan(table.loc["Hernia", "acc_iou_0.3"])


def test_prediction_files_read_back_in_label_order_and_missing_columns_are_named(tmp_path):
    pred = pd.DataFrame({"image": ["a.png", "b.png"], "prob_B": [0.1, 0.2], "prob_A": [0.3, 0.4]})
    pred[["label_A", "label_B"]] = [[1, 0], [0, 1]]
    pred.to_csv(tmp_path / "val.csv", index=False)
    y, p = read_predictions(tmp_path / "val.csv", ["A", "B"])
    np.testing.assert_array_equal(y, [[1, 0], [0, 1]])
    np.testing.assert_allclose(p, [[0.3, 0.1], [0.4, 0.2]])
    pred.drop(columns=["label_B"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"bad\.csv has no column\(s\) label_B$"):
        read_predictions(tmp_path / "bad.csv", ["A", "B"])


def test_roc_points_are_scikit_learns_roc_curve():
    """The figures' ROC curve (NumPy) is scikit-learn's, ties and collinear points included."""
    from sklearn.metrics import roc_curve

    from cxr14.metrics import roc_points

    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(3, 80))
        y = rng.integers(0, 2, n)
        if 0 < y.sum() < n:
            p = np.round(rng.random(n), int(rng.integers(1, 3)))  # many ties
            for mine, theirs in zip(roc_points(y, p), roc_curve(y, p), strict=True):
                np.testing.assert_array_equal(mine, theirs)


def test_operating_points_on_test_with_cis_by_hand():
    """Sensitivity, specificity, PPV and NPV at validation thresholds, and the test curve's
    sensitivity at a fixed specificity and specificity at a fixed sensitivity."""
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=float)[:, None]
    p = np.array([0.9, 0.8, 0.4, 0.2, 0.7, 0.3, 0.25, 0.1, 0.05, 0.01])[:, None]
    rates = rates_at(y, p, [0.5])
    # At 0.5: TP 2, FN 2, FP 1, TN 5.
    assert rates["recall"][0] == 0.5 and rates["specificity"][0] == pytest.approx(5 / 6)
    assert rates["precision"][0] == pytest.approx(2 / 3)
    assert rates["npv"][0] == pytest.approx(5 / 7)
    # Specificity >= 0.9 allows no false positive: thresholds above 0.7, sensitivity 2/4.
    assert rate_at_fixed(y, p, 0.9, "specificity")[0] == 0.5
    # Sensitivity >= 0.75 needs p >= 0.4: one false positive (0.7), specificity 5/6.
    assert rate_at_fixed(y, p, 0.75, "sensitivity")[0] == pytest.approx(5 / 6)
    assert np.isnan(rate_at_fixed(np.zeros((3, 1)), p[:3], 0.9, "specificity")[0])
    rng = np.random.default_rng(3)
    yy = (rng.random((400, 2)) < 0.3).astype(float)
    pp = np.clip(0.4 * yy + rng.random((400, 2)) * 0.6, 0, 1)
    thresholds = {"val": np.full(2, 0.5), "sens": np.full(2, 0.3)}
    table = metrics_table(
        yy, pp, np.arange(400) // 2, thresholds, ["A", "B"], 50, 0, None, (0.9,)
    ).set_index("label")
    for col in ("recall_at_val", "npv_at_sens", "sensitivity_at_spec_0.9"):
        low, high = table.loc["A", f"{col}_ci_low"], table.loc["A", f"{col}_ci_high"]
        assert low <= table.loc["A", col] <= high
    assert table.loc["A", "recall_at_val"] == rates_at(yy, pp, [0.5, 0.5])["recall"][0]
    assert table.loc["A", "tp_at_sens"] + table.loc["A", "fn_at_sens"] == yy[:, 0].sum()
    assert table.loc["mean", "specificity_at_sens_0.9"] == pytest.approx(
        np.mean(rate_at_fixed(yy, pp, 0.9, "sensitivity"))
    )


@pytest.mark.parametrize("ties", [False, True])
def test_isotonic_recalibration_is_scikit_learns_and_removes_a_base_rate_shift(ties):
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(2)
    p = rng.random(400)
    p = np.round(p, 1) if ties else p
    y = (rng.random(400) < p**2).astype(float)
    knots = isotonic_knots(y, p)
    reference = IsotonicRegression(out_of_bounds="clip").fit(p, y)
    grid = np.linspace(0, 1, 101)
    np.testing.assert_allclose(np.interp(grid, *knots), reference.predict(grid), atol=1e-12)
    z = rng.normal(-2, 1.5, (6000, 2))
    labels = (rng.random(z.shape) < expit(z)).astype(float)
    shifted = expit(z + 2.0)
    cal = fit_calibration(labels[:3000], shifted[:3000], "isotonic")
    assert cal["method"] == "isotonic" and len(cal["knots"]) == 2
    after = per_class_ece(labels[3000:], calibrate(shifted[3000:], cal))
    assert (after < 0.03).all() and (per_class_ece(labels[3000:], shifted[3000:]) > 0.2).all()
    table = metrics_table(
        labels[3000:], shifted[3000:], np.arange(3000), np.full(2, 0.5), ["A", "B"], 10, 0, cal
    )
    assert table["recal_slope"].isna().all() and (table["ece_scaled"].iloc[:2] < 0.03).all()
