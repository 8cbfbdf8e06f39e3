"""Provenance records: the git state of a tree (one uncommitted line changes the record), the
same record for the same tree, data files and stores hashed, the record carried from a
checkpoint into the bundle, its model card and `cxr14 provenance`, and written beside
predictions."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import yaml
from helpers import small_bundle
from PIL import Image

from cxr14 import cli
from cxr14.bundle import build_bundle, load_bundle, model_card
from cxr14.checkpoint import atomic_save
from cxr14.predict import predict, provenance_path
from cxr14.provenance import collect, git_state, rebuild_commands


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A git work tree with one committed file."""
    tree = tmp_path / "tree"
    tree.mkdir()
    _git(tree, "init", "-q")
    _git(tree, "config", "user.email", "t@example.org")
    _git(tree, "config", "user.name", "t")
    (tree / "train.py").write_text("lr = 0.001\nepochs = 3\n")
    (tree / ".gitignore").write_text("results/\n")
    _git(tree, "add", ".")
    _git(tree, "commit", "-qm", "first")
    return tree


def test_one_uncommitted_line_changes_the_record_and_nothing_else_does(repo):
    clean = git_state(repo)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False and clean["diff_sha256"] is None
    assert git_state(repo) == clean  # the same tree, the same record
    (repo / "results").mkdir()
    (repo / "results" / "out.csv").write_text("ignored files are not the tree\n")
    assert git_state(repo) == clean
    (repo / "train.py").write_text("lr = 0.01\nepochs = 3\n")
    one = git_state(repo)
    assert one["commit"] == clean["commit"] and one["dirty"] and len(one["diff_sha256"]) == 64
    (repo / "train.py").write_text("lr = 0.001\nepochs = 4\n")
    other = git_state(repo)
    assert other["dirty"] and other["diff_sha256"] != one["diff_sha256"]
    (repo / "train.py").write_text("lr = 0.001\nepochs = 3\n")
    (repo / ".venv").symlink_to(repo.parent)  # a linked folder: one entry, by its target
    linked = git_state(repo)
    assert linked["dirty"] and linked["diff_sha256"] != one["diff_sha256"]
    (repo / ".venv").unlink()
    (repo / "new.py").write_text("x = 1\n")  # an untracked file is a change too
    assert git_state(repo)["dirty"] and git_state(repo)["diff_sha256"] not in (
        None,
        one["diff_sha256"],
    )


def test_outside_a_git_tree_the_commit_is_unknown(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None, "diff_sha256": None}


def _bundle_from(tmp_path, record, name):
    """A bundle whose checkpoint holds ``record``, as export_model makes it."""
    from cxr14.bundle import bundle_scorer

    bundle = load_bundle(small_bundle(tmp_path / f"{name}.pt"))
    scorer = bundle_scorer(bundle, "cpu")
    scorer.checkpoint["provenance"] = record
    y = np.tile([[0, 1]], (1, 7)).repeat(10, axis=0)
    made = build_bundle(
        scorer,
        y,
        y * 0.5,
        bundle["preprocess"],
        bundle["provenance"] | {"run": "r"},
        bundle["test"],
        0.9,
    )
    atomic_save(made, tmp_path / f"{name}.pt")
    return tmp_path / f"{name}.pt"


def test_bundles_from_trees_one_line_apart_record_different_provenance(tmp_path, repo):
    config = {"runs": [{"name": "r", "arch": "simple_cnn"}], "train": {"epochs": 3}}
    before = collect(config, repo=repo)
    assert collect(config, repo=repo) == before
    (repo / "train.py").write_text("lr = 0.01\nepochs = 3\n")
    after = collect(config, repo=repo)
    a, b = _bundle_from(tmp_path, before, "a"), _bundle_from(tmp_path, after, "b")
    ra, rb = (load_bundle(p)["provenance"]["record"] for p in (a, b))
    assert ra["git"]["commit"] == rb["git"]["commit"] and ra["git"] != rb["git"]
    assert ra["config"] == rb["config"] == config and ra["config_sha256"] == rb["config_sha256"]
    card_a, card_b = model_card(load_bundle(a)), model_card(load_bundle(b))
    assert f"commit {before['git']['commit']}, clean." in card_a
    assert "with uncommitted changes (diff sha256 " in card_b
    # Enough to rebuild it: the commit, and the workflow with the recorded configuration.
    commands = rebuild_commands(load_bundle(b), "c.yaml")
    assert commands[0] == f"git checkout {before['git']['commit']}"
    assert "uncommitted changes" in commands[1]
    assert commands[-1].endswith("--configfile c.yaml results/models/r/bundle.pt")


def test_the_provenance_command_writes_the_recorded_configuration(tmp_path, repo, capsys):
    config = {"runs": [{"name": "r", "arch": "simple_cnn"}], "train": {"epochs": 3}}
    bundle = _bundle_from(tmp_path, collect(config, repo=repo), "a")
    assert (
        cli.main(["provenance", "--model", str(bundle), "--config", str(tmp_path / "c.yaml")]) == 0
    )
    out, err = capsys.readouterr()
    assert json.loads(out)["config_sha256"] and "# to rebuild this model:" in err
    assert yaml.safe_load((tmp_path / "c.yaml").read_text()) == config
    old = small_bundle(tmp_path / "old.pt")  # a bundle from before records were kept
    bundle_dict = load_bundle(old)
    bundle_dict["provenance"].pop("record")
    atomic_save(bundle_dict, old)
    assert cli.main(["provenance", "--model", str(old)]) == 1
    assert "trained before cxr14 recorded its provenance" in capsys.readouterr().err
    assert "## Provenance" not in model_card(bundle_dict)


def test_predict_writes_the_bundles_provenance_beside_its_predictions(tmp_path, repo):
    config = {"runs": [{"name": "r", "arch": "simple_cnn"}]}
    bundle = _bundle_from(tmp_path, collect(config, repo=repo), "a")
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((60, 60), np.uint8)).save(tmp_path / "in" / "x.png")
    predict(bundle, [tmp_path / "in"], tmp_path / "out" / "p.csv", "cpu", backend="torch")
    record = json.loads(provenance_path(tmp_path / "out" / "p.csv").read_text())
    assert record["bundle"] == str(bundle) and len(record["bundle_sha256"]) == 64
    assert record["model"]["record"]["config"] == config
    assert record["prediction"]["backend"].startswith("PyTorch") and record["prediction"]["git"]
