"""Data sets beyond NIH end to end: the synthetic copy in CheXpert's layout (JPEGs, uncertain
and blank labels, valid.csv as the official test set) through the whole workflow."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from cxr14.testing import hangguard
from cxr14.testing.workflow import planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow

CHEXPERT = {
    "data": {"source": "synthetic_chexpert", "uncertain": "ones", "blank": "negative"},
    "split": {"method": "official", "seed": 1},
    "runs": [{"name": "simple_cnn", "arch": "simple_cnn"}],
}
DATA_SET_WORDS = re.compile(r"NIH|ChestX-ray|Majkowska|984 boxes")


@pytest.fixture(scope="module")
def chexpert_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("chexpert_wf")
    write_config(wd, CHEXPERT)
    snakemake(wd, guard=hangguard.WORKFLOW)
    return wd


def test_a_data_set_without_boxes_or_expert_labels_plans_no_such_jobs(tmp_path):
    write_config(tmp_path, CHEXPERT)
    jobs = planned_jobs(tmp_path)
    assert jobs["generate_synthetic_data_synthetic_chexpert"] == 1
    assert jobs["parse_official_split"] == 1
    for rule in ("parse_boxes", "localize_findings", "plot_cams", "evaluate_expert_labels"):
        assert rule not in jobs


def test_chexpert_layout_runs_end_to_end_and_speaks_of_its_data_set(chexpert_run):
    r = chexpert_run / "results"
    labels = pd.read_csv(r / "metadata/synthetic_chexpert/labels.csv")
    # The store's table keeps CheXpert's raw values: -1 and blank.
    assert (labels["Atelectasis"] == -1).any() and labels["Atelectasis"].isna().any()
    assert set(labels["view"]) <= {"PA", "AP"}
    splits = pd.read_csv(r / "splits/synthetic_chexpert/holdout/splits.csv")
    valid = pd.read_csv(r / "synthetic_chexpert/CheXpert-v1.0-small/valid.csv")
    assert (splits["split"] == "test").sum() == (valid["Frontal/Lateral"] == "Frontal").sum()
    metrics = pd.read_csv(
        r / "eval/simple_cnn/holdout/seed0/synthetic_chexpert/metrics.csv"
    ).set_index("label")
    assert metrics.loc["mean", "auroc"] > 0
    assert (
        "n_unknown" in metrics
        and not (r / "eval/simple_cnn/holdout/seed0/synthetic_chexpert/cam.png").exists()
    )
    summary = (r / "report/summary.md").read_text()
    assert "CheXpert's layout (not CheXpert)" in summary and "Irvin et al. 2019" in summary
    texts = {p: p.read_text() for p in [*r.glob("report/*.md"), *r.glob("report/*.csv")]}
    texts |= {p: p.read_text() for p in r.glob("models/*/model_card.md")}
    texts |= {p: p.read_text() for p in r.glob("tables/**/*.csv")}
    said = {str(p): DATA_SET_WORDS.findall(t) for p, t in texts.items() if DATA_SET_WORDS.search(t)}
    assert not said


def test_changing_the_label_policy_reruns_training_and_evaluation_only(chexpert_run):
    assert planned_jobs(chexpert_run) == {}
    write_config(chexpert_run, {**CHEXPERT, "data": {**CHEXPERT["data"], "uncertain": "zeros"}})
    try:
        jobs = planned_jobs(chexpert_run)
        assert jobs["train_model"] == 1 and jobs["evaluate_model"] == 1
        for rule in ("downsample_images", "merge_shards", "make_splits", "make_oversample_index"):
            assert rule not in jobs
        write_config(chexpert_run, {**CHEXPERT, "data": {**CHEXPERT["data"], "blank": "unknown"}})
        jobs = planned_jobs(chexpert_run)
        assert jobs["train_model"] == 1 and jobs["evaluate_model"] == 1
    finally:
        write_config(chexpert_run, CHEXPERT)
    assert planned_jobs(chexpert_run) == {}


MIMIC = {
    "data": {"source": "synthetic_mimic_cxr", "mimic_labels": "negbio", "blank": "unknown"},
    "split": {"method": "official", "seed": 1},
    "runs": [{"name": "simple_cnn", "arch": "simple_cnn"}],
}


def test_mimic_cxr_layout_runs_end_to_end_with_study_labels_and_mimic_iv_demographics(tmp_path):
    write_config(tmp_path, MIMIC)
    snakemake(tmp_path, guard=hangguard.WORKFLOW)
    r = tmp_path / "results"
    release = r / "synthetic_mimic_cxr"
    split = pd.read_csv(release / "mimic-cxr-2.0.0-split.csv.gz")
    ours = pd.read_csv(r / "splits/synthetic_mimic_cxr/holdout/splits.csv").set_index("image")[
        "split"
    ]
    official = split.set_index("dicom_id")["split"].reindex(ours.index)
    assert ((ours == "test") == (official == "test")).all()  # the official test split
    metrics = pd.read_csv(
        r / "eval/simple_cnn/holdout/seed0/synthetic_mimic_cxr/metrics.csv"
    ).set_index("label")
    assert metrics["n_unknown"].drop("mean").gt(0).any()  # blank: unknown, not scored
    subgroups = pd.read_csv(r / "eval/simple_cnn/holdout/seed0/synthetic_mimic_cxr/subgroups.csv")
    assert {"F", "M"} <= set(subgroups.loc[subgroups.variable == "sex", "level"])
    texts = [*r.glob("report/*.md"), *r.glob("models/*/model_card.md")]
    assert not [str(p) for p in texts if DATA_SET_WORDS.search(p.read_text())]
    assert "MIMIC-CXR-JPG's layout (not MIMIC-CXR)" in (r / "report/summary.md").read_text()
    # The same folder as a real release (data.source: mimic_cxr) plans without complaint.
    real = {**MIMIC["data"], "source": "mimic_cxr", "mimic_dir": str(release)}
    real["mimic_patients_csv"] = str(release / "patients.csv.gz")
    (tmp_path / "real").mkdir()
    write_config(tmp_path / "real", {**MIMIC, "data": real})
    assert planned_jobs(tmp_path / "real")["parse_official_split"] == 1


def test_own_images_through_a_manifest_run_end_to_end_with_boxes(tmp_path):
    """PNG (8 and 16 bit), JPEG and DICOM files, text patient ids, the manifest's own
    train/val/test split, and boxes in fractions: localisation runs where boxes exist."""
    config = {**MIMIC, "data": {"source": "synthetic_manifest"}}
    write_config(tmp_path, config)
    snakemake(tmp_path, guard=hangguard.WORKFLOW)
    r = tmp_path / "results"
    manifest = pd.read_csv(r / "synthetic_manifest/manifest.csv")
    splits = pd.read_csv(r / "splits/synthetic_manifest/holdout/splits.csv").set_index("image")[
        "split"
    ]
    fixed = manifest.set_index(manifest["path"].str.replace("/", "__"))["split"]
    assert splits.equals(fixed.reindex(splits.index))  # the manifest's own split
    loc = pd.read_csv(
        r / "eval/simple_cnn/holdout/seed0/synthetic_manifest/localization.csv"
    ).set_index("label")
    assert (
        loc.loc["all", "n_boxes"] > 0
        and (r / "eval/simple_cnn/holdout/seed0/synthetic_manifest/cam.png").exists()
    )
    card = (r / "models/simple_cnn/model_card.md").read_text()
    assert "never results on real images" in card and not DATA_SET_WORDS.search(card)
