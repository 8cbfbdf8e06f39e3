"""Paired comparison of two models: bootstrap on shared patients, DeLong's test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from cxr14.compare import compare_models, delong_test
from cxr14.evaluate import bootstrap_auroc

LABELS = ["A", "B", "C"]


def _case(n_patients=120, per_patient=2, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_patients), per_patient)
    y = (rng.random((len(groups), 3)) < 0.3).astype(int)
    noise = rng.random(y.shape)
    weak = np.clip(0.15 * y + noise, 0, None)  # model a: barely better than chance
    strong = np.clip(0.6 * y + 0.5 * noise, 0, None)  # model b: clearly better, same noise
    return y, weak, strong, groups


def test_a_model_compared_with_itself_differs_by_exactly_zero_with_p_1():
    y, weak, _, groups = _case()
    table = compare_models(y, weak, weak, groups, LABELS, n_boot=50).set_index("label")
    assert (table["difference"] == 0).all()
    assert (table[["ci_low", "ci_high"]] == 0).all().all()
    assert (table["p_bootstrap"] == 1).all()
    assert (table.loc[LABELS, "p_delong"] == 1).all()


def test_a_known_difference_is_found_with_its_sign():
    y, weak, strong, groups = _case()
    table = compare_models(y, weak, strong, groups, LABELS, n_boot=200).set_index("label")
    for c in [*LABELS, "mean"]:
        row = table.loc[c]
        assert row["difference"] == pytest.approx(row["auroc_b"] - row["auroc_a"])
        assert 0 < row["ci_low"] <= row["difference"] <= row["ci_high"]
        assert row["p_bootstrap"] < 0.01
    assert (table.loc[LABELS, "p_delong"] < 1e-4).all()
    k = 1
    assert table.loc["B", "auroc_a"] == pytest.approx(roc_auc_score(y[:, k], weak[:, k]))
    # Swapping the models flips the sign and keeps the p-values.
    swapped = compare_models(y, strong, weak, groups, LABELS, n_boot=200).set_index("label")
    np.testing.assert_allclose(swapped["difference"], -table["difference"])
    np.testing.assert_allclose(swapped["p_delong"], table["p_delong"])


def test_pairing_makes_the_interval_narrower_than_two_separate_intervals():
    """Both models see the same hard images; the paired CI of the difference must be far
    narrower than what the two unpaired CIs suggest."""
    y, weak, _, groups = _case(seed=3)
    rng = np.random.default_rng(9)
    close = np.clip(weak + 0.02 * rng.random(weak.shape), 0, None)  # almost the same model
    table = compare_models(y, weak, close, groups, LABELS, n_boot=200).set_index("label")
    lo, hi = bootstrap_auroc(y, weak, groups, n_boot=200)
    paired = table.loc["mean", "ci_high"] - table.loc["mean", "ci_low"]
    assert paired < 0.25 * (hi[-1] - lo[-1])


def _delong_by_hand(y, a, b):
    """The textbook structural components (DeLong et al. 1988), O(m n) loops."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)

    def psi(x, z):
        return 1.0 if x > z else 0.5 if x == z else 0.0

    comps = []
    for s in (a, b):
        v10 = [np.mean([psi(s[i], s[j]) for j in neg]) for i in pos]
        v01 = [np.mean([psi(s[i], s[j]) for i in pos]) for j in neg]
        comps.append((np.mean(v10), np.array(v10), np.array(v01)))
    s10 = np.cov(np.vstack([comps[0][1], comps[1][1]]))
    s01 = np.cov(np.vstack([comps[0][2], comps[1][2]]))
    cov = s10 / len(pos) + s01 / len(neg)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    return comps[1][0] - comps[0][0], var


def test_delong_matches_the_textbook_formula_with_ties():
    rng = np.random.default_rng(5)
    y = (rng.random(40) < 0.4).astype(int)
    a = np.round(rng.random(40) + 0.3 * y, 1)  # rounded: ties on purpose
    b = np.round(rng.random(40) + 0.6 * y, 1)
    diff, p = delong_test(y, a, b)
    ref_diff, ref_var = _delong_by_hand(y, a, b)
    assert diff == pytest.approx(ref_diff)
    assert p == pytest.approx(2 * norm.sf(abs(ref_diff) / np.sqrt(ref_var)))
    assert np.isnan(delong_test(np.zeros(5), a[:5], b[:5])[1])  # no positives: undefined
