"""Several data sets in one workflow: per-set stores built once for every run, runs trained on
one set or both pooled, every run tested on both test splits, and the transfer matrix. The two
synthetic sets are in two layouts (NIH's, CheXpert's) with different patients and, in the
second, four of the seven shared findings defined on other planted patterns: a model trained on
either loses AUROC on the other by construction."""

from __future__ import annotations

import base64
import os
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from cxr14.testing import hangguard
from cxr14.testing.workflow import planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow

# The second set's labeller: finding -> the planted findings it reports it for: other patterns
# than the findings' own (drawn independently of them, unlike them to the first set's model),
# that a small CNN learns at 48x48.
RELABEL = {
    "Atelectasis": ["Emphysema"],
    "Edema": ["Atelectasis"],
    "Consolidation": ["Pneumothorax"],
    "Pneumothorax": ["Cardiomegaly"],
}
# The findings NIH's and CheXpert's labels share, by their NIH names (the first set's model's
# classes) and CheXpert's.
SHARED = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Pneumonia",
    "Pneumothorax",
]
CHEXPERT_SHARED = [
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
    "Pneumonia",
    "Pneumothorax",
]
RUNS = [
    {"name": "cnn_a", "arch": "simple_cnn", "train_on": ["a"]},
    {"name": "cnn_b", "arch": "simple_cnn", "train_on": ["b"]},
    {"name": "cnn_ab", "arch": "simple_cnn", "train_on": ["a", "b"]},
]
CROSS = {
    "datasets": {
        "a": {"source": "synthetic"},
        "b": {"source": "synthetic_chexpert", "synthetic": {"seed": 11, "relabel": RELABEL}},
    },
    # Common findings and large test splits: tens of positive patients per finding.
    "synthetic": {"n_images": 1200, "image_size": 128, "seed": 3, "min_prevalence": 0.15},
    "split": {"fractions": {"train": 0.6, "val": 0.15, "test": 0.25}},
    "preprocess": {"size": 48, "shards": 2, "threads": 1},
    "train": {"input_size": 48, "batch_size": 32},
    "models": {"simple_cnn": {"epochs": 30, "milestones": [24]}},
    "runs": RUNS,
    "compare": [["cnn_a", "cnn_ab"]],
    "eval": {"bootstrap": 200, "cam_images": 2, "device": "cpu", "threads": 1},
}


def test_each_data_set_is_built_once_for_every_run_and_every_run_is_tested_on_each(tmp_path):
    write_config(tmp_path, CROSS)
    jobs = planned_jobs(tmp_path)
    for rule in ("parse_metadata", "merge_shards", "make_splits", "make_oversample_index"):
        assert jobs[rule] == 2, rule  # one per data set, shared by the three runs
    assert jobs["downsample_images"] == 4 and jobs["compute_average_image"] == 2
    assert jobs["train_model"] == 3 and jobs["validate_model"] == 3
    assert jobs["evaluate_model"] == 6  # 3 runs x 2 test sets
    assert jobs["compare_runs"] == 2 and jobs["collect_transfer"] == 1
    # Localisation and expert labels: the NIH-layout set's, for the run trained on it alone.
    assert jobs["localize_findings"] == 1 and jobs["evaluate_expert_labels"] == 1
    assert jobs["summarize_models"] == 1


@pytest.fixture(scope="module")
def cross_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("cross")
    write_config(wd, CROSS)
    snakemake(wd, guard=hangguard.WORKFLOW)
    return wd


def test_a_label_shift_shows_as_a_drop_whose_interval_excludes_zero(cross_run):
    r = cross_run / "results/report"
    matrix = pd.read_csv(r / "transfer.csv").set_index(["run", "test_set"])
    assert len(matrix) == 6 and (matrix["n_common"] == 7).all()
    assert matrix.loc[("cnn_a", "b"), "n_findings"] == 7  # the findings both label
    assert matrix.loc[("cnn_a", "a"), "n_findings"] == 14
    assert matrix.loc[("cnn_ab", "a"), "n_findings"] == 14
    drops = pd.read_csv(r / "transfer_drops.csv").set_index("run")
    assert set(drops.index) == {"cnn_a", "cnn_b"}  # the pooled run has no external set
    for run in ("cnn_a", "cnn_b"):
        d = drops.loc[run]
        assert d["n_findings"] == 7 and d["drop_ci_low"] > 0, d.to_dict()
        inside = matrix.loc[(run, d["in_domain_set"]), "auroc_common"]
        outside = matrix.loc[(run, d["external_set"]), "auroc_common"]
        assert inside - outside == pytest.approx(d["drop"], abs=1e-3)


def test_a_finding_a_set_does_not_label_is_never_scored_there(cross_run):
    e = cross_run / "results/eval"
    on_b = pd.read_csv(e / "cnn_a/holdout/seed0/b/metrics.csv")["label"].tolist()
    assert on_b[:-1] == SHARED
    pred = pd.read_csv(e / "cnn_a/holdout/seed0/b/predictions.csv")
    assert not [c for c in pred if re.search("Infiltration|Hernia|Lung Opacity", c)]
    # The pooled model predicts the union of findings; on each set only that set's are scored.
    pooled = pd.read_csv(e / "cnn_ab/holdout/seed0/a/metrics.csv")["label"].tolist()
    assert "Lung Opacity" not in pooled and "Infiltration" in pooled
    comparisons = pd.read_csv(cross_run / "results/report/comparisons.csv")
    assert set(comparisons["test_set"]) == {"a", "b"}


def test_the_transfer_matrix_is_in_the_report_and_renders_in_chromium(cross_run, tmp_path):
    """The heat map is embedded in the HTML report with its caption, and a headless browser
    decodes it at its full size."""
    from PIL import Image
    from test_report import chromium_run

    figure = cross_run / "results/report/transfer.png"
    with Image.open(figure) as im:
        width = im.size[0]
        assert width > 400 and im.size[1] > 300
    snakemake(cross_run, "--report", "report.html", guard=hangguard.WORKFLOW)
    html = (cross_run / "report.html").read_text()
    assert "transfer.png" in html and "transfer_drops.csv" in html
    assert "in-domain cells (tested on a set the run was trained on) are outlined" in html
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    uris = re.findall(r'"data_uri": "(data:image/png;[^"]+)"', html)
    png = figure.read_bytes()
    uri = next(u for u in uris if base64.b64decode(u.split("base64,", 1)[1]) == png)
    page = tmp_path / "transfer.html"
    page.write_text(
        f'<html><body><img src="{uri}"><script>window.onload = () => {{ document.body.dataset'
        ".width = document.images[0].naturalWidth; };</script></body></html>"
    )
    dom = chromium_run(chromium, tmp_path / "profile", "--dump-dom", page)
    assert int(re.search(r'data-width="(\d+)"', dom).group(1)) == width


def test_changing_one_sets_uncertainty_policy_retrains_only_the_runs_trained_on_it(cross_run):
    assert planned_jobs(cross_run) == {}
    changed = {**CROSS["datasets"], "b": {**CROSS["datasets"]["b"], "uncertain": "ones"}}
    write_config(cross_run, {**CROSS, "datasets": changed})
    try:
        out = snakemake(cross_run, "-n").stdout
        retrained = set(re.findall(r"output: results/models/(\w+)/holdout/seed0/best.pt", out))
        assert retrained == {"cnn_b", "cnn_ab"}
        for rule in ("merge_shards", "make_splits", "make_oversample_index"):
            assert f"rule {rule}:" not in out
    finally:
        write_config(cross_run, CROSS)
    assert planned_jobs(cross_run) == {}


def test_cxr14_evaluate_reads_a_release_folder_over_the_shared_findings(cross_run, tmp_path):
    """`cxr14 evaluate --layout chexpert` with the NIH-layout set's bundle scores the CheXpert
    copy's official test images on the 7 findings both label; a manifest of the same images
    with columns named by finding gives the same AUROCs."""
    exe = str(Path(sys.executable).with_name("cxr14"))
    bundle = str(cross_run / "results/models/cnn_a/bundle.pt")
    release = cross_run / "results/synthetic_chexpert/CheXpert-v1.0-small"
    common = ["--device", "cpu", "--bootstrap", "20"]
    cmd = [exe, "evaluate", "--model", bundle, "--layout", "chexpert", "--data", str(release)]
    run = hangguard.run(
        [*cmd, "--split", "test", "--out", str(tmp_path / "folder"), *common],
        guard=hangguard.COMMAND,
    )
    assert run.returncode == 0, run.stderr
    by_folder = pd.read_csv(tmp_path / "folder/metrics.csv").set_index("label")["auroc"]
    assert list(by_folder.index) == [*SHARED, "mean"]
    valid = pd.read_csv(release / "valid.csv")
    valid = valid[valid["Frontal/Lateral"] == "Frontal"]
    assert len(pd.read_csv(tmp_path / "folder/predictions.csv")) == len(valid)
    (tmp_path / "valid").symlink_to(release / "valid")
    names = {"Pleural Effusion": "Effusion"}  # the manifest speaks of findings
    manifest = pd.DataFrame(
        {
            "path": valid["Path"].str.split("/", n=1).str[1],
            "patient": valid["Path"].str.extract(r"(patient\d+)")[0],
            **{names.get(c, c): valid[c].astype(int) for c in CHEXPERT_SHARED},
        }
    )
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    cmd = [exe, "evaluate", "--model", bundle, "--manifest", str(tmp_path / "manifest.csv")]
    run = hangguard.run([*cmd, "--out", str(tmp_path / "csv"), *common], guard=hangguard.COMMAND)
    assert run.returncode == 0, run.stderr
    by_manifest = pd.read_csv(tmp_path / "csv/metrics.csv").set_index("label")["auroc"]
    pd.testing.assert_series_equal(by_manifest.loc[SHARED], by_folder.loc[SHARED], atol=1e-6)
