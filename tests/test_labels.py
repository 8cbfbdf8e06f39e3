"""Uncertain and blank labels: the policies, the masked losses and the masked metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from cxr14.calibration import fit_temperatures
from cxr14.losses import build_loss, wcel
from cxr14.metadata import label_targets, positives
from cxr14.metrics import (
    bootstrap_metrics,
    delong_test,
    per_class_ap,
    per_class_auroc,
    per_class_brier,
    per_class_ece,
    youden_thresholds,
)

NAN = float("nan")
RAW = np.array([1.0, 0.0, -1.0, NAN])


@pytest.mark.parametrize(
    ("uncertain", "blank", "expected"),
    [
        # Irvin et al. (AAAI 2019), section "Uncertainty approaches": U-Ignore drops the
        # uncertain labels, U-Zeros maps them to 0, U-Ones to 1; blank is negative.
        ("ignore", "negative", [1, 0, NAN, 0]),
        ("zeros", "negative", [1, 0, 0, 0]),
        ("ones", "negative", [1, 0, 1, 0]),
        ("ones", "unknown", [1, 0, 1, NAN]),
        ("ignore", "unknown", [1, 0, NAN, NAN]),
    ],
)
def test_each_policy_gives_the_chexpert_papers_targets(uncertain, blank, expected):
    got = label_targets(RAW, uncertain, blank)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array(expected, dtype=np.float32))


def test_labels_without_a_policy_must_be_known():
    np.testing.assert_array_equal(label_targets([[1, 0], [0, 0]]), [[1, 0], [0, 0]])
    with pytest.raises(ValueError, match="no label policy"):
        label_targets(RAW)
    with pytest.raises(ValueError, match="none of 1, 0, -1"):
        label_targets([1.0, 2.0], "ignore", "negative")
    with pytest.raises(ValueError, match="uncertain='maybe'"):
        label_targets(RAW, "maybe", "negative")


def test_splits_count_definite_positives_only():
    table = pd.DataFrame({"a": [1.0, -1.0, NAN, 0.0], "b": [1.0, 1.0, 0.0, NAN]})
    np.testing.assert_array_equal(positives(table, ["a", "b"]), [[1, 1], [0, 1], [0, 0], [0, 0]])


def test_masked_wcel_by_hand():
    logits = torch.tensor([[0.0, 2.0, 1.0], [-1.0, 0.0, 3.0]])
    targets = torch.tensor([[1.0, 0.0, NAN], [0.0, NAN, 0.0]])
    # Known entries: (0,0) positive; (0,1), (1,0), (1,2) negative. |P| = 1, |N| = 3: the two
    # unknown entries count in neither and add nothing.
    pos = math.log(2)  # -ln sigmoid(0)
    neg = [math.log(1 + math.e**2), math.log(1 + math.e**-1), math.log(1 + math.e**3)]
    by_hand = pos / 1 + sum(neg) / 3
    loss = wcel(logits.requires_grad_(), targets)
    assert loss.item() == pytest.approx(by_hand, abs=1e-6)
    loss.backward()
    # No gradient reaches an unknown entry's logit.
    assert logits.grad[0, 2] == 0 and logits.grad[1, 1] == 0
    assert torch.isfinite(logits.grad).all()


def test_masked_bce_losses_average_over_known_entries():
    logits = torch.zeros(2, 2)
    targets = torch.tensor([[1.0, NAN], [0.0, NAN]])
    assert build_loss("bce")(logits, targets).item() == pytest.approx(math.log(2))
    # pos_weight from known labels only: class 0 has 1 positive and 1 negative -> 1.
    weighted = build_loss("weighted_bce", targets)
    assert weighted(logits, targets).item() == pytest.approx(math.log(2))


def test_metrics_score_each_class_over_its_known_labels():
    rng = np.random.default_rng(0)
    y = (rng.random((300, 3)) < 0.3).astype(float)
    p = np.clip(0.3 * y + rng.random((300, 3)) * 0.7, 0, 1)
    masked = y.copy()
    masked[rng.random((300, 3)) < 0.25] = NAN
    masked[:, 2] = y[:, 2]  # one class fully known
    auroc, ap = per_class_auroc(masked, p), per_class_ap(masked, p)
    brier, ece = per_class_brier(masked, p), per_class_ece(masked, p)
    for k in range(3):
        m = ~np.isnan(masked[:, k])
        assert auroc[k] == pytest.approx(roc_auc_score(masked[m, k], p[m, k]))
        assert ap[k] == pytest.approx(average_precision_score(masked[m, k], p[m, k]))
        assert brier[k] == pytest.approx(np.mean((p[m, k] - masked[m, k]) ** 2))
        assert ece[k] == pytest.approx(per_class_ece(masked[m, k : k + 1], p[m, k : k + 1])[0])
        only = masked[m, k : k + 1]
        assert youden_thresholds(masked, p)[k] == youden_thresholds(only, p[m, k : k + 1])[0]
        assert fit_temperatures(masked, p)[k] == fit_temperatures(only, p[m, k : k + 1])[0]
        diff, pv = delong_test(masked[:, k], p[:, k], 1 - p[:, k])
        assert (diff, pv) == delong_test(masked[m, k], p[m, k], 1 - p[m, k])
    cis = bootstrap_metrics(masked, p, np.arange(300), n_boot=50, seed=0)
    assert all(np.isfinite(low).all() for low, _ in cis.values())
