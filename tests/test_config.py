"""The shipped configurations: valid, and the NIH preset really carries the seed's settings."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

from cxr14.settings import config_problems, label_efficiency, runs, train_settings
from cxr14.testing.weights import placeholder_caches
from cxr14.testing.workflow import REPO, planned_jobs, snakemake

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


def _load(name):
    return yaml.safe_load((REPO / "config" / name).read_text())


def _merged(*names):
    """config.yaml with the presets merged over it, as `--configfile` does, validated."""
    cfg = copy.deepcopy(_load("config.yaml"))
    for name in names:
        update_config(cfg, _load(name))
    validate(cfg, SCHEMA)
    return cfg


def test_default_config_is_valid():
    cfg = _load("config.yaml")
    validate(cfg, SCHEMA)
    assert cfg["data"]["source"] == "synthetic" and cfg["preprocess"]["size"] == 256


def test_nih_preset_merged_over_defaults_keeps_the_seed_settings():
    cfg = _merged("nih.yaml")
    assert config_problems(cfg) == []
    for run in runs(cfg):
        s = train_settings(cfg, run, 0)
        arch = s["arch"]
        assert (s["input_size"], s["batch_size"], s["epochs"]) == (256, 64, 120)
        assert s["milestones"] == ([] if arch == "resnet18" else [60])
        assert s["lr"] == (1e-4 if arch == "resnet18" else 1e-3)
        assert s["loss"] == ("bce" if run.endswith("_bce") else "wcel"), run
        assert s["sampling"] == "oversample" and s["augment"] is False
        if arch in ("resnet18", "densenet121"):
            assert s["weights"] == "imagenet"
    assert cfg["data"]["source"] == "nih" and cfg["preprocess"]["size"] == 256
    # The demo's Grad-CAM layer for its 64x64 input is reset to the architecture's own.
    assert cfg["eval"]["cam_layers"] == {"densenet121": "features"}


def test_schema_rejects_unknown_model_keys():
    cfg = _load("config.yaml")
    cfg["models"]["vgg_like"]["width"] = [1, 2]
    with pytest.raises(Exception, match="width"):
        validate(cfg, SCHEMA)


def _dry_run(tmp_path, cfg):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return snakemake(tmp_path, "-n", check=False)


def planned_jobs_of(tmp_path, cfg, *presets):
    """The jobs a dry run plans with config/<presets> and then ``cfg`` over the defaults."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    files = [str(REPO / "config" / p) for p in presets]
    return planned_jobs(tmp_path, "--configfile", *files, str(tmp_path / "config.yaml"))


def test_wrong_data_paths_stop_the_run_before_any_job(tmp_path, nih_copy):
    # A folder that already ran the demo: its old tables must not hide the wrong path.
    (tmp_path / "results" / "metadata").mkdir(parents=True)
    (tmp_path / "results" / "metadata" / "entries.csv").write_text("image,path\n")
    proc = _dry_run(tmp_path, {"data": {"source": "nih", "nih_dir": "/data/does/not/exist"}})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Job stats" not in out
    assert "data.nih_dir: folder /data/does/not/exist does not exist" in out
    # The folder exists, the official split lists do not.
    cfg = {"data": {"source": "nih", "nih_dir": str(nih_copy)}, "split": {"method": "official"}}
    proc = _dry_run(tmp_path, cfg)
    out = proc.stdout + proc.stderr
    assert f"file {nih_copy}/test_list.txt does not exist" in out
    assert f"file {nih_copy}/train_val_list.txt does not exist" in out
    (nih_copy / "Data_Entry_2017.csv").unlink()
    shutil.rmtree(nih_copy / "images")
    proc = _dry_run(tmp_path, {"data": cfg["data"]})
    out = proc.stdout + proc.stderr
    assert f"data.metadata_csv: file {nih_copy}/Data_Entry_2017.csv does not exist" in out
    assert f"no image folder {nih_copy}/images" in out


def test_a_misspelt_key_is_one_short_error_with_a_suggestion(tmp_path):
    """`trian:` for `train:`: the key, the file it is in and the key meant, on one screen (no
    schema or configuration dump)."""
    proc = _dry_run(tmp_path, {"trian": {"epochs": 2}, "data": {"source": "nhi"}})
    out = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode != 0 and len(out) <= 10, out
    config = tmp_path / "config.yaml"
    assert f"  trian (in {config}): unknown key; did you mean 'train'?" in out
    assert any(
        line.startswith(f"  data.source (in {config}): 'nhi' is not one of 'synthetic', 'nih'")
        and line.endswith("; did you mean 'nih'?")
        for line in out
    )


@pytest.mark.parametrize(
    "fractions, message",
    [
        ({"train": 0.9, "val": 0.2, "test": 0.1}, "split.fractions must sum to 1, not 1.2"),
        ({"train": 1.0, "val": 0.1, "test": 0.1}, "fractions"),
        ({"train": 0.8, "val": 0.0, "test": 0.2}, "fractions"),
    ],
)
def test_split_fractions_are_checked_before_any_job(tmp_path, fractions, message):
    proc = _dry_run(tmp_path, {"split": {"fractions": fractions}})
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


def test_seed_study_preset_holds_the_reference_studys_runs_and_comparisons():
    cfg = _merged("nih.yaml", "seed_study.yaml")
    assert config_problems(cfg) == []
    s = {run: train_settings(cfg, run, 0) for run in runs(cfg)}
    assert cfg["train"]["seeds"] == [0, 1, 2]
    assert (s["vgg_like_b64"]["batch_size"], s["vgg_like_b32"]["batch_size"]) == (64, 32)
    for run in ("simple_cnn", "vgg_like_b64", "vgg_like_b32", "vgg_like_bce"):
        assert (s[run]["lr"], s[run]["milestones"], s[run]["gamma"]) == (1e-3, [60], 0.1)
        assert s[run]["epochs"] == 120
    for run in ("resnet18_wcel", "resnet18_bce"):
        # Section 4.3.1: the final layer at a constant 1e-4.
        assert (s[run]["lr"], s[run]["milestones"], s[run]["freeze"]) == (1e-4, [], "backbone")
    assert [r for r in s if s[r]["loss"] == "bce"] == ["vgg_like_bce", "resnet18_bce"]
    assert ["resnet18_bce", "resnet18_wcel"] in cfg["compare"]
    # Over the demo configuration alone it is valid too (plans the study on the demo data).
    assert config_problems(_merged("seed_study.yaml")) == []


def _weight_caches(folder: Path, monkeypatch) -> None:
    """Placeholder ImageNet weights of every architecture in caches under ``folder``, and the
    environment pointing torchvision and Hugging Face there (for the workflow's dry runs)."""
    for key, value in placeholder_caches(folder).items():
        monkeypatch.setenv(key, value)


def test_results_of_another_data_set_are_never_overwritten(tmp_path):
    """A data set's store folder holding a store of another data set (its name now given to
    another source) refuses the run; the same data set, or a fresh folder, plans as usual."""
    import h5py

    (tmp_path / "results" / "hdf5" / "synthetic").mkdir(parents=True)
    store = tmp_path / "results" / "hdf5" / "synthetic" / "images_256.h5"
    with h5py.File(store, "w") as h5:
        h5.attrs["source"], h5.attrs["data_dir"] = "nih", "/data/ChestX-ray14"
    proc = _dry_run(tmp_path, {})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Job stats" not in out
    assert "synthetic/images_256.h5 holds the data set 'nih' at /data/ChestX-ray14" in out
    assert "run each data set in its own folder (snakemake --directory <folder>" in out
    with h5py.File(store, "w") as h5:
        h5.attrs["source"], h5.attrs["data_dir"] = "synthetic", "results/synthetic"
    assert _dry_run(tmp_path, {}).returncode == 0


def test_missing_pretrained_weights_stop_the_run_before_any_job(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = {"models": {"resnet18": {"weights": "imagenet"}, "densenet121": {"weights": "x.pth"}}}
    proc = _dry_run(tmp_path, cfg)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Job stats" not in out
    assert f"runs ('resnet18'): ImageNet weights for resnet18 not found at {tmp_path}" in out
    assert "runs ('densenet121'): models.densenet121.weights: file x.pth does not exist" in out
    _weight_caches(tmp_path, monkeypatch)
    (tmp_path / "x.pth").touch()
    assert _dry_run(tmp_path, cfg).returncode == 0


def test_seed_study_plans_every_job_on_the_real_metadata(tmp_path, nih_dir, monkeypatch):
    _weight_caches(tmp_path, monkeypatch)  # the presets ask for ImageNet weights
    cfg = copy.deepcopy(_load("seed_study.yaml"))
    cfg["data"] = {"source": "nih", "nih_dir": str(nih_dir)}
    jobs = planned_jobs_of(tmp_path, cfg, "nih.yaml")
    assert jobs["train_model"] == 7 * 3 and jobs["evaluate_model"] == 21
    assert jobs["compare_runs"] == 6 and jobs["collect_comparisons"] == 1
    assert jobs["aggregate_run"] == 7 and jobs["make_splits"] == 1


def test_the_backbones_preset_plans_every_backbone_regime_and_fraction(
    tmp_path, nih_dir, monkeypatch
):
    """config/backbones.yaml over the NIH preset, on the real metadata: 4 backbones x probe and
    fine-tune x 1/10/100% x 3 seeds, the label-efficiency table (8 lines of 3 fractions) and
    ten comparisons."""
    _weight_caches(tmp_path, monkeypatch)  # ImageNet weights of all four, looked for first
    cfg = _merged("nih.yaml", "backbones.yaml")
    assert config_problems(cfg) == []
    rows = label_efficiency(cfg)
    assert len(rows) == 24 and len({r["group"] for r in rows}) == 8
    assert {r["fraction"] for r in rows} == {0.01, 0.1, 1.0}
    tune = train_settings(cfg, "vit_small_tune", 0)
    assert (tune["freeze"], tune["lr"], tune["backbone_lr_scale"]) == ("none", 1e-3, 0.1)
    assert tune["input_size"] == 256 and tune["weights"] == "imagenet"
    jobs = planned_jobs_of(
        tmp_path, {"data": {"nih_dir": str(nih_dir)}}, "nih.yaml", "backbones.yaml"
    )
    assert jobs["train_model"] == 24 * 3 and jobs["evaluate_model"] == 72
    assert jobs["compare_runs"] == 10 and jobs["collect_label_efficiency"] == 1


def _leaves(d: dict, prefix: tuple = ()):
    """(key path, value) of every value that is not a non-empty mapping: what a merge of
    configuration files replaces one by one."""
    for key, value in d.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


PRESETS = sorted(p.name for p in (REPO / "config").glob("*.yaml") if p.name != "config.yaml")


@pytest.mark.parametrize("name", PRESETS)
def test_presets_state_only_what_differs_from_the_defaults(name):
    defaults = dict(_leaves(_load("config.yaml")))
    restated = [".".join(k) for k, v in _leaves(_load(name)) if k in defaults and defaults[k] == v]
    assert not restated, f"config/{name} restates config/config.yaml's values of {restated}"


def _schema_defaults(node, path=""):
    if isinstance(node, dict):
        found = [path] if "default" in node else []
        return found + [d for k, v in node.items() for d in _schema_defaults(v, f"{path}/{k}")]
    if isinstance(node, list):
        return [d for i, v in enumerate(node) for d in _schema_defaults(v, f"{path}/{i}")]
    return []


def test_every_default_is_written_once_in_config_yaml():
    """The schema says what is valid and holds no default; config/config.yaml gives every key
    the schema knows a value (but split.folds, which only k-fold splits take); the registry
    holds setting names (test_architecture)."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert _schema_defaults(schema) == []
    cfg = _load("config.yaml")
    sections = schema["properties"]
    for section in set(sections) - {"runs", "compare", "models", "datasets"}:
        if "properties" not in sections[section]:  # a top-level value (container)
            assert section in cfg, section
            continue
        keys = set(sections[section]["properties"]) - ({"folds"} if section == "split" else set())
        assert keys <= set(cfg[section]), (section, keys - set(cfg[section]))
    assert set(sections) == set(cfg)


def _data_set(kind: str, folder: Path) -> dict:
    """A synthetic copy of a layout's files in ``folder`` and the ``data`` keys naming it."""
    from cxr14.synthetic import generate

    generate(folder, n_images=40, image_size=32, writer=f"cxr14.synthetic_{kind}")
    if kind == "chexpert":
        return {"chexpert_dir": str(folder)}
    if kind == "mimic_cxr":
        return {"mimic_dir": str(folder), "mimic_patients_csv": str(folder / "patients.csv.gz")}
    from cxr14.layouts.manifest import SyntheticManifest

    return {"manifest_csv": str(folder / "manifest.csv"), "labels": list(SyntheticManifest.labels)}


@pytest.mark.parametrize("kind", ["chexpert", "mimic_cxr", "manifest"])
def test_each_data_set_preset_plans_the_whole_study(tmp_path, kind, monkeypatch):
    """config/<layout>.yaml with only its data folder changed: valid, and planned end to end
    (no localisation or expert jobs where the data set has no boxes or expert labels)."""
    _weight_caches(tmp_path, monkeypatch)  # the presets ask for ImageNet weights
    data = _data_set(kind, tmp_path / "release")
    split = {"split": {"method": "official"}} if kind == "manifest" else {}
    jobs = planned_jobs_of(tmp_path, {"data": data, **split}, f"{kind}.yaml")
    assert jobs["train_model"] >= 1 and jobs["summarize_models"] == 1
    assert jobs["parse_official_split"] == 1
    assert "localize_findings" not in jobs and "evaluate_expert_labels" not in jobs


def test_the_cross_dataset_preset_plans_every_run_on_every_test_set(tmp_path, monkeypatch):
    """config/cross_dataset.yaml with its three folders changed: each data set's store is
    built once, four trainings, each tested on the three test splits, the transfer matrix."""
    from cxr14.synthetic import generate

    _weight_caches(tmp_path, monkeypatch)  # the presets ask for ImageNet weights
    generate(tmp_path / "nih", n_images=40, image_size=32)
    datasets = {
        "nih": {"nih_dir": str(tmp_path / "nih")},
        "chexpert": _data_set("chexpert", tmp_path / "chexpert"),
        "mimic": _data_set("mimic_cxr", tmp_path / "mimic"),
    }
    jobs = planned_jobs_of(tmp_path, {"datasets": datasets}, "cross_dataset.yaml")
    assert jobs["merge_shards"] == 3 and jobs["make_splits"] == 3
    assert jobs["train_model"] == 4 and jobs["validate_model"] == 4
    assert jobs["evaluate_model"] == 12 and jobs["collect_transfer"] == 1
    assert jobs["compare_runs"] == 9  # three pairs on three test sets
    assert jobs["parse_official_split"] == 1  # MIMIC's; CheXpert's is a random split here
    assert jobs["localize_findings"] == 1  # NIH's boxes, for the run trained on NIH alone


def test_a_relabel_naming_no_planted_finding_stops_the_run_before_any_job(tmp_path):
    bad = {"synthetic": {"relabel": {"Edema": ["Pneumonitis"]}}}
    cfg = {"datasets": {"a": {"source": "synthetic"}, "b": {"source": "synthetic_chexpert", **bad}}}
    proc = _dry_run(tmp_path, cfg)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Job stats" not in out
    assert "datasets.b.synthetic.relabel: unknown finding 'Pneumonitis'" in out
