"""The experiment plan from a configuration: runs, seeds, splits, layered settings, and every
configuration problem named by its key (cxr14.settings; the workflow runs the same checks)."""

from __future__ import annotations

import pytest
import yaml
from helpers import SCHEMA

from cxr14.settings import (
    DEFAULTS,
    check_complete,
    config_problems,
    fold_problems,
    label_efficiency,
    replicates,
    schema_problems,
    split_ids,
    train_settings,
    with_defaults,
)


def _config(**overrides):
    base = {
        "train": {"lr": 1e-3, "batch_size": 16, "seeds": [0, 1]},
        "models": {"resnet18": {"lr": 1e-4, "weights": "none"}},
        "runs": [
            {"name": "cnn", "arch": "simple_cnn"},
            {"name": "r18", "arch": "resnet18"},
            {"name": "r18-bce", "arch": "resnet18", "loss": "bce", "batch_size": 8, "seeds": [5]},
        ],
        "compare": [["r18", "r18-bce"]],
    }
    return with_defaults({**base, **overrides}, SCHEMA)


def test_settings_are_layered_train_then_architecture_then_run():
    cfg = _config()
    cnn, r18, bce = (train_settings(cfg, r, 3) for r in ("cnn", "r18", "r18-bce"))
    assert (cnn["lr"], r18["lr"], bce["lr"]) == (1e-3, 1e-4, 1e-4)
    assert (cnn["batch_size"], r18["batch_size"], bce["batch_size"]) == (16, 16, 8)
    assert (r18["loss"], bce["loss"]) == ("wcel", "bce")
    assert bce["weights"] == "none" and bce["run"] == "r18-bce" and bce["seed"] == 3
    assert not {"name", "seeds", "gpus", "threads"} & set(bce)
    for s in (cnn, r18, bce):
        check_complete(s)


def test_one_job_per_run_split_and_seed():
    cfg = _config()
    assert replicates(cfg) == [
        ("cnn", "holdout", 0),
        ("cnn", "holdout", 1),
        ("r18", "holdout", 0),
        ("r18", "holdout", 1),
        ("r18-bce", "holdout", 5),
    ]
    kfold = _config(split={"method": "patient_kfold", "folds": 3})
    assert split_ids(kfold) == ["fold1", "fold2", "fold3"]
    assert len(replicates(kfold)) == 3 * 5
    assert replicates(kfold, "r18-bce") == [("r18-bce", f"fold{k}", 5) for k in (1, 2, 3)]


def test_a_valid_plan_has_no_problems():
    assert config_problems(_config()) == []
    assert config_problems(_config(split={"method": "patient_kfold", "folds": 2})) == []


@pytest.mark.parametrize(
    "runs, expected",
    [
        ([{"name": "", "arch": "simple_cnn"}], "runs[0] (''): a run name must be"),
        ([{"name": "a b", "arch": "simple_cnn"}], "runs[0] ('a b'): a run name must be"),
        ([{"name": "v1.2", "arch": "simple_cnn"}], "runs[0] ('v1.2'): a run name must be"),
        ([{"name": "a/b", "arch": "simple_cnn"}], "runs[0] ('a/b'): a run name must be"),
        (
            [{"name": "a", "arch": "resnet18"}, {"name": "a", "arch": "resnet18"}],
            "runs[1] ('a'): the run name 'a' is used twice",
        ),
        (
            [{"name": "a", "arch": "vgg16"}],
            "runs[0] ('a'): unknown arch 'vgg16'; known: simple_cnn",
        ),
        (
            [{"name": "a", "arch": "simple_cnn", "freeze": "none"}],
            "runs[0] ('a'): 'freeze' is not a setting of simple_cnn",
        ),
        ([{"name": "a", "arch": "resnet18", "batch_size": 0}], "runs[0] ('a'): batch_size: 0"),
        ([{"name": "a", "arch": "resnet18", "loss": "focal"}], "runs[0] ('a'): loss: 'focal'"),
    ],
)
def test_bad_runs_are_named(runs, expected):
    problems = config_problems(_config(runs=runs, compare=[]))
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    "compare, expected",
    [
        ([["r18", "nope"]], "compare[0] ['r18', 'nope']: unknown run 'nope'"),
        ([["r18", "r18"]], "compare[0] ['r18', 'r18']: compares run 'r18' with itself"),
        ([["cnn", "r18"], ["cnn", "r18"]], "compare[1] ['cnn', 'r18']: the pair is listed twice"),
    ],
)
def test_bad_comparisons_are_named(compare, expected):
    assert any(p.startswith(expected) for p in config_problems(_config(compare=compare)))


@pytest.mark.parametrize(
    "split, expected",
    [
        ({"method": "patient_kfold"}, "split.method patient_kfold needs split.folds"),
        ({"method": "patient_kfold", "folds": 1}, "split.folds must be at least 2, not 1"),
        ({"method": "official", "folds": 5}, "split.folds (5) is only for split.method"),
        ({"method": "patient_random", "folds": 5}, "split.folds (5) is only for split.method"),
    ],
)
def test_bad_folds_are_named(split, expected):
    assert any(p.startswith(expected) for p in config_problems(_config(split=split)))


def test_more_folds_than_patients_is_refused():
    cfg = _config(split={"method": "patient_kfold", "folds": 30})
    assert fold_problems(cfg, 30) == []
    assert fold_problems(cfg, 29) == ["split.folds (30) is more than the data set's 29 patients"]
    assert fold_problems(cfg, None) == []  # unknown before the run: make_splits checks it


def test_a_missing_prediction_folder_is_named(tmp_path):
    missing = tmp_path / "mine"
    problems = config_problems(_config(predict={"input_dir": str(missing)}))
    assert problems == [f"predict.input_dir: folder {missing} does not exist"]
    missing.mkdir()
    assert config_problems(_config(predict={"input_dir": str(missing)})) == []


def test_schema_problems_name_the_key_its_file_and_the_nearest_known_key(tmp_path):
    schema = yaml.safe_load(SCHEMA.read_text())
    mine = tmp_path / "mine.yaml"
    mine.write_text("models:\n  vgg_like:\n    widht: [4]\ntrain:\n  batch_size: 0\n")
    config = with_defaults({})
    config["models"]["vgg_like"]["widht"] = [4]
    config["train"]["batch_size"] = 0
    config["eval"]["zzz"] = 1
    problems = schema_problems(config, schema, [DEFAULTS, mine])
    assert problems == [
        "eval.zzz: unknown key (known: "
        + ", ".join(schema["properties"]["eval"]["properties"])
        + ")",
        f"models.vgg_like.widht (in {mine}): unknown key; did you mean 'widths'?",
        f"train.batch_size (in {mine}): 0 is less than the minimum of 1",
    ]
    # A valid configuration: the consistency checks run; an invalid one stops at the schema.
    assert config_problems(with_defaults({})) == []
    assert config_problems(config) == problems[:1] + [
        p.split(" (in")[0] + p.split(")", 1)[1] for p in problems[1:]
    ]


def test_a_jobs_settings_do_not_depend_on_the_order_of_keys_in_the_files():
    """Snakemake compares params as written: the same settings listed in another order must
    not rerun a training."""
    a = _config()
    b = {**a, "train": dict(reversed(a["train"].items()))}  # as another file's order gives it
    assert list(train_settings(a, "cnn", 0).items()) == list(train_settings(b, "cnn", 0).items())


def test_label_efficiency_groups_runs_that_differ_only_in_their_fraction():
    cfg = _config(
        runs=[
            {"name": "cnn", "arch": "simple_cnn"},
            {"name": "cnn10", "arch": "simple_cnn", "label_fraction": 0.1},
            {"name": "cnn10-lr", "arch": "simple_cnn", "label_fraction": 0.1, "lr": 0.01},
            {"name": "probe1", "arch": "resnet18", "freeze": "backbone", "label_fraction": 0.01},
            {"name": "probe", "arch": "resnet18", "freeze": "backbone"},
            {"name": "tune1", "arch": "resnet18", "freeze": "none", "label_fraction": 0.01},
            {"name": "tune", "arch": "resnet18", "freeze": "none"},
        ]
    )
    rows = label_efficiency(cfg)
    assert [(r["run"], r["group"], r["fraction"]) for r in rows] == [
        ("cnn", "simple_cnn", 1.0),
        ("cnn10", "simple_cnn", 0.1),
        ("probe1", "resnet18, linear probe", 0.01),
        ("probe", "resnet18, linear probe", 1.0),
        ("tune1", "resnet18, fine-tune", 0.01),
        ("tune", "resnet18, fine-tune", 1.0),
    ]
    # The subset is drawn in an order fixed by the split's seed, carried only where it is used.
    assert train_settings(cfg, "cnn10", 0)["label_seed"] == cfg["split"]["seed"]
    assert "label_seed" not in train_settings(cfg, "cnn", 0)


def test_label_efficiency_runs_may_differ_in_their_schedule():
    cfg = _config(
        runs=[
            {"name": "full", "arch": "simple_cnn", "epochs": 10},
            {"name": "tenth", "arch": "simple_cnn", "label_fraction": 0.1, "epochs": 40},
            {"name": "tenth-long", "arch": "simple_cnn", "label_fraction": 0.1, "epochs": 80},
        ]
    )
    # Two runs of one fraction: grouped by schedule, the one with its full-data twin only.
    assert label_efficiency(cfg) == []
    cfg["runs"].append({"name": "full-long", "arch": "simple_cnn", "epochs": 80})
    assert [r["run"] for r in label_efficiency(cfg)] == ["tenth-long", "full-long"]
