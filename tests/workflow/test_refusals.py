"""Bad configurations, experiment plans and images: refused before any job naming the
culprit, or skipped everywhere."""

from __future__ import annotations

import h5py
import pandas as pd
import pytest
from tiny_workflow import DATA_OUTPUTS

from cxr14.testing import hangguard
from cxr14.testing.workflow import snakemake, write_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"preprocess": {"on_bad_image": "ignore"}}, "on_bad_image"),
        ({"preprocess": {"size": "big"}}, "size"),
        ({"split": {"method": "random"}}, "method"),
        ({"oversample": {"treshold": 0.1}}, "treshold"),
        ({"data": {"source": "nih"}}, "nih_dir"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, overrides, key):
    write_config(tmp_path, overrides)
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "configuration problem" in out and key in out
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"runs": [{"name": "a.b", "arch": "simple_cnn"}]}, "runs[0] ('a.b'): a run name"),
        ({"runs": [{"name": "x/y", "arch": "simple_cnn"}]}, "runs[0] ('x/y'): a run name"),
        ({"runs": [{"name": "x", "arch": "alexnet"}]}, "unknown arch 'alexnet'"),
        (
            {"runs": [{"name": "x", "arch": "simple_cnn", "freeze": "none"}]},
            "'freeze' is not a setting of simple_cnn",
        ),
        (
            {"runs": [{"name": "x", "arch": "resnet18"}, {"name": "x", "arch": "vgg_like"}]},
            "runs[1] ('x'): the run name 'x' is used twice",
        ),
        ({"compare": [["vgg_like", "vgg_like"]]}, "compares run 'vgg_like' with itself"),
        ({"compare": [["vgg_like", "nope"]]}, "compare[0] ['vgg_like', 'nope']: unknown run"),
        ({"split": {"method": "official", "folds": 5}}, "split.folds (5) is only for"),
        ({"split": {"method": "patient_kfold", "folds": 1}}, "split.folds must be at least 2"),
        ({"split": {"method": "patient_kfold"}}, "patient_kfold needs split.folds"),
        ({"split": {"method": "patient_kfold", "folds": 999}}, "more than the data set's"),
    ],
)
def test_bad_experiment_plan_fails_before_any_job_naming_the_key(tmp_path, overrides, expected):
    write_config(tmp_path, overrides)
    proc = snakemake(tmp_path, check=False)
    assert proc.returncode != 0
    assert expected in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_bad_image_stops_the_run_or_is_skipped_everywhere(tmp_path):
    write_config(tmp_path)
    snakemake(tmp_path, "results/synthetic/Data_Entry_2017.csv", guard=hangguard.PARTIAL_RUN)
    images = sorted((tmp_path / "results/synthetic/images").iterdir())
    bad = {images[5].name: "zero-byte file", images[30].name: "truncated or corrupt PNG"}
    images[5].write_bytes(b"")
    images[30].write_bytes(images[30].read_bytes()[:300])

    proc = snakemake(tmp_path, *DATA_OUTPUTS, check=False, guard=hangguard.PARTIAL_RUN)
    assert proc.returncode != 0
    # Shards run in parallel and the run stops at the first failure, so either bad file may be
    # the one reported; the message names it with its reason.
    out = proc.stdout + proc.stderr
    assert any(f"{name}: {reason}" in out for name, reason in bad.items())
    assert not (tmp_path / "results/hdf5/synthetic/images_32.h5").exists()

    write_config(tmp_path, {"preprocess": {"on_bad_image": "skip"}})
    snakemake(tmp_path, *DATA_OUTPUTS, guard=hangguard.PARTIAL_RUN)
    skipped = pd.read_csv(tmp_path / "results/tables/synthetic/skipped_images.csv")
    assert set(skipped["image"]) == set(bad)
    for name, reason in bad.items():
        assert skipped.set_index("image").loc[name, "reason"].startswith(reason)
    labels = pd.read_csv(tmp_path / "results/metadata/synthetic/labels.csv")
    splits = pd.read_csv(tmp_path / "results/splits/synthetic/holdout/splits.csv")
    assert len(labels) == len(splits) == 58
    assert not set(bad) & set(labels["image"]) and not set(bad) & set(splits["image"])
    with h5py.File(tmp_path / "results/hdf5/synthetic/images_32.h5") as h5:
        assert h5["images"].shape[0] == 58
