"""The shipped configurations: valid, and the NIH preset really carries the seed's settings."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO
from snakemake.utils import update_config, validate

SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")


def _load(name):
    return yaml.safe_load((REPO / "config" / name).read_text())


def _settings(cfg, arch):
    shared = {k: v for k, v in cfg["train"].items() if k not in ("archs", "gpus", "threads")}
    return {**shared, **cfg["models"].get(arch, {})}


def test_default_config_is_valid():
    cfg = _load("config.yaml")
    validate(cfg, SCHEMA)
    assert cfg["data"]["source"] == "synthetic" and cfg["preprocess"]["size"] == 256


@pytest.mark.parametrize("arch", ["simple_cnn", "vgg_like", "resnet18", "densenet121"])
def test_nih_preset_merged_over_defaults_keeps_the_seed_settings(arch):
    cfg = copy.deepcopy(_load("config.yaml"))
    update_config(cfg, _load("nih.yaml"))  # what `--configfile config/nih.yaml` does
    validate(cfg, SCHEMA)
    s = _settings(cfg, arch)
    assert (s["input_size"], s["batch_size"], s["epochs"], s["milestones"]) == (256, 64, 120, [60])
    assert s["lr"] == (1e-4 if arch == "resnet18" else 1e-3)
    assert s["loss"] == "wcel" and s["sampling"] == "oversample" and s["augment"] is False
    assert cfg["data"]["source"] == "nih" and cfg["preprocess"]["size"] == 256
    if arch in ("resnet18", "densenet121"):
        assert s["weights"] == "imagenet"


def test_schema_rejects_unknown_model_keys():
    cfg = _load("config.yaml")
    cfg["models"]["vgg_like"]["width"] = [1, 2]
    with pytest.raises(Exception, match="width"):
        validate(cfg, SCHEMA)
