"""Paired comparison of two models: bootstrap on shared patients, DeLong's test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from cxr14.compare import collect_comparisons, compare_models, compare_runs, paired_bootstrap
from cxr14.metrics import (
    DELONG_UNDEFINED,
    bootstrap_auroc,
    bootstrap_p_value,
    delong_test,
    hierarchical_interval,
    holm,
    stack_auroc,
)

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
    # No variance of the difference: DeLong is undefined, and says so (not p = 1 or 0).
    assert table.loc[LABELS, "p_delong"].isna().all()
    assert (table.loc[LABELS, "note"] == DELONG_UNDEFINED).all()


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


def _obuchowski_by_hand(y, a, b, groups):
    """Obuchowski (1997)'s clustered variance of AUROC(b) - AUROC(a), written out per cluster
    with O(m n) loops."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    m, n = len(pos), len(neg)
    clusters = sorted(set(groups))
    big_i = len(clusters)

    def psi(x, z):
        return 1.0 if x > z else 0.5 if x == z else 0.0

    auc, d10, d01 = [], [], []
    for s in (a, b):
        v10 = {i: np.mean([psi(s[i], s[j]) for j in neg]) for i in pos}
        v01 = {j: np.mean([psi(s[i], s[j]) for i in pos]) for j in neg}
        theta = np.mean(list(v10.values()))
        auc.append(theta)
        d10.append([sum(v10[i] - theta for i in pos if groups[i] == c) for c in clusters])
        d01.append([sum(v01[j] - theta for j in neg if groups[j] == c) for c in clusters])
    d10, d01 = np.array(d10), np.array(d01)
    f = big_i / (big_i - 1)
    s10, s01, s11 = f / m * d10 @ d10.T, f / n * d01 @ d01.T, f * d10 @ d01.T
    cov = s10 / m + s01 / n + (s11 + s11.T) / (m * n)
    return auc[1] - auc[0], cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]


def test_clustered_delong_matches_obuchowski_written_out():
    rng = np.random.default_rng(8)
    groups = np.repeat(np.arange(15), rng.integers(1, 6, 15))
    y = (rng.random(len(groups)) < 0.4).astype(int)
    a = np.round(rng.random(len(y)) + 0.3 * y, 1)
    b = np.round(rng.random(len(y)) + 0.6 * y, 1)
    diff, p = delong_test(y, a, b, groups)
    ref_diff, ref_var = _obuchowski_by_hand(y, a, b, groups)
    assert diff == pytest.approx(ref_diff)
    assert p == pytest.approx(2 * norm.sf(abs(ref_diff) / np.sqrt(ref_var)))
    # One image per patient: DeLong's own test, up to its n/(n-1) normalisation.
    single = delong_test(y, a, b, np.arange(len(y)))[1]
    assert single == pytest.approx(delong_test(y, a, b)[1], rel=0.1)
    assert np.isnan(delong_test(np.r_[1, np.zeros(9)], a[:10], b[:10], groups[:10])[1])


def _null_rejection(clustered: bool, n_sim: int, seed: int = 0) -> float:
    """Share of rejections at 5% of two models with the same AUROC, on patients with 1-6
    images whose scores share model-specific patient effects (as two networks' errors do)."""
    rng = np.random.default_rng(seed)
    rejected = 0
    for _ in range(n_sim):
        groups = np.repeat(np.arange(150), rng.integers(1, 7, 150))  # ~3.5 images per patient
        sick = rng.random(150) < 0.3
        y = (sick[groups] & (rng.random(len(groups)) < 0.9)).astype(int)
        a = y + rng.normal(0, 1, 150)[groups] + rng.normal(0, 0.5, len(y))
        b = y + rng.normal(0, 1, 150)[groups] + rng.normal(0, 0.5, len(y))
        p = delong_test(y, a, b, groups if clustered else None)[1]
        rejected += p < 0.05
    return rejected / n_sim


def test_clustered_delong_holds_its_level_where_images_of_a_patient_are_correlated():
    """Under the null with ~3.5 correlated images per patient, DeLong's image-level variance
    rejects far more often than 5%; the patient-clustered one stays within Monte-Carlo error
    (400 simulations: 5% +- 2.2 points at two standard errors, so 2.5-8.5% allowed)."""
    clustered = _null_rejection(True, 400)
    naive = _null_rejection(False, 400)
    assert 0.025 <= clustered <= 0.085, clustered
    assert naive > clustered + 0.05, (naive, clustered)


def test_holm_adjusts_over_the_classes_and_leaves_the_mean_alone():
    # Holm (1979): sorted 0.01, 0.02, 0.04 (and a NaN) -> 3 x 0.01, 2 x 0.02, 1 x 0.04,
    # made non-decreasing: 0.03, 0.04, 0.04.
    np.testing.assert_allclose(
        holm([0.04, 0.01, np.nan, 0.02]), [0.04, 0.03, np.nan, 0.04], equal_nan=True
    )
    assert holm([0.6, 0.5])[0] == 1.0  # capped
    y, weak, strong, groups = _case()
    table = compare_models(y, weak, strong, groups, LABELS, n_boot=50).set_index("label")
    np.testing.assert_allclose(
        table.loc[LABELS, "p_delong_holm"], holm(table.loc[LABELS, "p_delong"])
    )
    assert (table.loc[LABELS, "p_bootstrap_holm"] >= table.loc[LABELS, "p_bootstrap"]).all()
    assert table.loc["mean", "p_bootstrap_holm"] == table.loc["mean", "p_bootstrap"]


def test_the_run_interval_covers_both_seed_spread_and_test_sampling():
    """Three seeds of one setting whose AUROCs differ (training noise): the two-stage interval
    (seeds, then patients) is wider than the patient bootstrap of their average alone, and with
    one seed it is that seed's patient bootstrap."""
    y, weak, strong, groups = _case(seed=5)
    rng = np.random.default_rng(6)
    seeds = np.stack([weak + k * 0.3 * y + rng.random(y.shape) * 0.1 for k in range(3)])
    low, high = hierarchical_interval(y, seeds, groups, n_boot=200, seed=1)
    mean = stack_auroc(y, seeds)[1]
    assert low[-1] <= mean <= high[-1]
    # The patients alone, with the seeds fixed (no seed resampling):
    fixed = paired_bootstrap(y, np.zeros_like(seeds), seeds, groups, 200, 1)[:, -1]
    fixed_low, fixed_high = np.percentile(fixed + 0.5, [2.5, 97.5])  # AUROC(zeros) = 0.5
    assert high[-1] - low[-1] > fixed_high - fixed_low
    one_low, one_high = hierarchical_interval(y, seeds[:1], groups, n_boot=200, seed=1)
    assert one_low[-1] <= stack_auroc(y, seeds[:1])[1] <= one_high[-1]


def test_bootstrap_p_value_is_never_zero():
    diffs = np.full((99, 1), 0.3)  # every replicate on one side
    assert bootstrap_p_value(diffs, 0.05)[0] == pytest.approx(2 / 100)
    centred = np.r_[np.linspace(-1, 1, 99)][:, None]
    assert bootstrap_p_value(centred, 0.05)[0] == 1.0


def _replicates(base, n_rep, scale, seed):
    """``n_rep`` replicates of a model: ``base`` plus a little seed-specific noise."""
    rng = np.random.default_rng(seed)
    return np.stack([base + scale * rng.random(base.shape) for _ in range(n_rep)])


def test_a_stack_of_replicates_compared_with_itself_differs_by_exactly_zero():
    y, weak, _, groups = _case(n_patients=40)
    stack = _replicates(weak, 3, 0.2, seed=1)
    table = compare_models(y, stack, stack, groups, LABELS, n_boot=20).set_index("label")
    assert (table["difference"] == 0).all()
    assert (table[["ci_low", "ci_high"]] == 0).all().all()
    assert (table["p_bootstrap"] == 1).all()
    assert table["p_delong"].isna().all()  # DeLong: only for two single score vectors


def test_stacks_with_a_known_difference_and_their_auroc_is_the_mean_over_replicates():
    y, weak, strong, groups = _case(n_patients=40)
    a, b = _replicates(weak, 2, 0.1, seed=1), _replicates(strong, 3, 0.1, seed=2)
    table = compare_models(y, a, b, groups, LABELS, n_boot=40).set_index("label")
    for c in [*LABELS, "mean"]:
        assert 0 < table.loc[c, "ci_low"] <= table.loc[c, "difference"]
        assert table.loc[c, "p_bootstrap"] < 0.05
    assert table["p_delong"].isna().all()
    per_rep = [[roc_auc_score(y[:, k], s[:, k]) for k in range(3)] for s in b]
    np.testing.assert_allclose(table.loc[LABELS, "auroc_b"], np.mean(per_rep, axis=0))
    assert table.loc["mean", "auroc_b"] == pytest.approx(np.mean(per_rep))
    swapped = compare_models(y, b, a, groups, LABELS, n_boot=5).set_index("label")
    np.testing.assert_allclose(swapped["difference"], -table["difference"])
    # A stack of one is the plain 2-D model, DeLong included.
    one = compare_models(y, weak[None], strong[None], groups, LABELS, n_boot=5)
    pd.testing.assert_frame_equal(one, compare_models(y, weak, strong, groups, LABELS, n_boot=5))


def _write_run(tmp_path, run, probs, y, groups, images, folds, seeds, pos_at_val):
    """Predictions and metrics files of one run, one per seed x fold; returns the paths."""
    preds, metrics, seed_of = [], [], []
    for r, s in enumerate(seeds):
        for f, rows in enumerate(folds):
            df = pd.DataFrame({"image": images[rows], "patient": groups[rows]})
            for k, c in enumerate(LABELS):
                df[f"prob_{c}"] = probs[r, rows, k]
                df[f"label_{c}"] = y[rows, k]
            pred, met = tmp_path / f"{run}_s{s}_f{f}_pred.csv", tmp_path / f"{run}_s{s}_f{f}_m.csv"
            df.sample(frac=1, random_state=r + f).to_csv(pred, index=False)  # any row order
            counts = [pos_at_val(r, f, k) for k in range(3)]
            rows_m = {"label": [*LABELS, "mean"], "predicted_pos_at_val": [*counts, sum(counts)]}
            pd.DataFrame(rows_m).to_csv(met, index=False)
            preds.append(pred)
            metrics.append(met)
            seed_of.append(s)
    return preds, metrics, seed_of


def _two_runs(tmp_path, n_patients=20):
    y, weak, strong, groups = _case(n_patients=n_patients)
    images = np.array([f"img{i:04d}.png" for i in range(len(y))])
    folds = [np.flatnonzero(groups % 2 == 0), np.flatnonzero(groups % 2 == 1)]  # by patient
    a, b = _replicates(weak, 2, 0.1, seed=1), _replicates(strong, 2, 0.1, seed=2)
    run_a = _write_run(tmp_path, "a", a, y, groups, images, folds, [3, 7], lambda r, f, k: 0)
    run_b = _write_run(
        tmp_path, "b", b, y, groups, images, folds, [3, 7], lambda r, f, k: 10 * r + f + k
    )
    return (y, a, b, groups), run_a, run_b


def test_compare_runs_pools_folds_per_seed_and_equals_compare_models(tmp_path):
    (y, a, b, groups), run_a, run_b = _two_runs(tmp_path)
    (pa, ma, sa), (pb, mb, sb) = run_a, run_b
    out = tmp_path / "cmp.csv"
    table = compare_runs("weak", "strong", pa, pb, ma, mb, sa, sb, out, n_boot=30, seed=4)
    # Each fold is scored by its own model: the comparison is per fold (folds by patient
    # parity here, the order of the fold files).
    ref = compare_models(y, a, b, groups, LABELS, n_boot=30, seed=4, folds=groups % 2)
    cols = ["auroc_a", "auroc_b", "difference", "ci_low", "ci_high", "p_bootstrap"]
    np.testing.assert_allclose(table[cols], ref[cols])
    assert list(table.columns[:3]) == ["run_a", "run_b", "label"]
    assert (table["run_a"] == "weak").all() and (table["run_b"] == "strong").all()
    assert (table["replicates_a"] == 2).all() and (table["replicates_b"] == 2).all()
    assert (table["n_images"] == len(y)).all() and (table["n_patients"] == 20).all()
    # b: per fold f and seed index r, 10 r + f + k; summed over folds 20 r + 1 + 2 k, then
    # averaged over r in {0, 1}: 11 + 2 k; a predicts no positives.
    expected_b = [11, 13, 15, 39]
    np.testing.assert_allclose(table["predicted_pos_b"], expected_b)
    assert (table["predicted_pos_a"] == 0).all()
    np.testing.assert_allclose(table["predicted_pos_difference"], expected_b)
    written = pd.read_csv(out)
    assert list(written.columns) == list(table.columns)
    np.testing.assert_allclose(written["difference"], table["difference"], rtol=1e-5)


def test_folds_are_scored_per_fold_and_averaged_not_pooled():
    """Two fold models whose scores sit at different levels (a fold-specific offset, as two
    independently trained networks have): each ranks its own fold well, but pooled into one
    ranking the offset mixes the folds. The AUROC is the mean of the per-fold AUROCs (Forman
    and Scholz 2010), and the bootstrap resamples within folds."""
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(120), 2)
    folds = groups % 2
    y = (rng.random((240, 1)) < 0.3).astype(float)
    good = y + rng.normal(0, 0.7, y.shape) + 3.0 * folds[:, None]  # fold 1's model: +3
    per_fold = [roc_auc_score(y[folds == f, 0], good[folds == f, 0]) for f in (0, 1)]
    pooled = roc_auc_score(y[:, 0], good[:, 0])
    table = compare_models(y, good, good, groups, ["A"], n_boot=40, folds=folds).set_index("label")
    assert table.loc["A", "auroc_a"] == pytest.approx(np.mean(per_fold))
    assert abs(np.mean(per_fold) - pooled) > 0.05  # pooling would have biased it
    assert np.isnan(table.loc["A", "p_delong"])  # several models: no DeLong
    noisy = good + rng.normal(0, 0.5, y.shape)
    table = compare_models(y, noisy, good, groups, ["A"], n_boot=40, folds=folds)
    row = table.set_index("label").loc["A"]
    assert row["ci_low"] <= row["difference"] <= row["ci_high"]


def test_compare_runs_refuses_runs_scored_on_different_images(tmp_path):
    _, (pa, ma, sa), (pb, mb, sb) = _two_runs(tmp_path)
    df = pd.read_csv(pb[-1])
    df.iloc[1:].to_csv(pb[-1], index=False)  # one image missing in one fold of one seed of b
    with pytest.raises(ValueError, match="'weak' and 'strong' were not scored on the same test"):
        compare_runs("weak", "strong", pa, pb, ma, mb, sa, sb, tmp_path / "c.csv", n_boot=5)


def test_compare_runs_refuses_an_image_twice_within_a_seed(tmp_path):
    _, (pa, ma, sa), (pb, mb, sb) = _two_runs(tmp_path)
    df = pd.read_csv(pa[1])
    pd.concat([df, df.iloc[:1]]).to_csv(pa[1], index=False)
    with pytest.raises(ValueError, match=pa[1].name):
        compare_runs("weak", "strong", pa, pb, ma, mb, sa, sb, tmp_path / "c.csv", n_boot=5)


def test_collect_comparisons_writes_one_table_and_a_forest_plot(tmp_path):
    _, (pa, ma, sa), (pb, mb, sb) = _two_runs(tmp_path)
    c1, c2 = tmp_path / "c1.csv", tmp_path / "c2.csv"
    compare_runs("weak", "strong", pa, pb, ma, mb, sa, sb, c1, n_boot=10)
    # Second pair: one seed each, and a class without positives (NaN, skipped in the plot).
    first = pd.read_csv(pa[0])
    first["label_C"] = 0
    first.to_csv(pa[0], index=False)
    b0 = pd.read_csv(pb[0]).assign(label_C=0)
    b0.to_csv(pb[0], index=False)
    compare_runs("weak", "strong-s3", pa[:1], pb[:1], ma[:1], mb[:1], sa[:1], sb[:1], c2, n_boot=10)
    out_csv, out_png = tmp_path / "all.csv", tmp_path / "all.png"
    table = collect_comparisons([c1, c2], out_csv, out_png)
    assert len(table) == 2 * (len(LABELS) + 1)
    assert np.isnan(table.set_index(["run_b", "label"]).loc[("strong-s3", "C"), "difference"])
    assert len(pd.read_csv(out_csv)) == len(table)
    assert out_png.stat().st_size > 1000


def test_a_class_with_one_positive_patient_has_no_interval_or_bootstrap_p():
    y, weak, strong, groups = _case()
    y[:, 2] = 0
    y[:2, 2] = 1  # both images of patient 0: the class's only positive patient
    table = compare_models(y, weak, strong, groups, LABELS, n_boot=100).set_index("label")
    assert table.loc[LABELS[2], ["ci_low", "ci_high", "p_bootstrap"]].isna().all()
    assert table.loc[LABELS[2], ["difference", "p_delong"]].notna().all()
    assert table.loc["mean", ["ci_low", "ci_high", "p_bootstrap"]].notna().all()


def test_one_patient_has_no_bootstrap_interval():
    """Resampling a single patient always gives the same images: no CI, no p-value."""
    y, weak, strong, _ = _case(n_patients=1, per_patient=40)
    table = compare_models(y, weak, strong, np.zeros(len(y)), LABELS, n_boot=20)
    assert table[["ci_low", "ci_high", "p_bootstrap"]].isna().all().all()
    assert table["difference"].notna().all()
