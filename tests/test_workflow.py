"""End-to-end Snakemake runs of the data stages on a tiny synthetic set."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import REPO, TINY_CONFIG, planned_jobs, snakemake, write_config

from cxr14.layouts.nih import LABELS

pytestmark = pytest.mark.slow

ARCHS = ("simple_cnn", "vgg_like", "resnet18", "densenet121")
EVAL_FILES = (
    "predictions.csv",
    "metrics.csv",
    "localization.csv",
    "history.png",
    "roc.png",
    "filters.png",
    "cam.png",
)
PREPROCESSING = {"generate_synthetic_data", "parse_metadata", "downsample_images", "merge_shards"}
EVALUATION = {
    "evaluate_model",
    "localize_findings",
    "plot_history",
    "plot_roc",
    "plot_filters",
    "plot_cams",
    "summarize_models",
}
OUTPUTS = [
    "results/hdf5/images_32.h5",
    "results/metadata/labels.csv",
    "results/tables/skipped_images.csv",
    "results/tables/class_counts.csv",
    "results/figures/class_counts.png",
    "results/stats/average_image.npy",
    "results/stats/pixel_stats.json",
    "results/figures/average_image.png",
    "results/splits/splits.csv",
    "results/tables/split_counts.csv",
    "results/splits/oversample_index.npy",
    "results/tables/oversample_counts.csv",
    "results/figures/oversample_counts.png",
    *[f"results/models/{a}/{f}" for a in ARCHS for f in ("best.pt", "last.pt", "history.csv")],
    *[f"results/eval/{a}/{f}" for a in ARCHS for f in EVAL_FILES],
    "results/report/summary.csv",
    "results/report/summary.md",
    "results/report/auroc_comparison.png",
]
DATA_OUTPUTS = [
    o for o in OUTPUTS if not o.startswith(("results/models/", "results/eval/", "results/report/"))
]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One complete run of the default target."""
    wd = tmp_path_factory.mktemp("wf")
    write_config(wd)
    proc = snakemake(wd)
    (wd / "console.txt").write_text(proc.stdout + proc.stderr)
    return wd


def test_every_output_is_built_and_consistent(done):
    for out in OUTPUTS:
        assert (done / out).stat().st_size > 0, out
    labels = pd.read_csv(done / "results/metadata/labels.csv")
    splits = pd.read_csv(done / "results/splits/splits.csv")
    with h5py.File(done / "results/hdf5/images_32.h5") as h5:
        assert h5["images"].shape == (60, 32, 32)
        assert h5["image_index"].asstr()[:].tolist() == labels["image"].tolist()
        assert json.loads(h5.attrs["labels"]) == list(LABELS)
        assert "bilinear" in h5.attrs["resize"] and h5.attrs["source"] == "synthetic"
    assert splits["image"].tolist() == labels["image"].tolist()
    assert splits.groupby("patient")["split"].nunique().max() == 1
    index = np.load(done / "results/splits/oversample_index.npy")
    assert set(splits.loc[index, "split"]) == {"train"}
    avg = np.load(done / "results/stats/average_image.npy")
    assert avg.shape == (32, 32) and avg.dtype == np.float32
    for log in ("parse_metadata", "merge_shards", "make_splits", "compute_average_image"):
        assert (done / "logs" / f"{log}.log").stat().st_size > 0


def test_console_shows_one_line_per_epoch_and_evaluation(done):
    console = (done / "console.txt").read_text()
    assert "vgg_like epoch 1/2:" in console and "vgg_like epoch 2/2:" in console
    assert "simple_cnn: best val mean AUROC" in console
    assert "test images: mean AUROC" in console
    assert "localisation of" in console
    assert "it/s]" not in console and "s/it]" not in console  # no per-batch progress bars


def test_jobs_use_the_threads_their_rules_declare(done):
    # TINY_CONFIG: --cores 2, eval.threads 2 (the default); plots declare 1.
    assert "CPU threads: 2" in (done / "logs/evaluate_model/vgg_like.log").read_text()
    assert "CPU threads: 1" in (done / "logs/plot_roc/vgg_like.log").read_text()


def test_rerun_is_a_no_op(done):
    assert planned_jobs(done) == {}


def test_downstream_setting_reruns_only_downstream_jobs(done):
    try:
        write_config(done, {"oversample": {"threshold": 0.3}})
        jobs = planned_jobs(done)
        assert {
            k: jobs.pop(k) for k in ("make_oversample_index", "plot_oversampling", "train_model")
        } == {"make_oversample_index": 1, "plot_oversampling": 1, "train_model": 4}
        assert set(jobs) <= EVALUATION | {"all"}  # and what depends on the models
        write_config(done, {"split": {"seed": 2}})
        jobs = planned_jobs(done)
        assert "make_splits" in jobs and "compute_average_image" in jobs
        assert not PREPROCESSING & set(jobs)
    finally:
        write_config(done)
    assert planned_jobs(done) == {}


def test_training_setting_reruns_no_preprocessing(done):
    try:
        write_config(done, {"train": {**TINY_CONFIG["train"], "lr": 5e-4}})
        jobs = planned_jobs(done)
        assert jobs.pop("train_model") == 4 and set(jobs) <= EVALUATION | {"all"}
        # densenet121 overrides `epochs`, so the shared value does not concern it.
        write_config(done, {"train": {**TINY_CONFIG["train"], "epochs": 3}})
        jobs = planned_jobs(done)
        assert jobs.pop("train_model") == 3 and set(jobs) <= EVALUATION | {"all"}
        # One architecture's hyperparameter: only that architecture's training.
        models = {**TINY_CONFIG["models"], "vgg_like": {"widths": [4, 8], "fc": 16, "lr": 3e-4}}
        write_config(done, {"models": models})
        jobs = planned_jobs(done)
        assert jobs.pop("train_model") == 1 and set(jobs) <= EVALUATION | {"all"}
        assert jobs["evaluate_model"] == 1 and jobs["summarize_models"] == 1
        out = snakemake(done, "-n").stdout
        planned = {a for a in ARCHS if f"output: results/models/{a}/" in out}
        assert planned == {"vgg_like"}
    finally:
        write_config(done)
    assert planned_jobs(done) == {}


def test_trained_models(done):
    for arch in ARCHS:
        hist = pd.read_csv(done / f"results/models/{arch}/history.csv")
        assert len(hist) == (1 if arch == "densenet121" else 2), arch
        log = (done / f"logs/train_model/{arch}.log").read_text()
        assert "best val mean AUROC" in log and "epoch 1" in log
    assert "random initialisation" in (done / "logs/train_model/resnet18.log").read_text()


def test_deleted_figure_rebuilds_only_its_job(done):
    (done / "results/figures/average_image.png").unlink()
    assert planned_jobs(done) == {"plot_average_image": 1, "all": 1}
    snakemake(done)
    assert planned_jobs(done) == {}


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
    assert "validat" in out.lower() and key in out
    assert not (tmp_path / "results").exists()


def test_bad_image_stops_the_run_or_is_skipped_everywhere(tmp_path):
    write_config(tmp_path)
    snakemake(tmp_path, "results/synthetic/Data_Entry_2017.csv")
    images = sorted((tmp_path / "results/synthetic/images").iterdir())
    bad = {images[5].name: "zero-byte file", images[30].name: "truncated or corrupt PNG"}
    images[5].write_bytes(b"")
    images[30].write_bytes(images[30].read_bytes()[:300])

    proc = snakemake(tmp_path, *DATA_OUTPUTS, check=False)
    assert proc.returncode != 0
    # Shards run in parallel and the run stops at the first failure, so either bad file may be
    # the one reported; the message names it with its reason.
    out = proc.stdout + proc.stderr
    assert any(f"{name}: {reason}" in out for name, reason in bad.items())
    assert not (tmp_path / "results/hdf5/images_32.h5").exists()

    write_config(tmp_path, {"preprocess": {"on_bad_image": "skip"}})
    snakemake(tmp_path, *DATA_OUTPUTS)
    skipped = pd.read_csv(tmp_path / "results/tables/skipped_images.csv")
    assert set(skipped["image"]) == set(bad)
    for name, reason in bad.items():
        assert skipped.set_index("image").loc[name, "reason"].startswith(reason)
    labels = pd.read_csv(tmp_path / "results/metadata/labels.csv")
    splits = pd.read_csv(tmp_path / "results/splits/splits.csv")
    assert len(labels) == len(splits) == 58
    assert not set(bad) & set(labels["image"]) and not set(bad) & set(splits["image"])
    with h5py.File(tmp_path / "results/hdf5/images_32.h5") as h5:
        assert h5["images"].shape[0] == 58


def test_interrupted_shard_is_redone_and_the_store_is_identical(tmp_path):
    """Kill the workflow while a shard is being written; the rerun redoes only the shards
    that had not finished, and the final store equals that of an uninterrupted run."""
    cfg = {
        "synthetic": {"n_images": 120, "image_size": 1024, "seed": 3},
        "preprocess": {"shards": 4, "threads": 1},
    }
    ref, wd = tmp_path / "ref", tmp_path / "wd"
    for d in (ref, wd):
        d.mkdir()
        write_config(d, cfg)
    targets = DATA_OUTPUTS  # training is not what this test is about
    snakemake(ref, *targets)
    # Same input data in both folders, so only the interruption differs.
    snakemake(wd, "results/metadata/entries.csv")

    shards = wd / "results/hdf5/shards"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--configfile",
        str(wd / "config.yaml"),
        "--cores",
        "1",
        *targets,
    ]
    proc = subprocess.Popen(
        cmd, cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    try:
        # Wait until one shard is finished and another one is being written, then kill all.
        while time.time() < deadline:
            done = list(shards.glob("*.h5")) if shards.exists() else []
            if done and list(shards.glob("*.partial")):
                break
            assert proc.poll() is None, "workflow finished before it could be interrupted"
            time.sleep(0.02)
        else:
            pytest.fail("no shard was in progress within 300 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in shards.glob("*.h5")}
    assert 0 < len(finished) < 4

    jobs = planned_jobs(wd, *targets)
    assert jobs["downsample_images"] == 4 - len(finished)
    snakemake(wd, "--unlock")  # a killed Snakemake leaves its lock behind
    snakemake(wd, *targets)
    for name, mtime in finished.items():
        assert (shards / name).stat().st_mtime_ns == mtime, f"{name} was redone"
    assert not list(shards.glob("*.partial"))
    with (
        h5py.File(ref / "results/hdf5/images_32.h5") as a,
        h5py.File(wd / "results/hdf5/images_32.h5") as b,
    ):
        np.testing.assert_array_equal(a["images"][:], b["images"][:])
        assert a["image_index"].asstr()[:].tolist() == b["image_index"].asstr()[:].tolist()
    for out in ("results/metadata/labels.csv", "results/splits/splits.csv"):
        assert (ref / out).read_bytes() == (wd / out).read_bytes()
    np.testing.assert_array_equal(
        np.load(ref / "results/stats/average_image.npy"),
        np.load(wd / "results/stats/average_image.npy"),
    )
    shutil.rmtree(ref / "results/synthetic")  # 120 1024x1024 PNGs: free the space early


def test_nih_source_and_official_split_dry_run(tmp_path, nih_dir):
    """The real 112,120-row metadata plans the same jobs (images are read only when run)."""
    nih = {"source": "nih", "nih_dir": str(nih_dir)}
    write_config(
        tmp_path, {"data": nih, "split": {"method": "official"}, "preprocess": {"shards": 32}}
    )
    jobs = planned_jobs(tmp_path)
    assert jobs["downsample_images"] == 32 and "generate_synthetic_data" not in jobs
    assert jobs["parse_metadata"] == 1 and jobs["make_splits"] == 1


def test_evaluation_artifacts(done):
    from PIL import Image

    for arch in ARCHS:
        for f in EVAL_FILES:
            path = done / f"results/eval/{arch}/{f}"
            if f.endswith(".png"):
                with Image.open(path) as im:
                    assert im.size[0] > 300 and im.size[1] > 200, path
                    assert np.asarray(im.convert("L")).std() > 5, f"{path} is blank"
        metrics = pd.read_csv(done / f"results/eval/{arch}/metrics.csv")
        assert list(metrics["label"]) == [*LABELS, "mean"]
        pred = pd.read_csv(done / f"results/eval/{arch}/predictions.csv")
        splits = pd.read_csv(done / "results/splits/splits.csv")
        assert set(pred["image"]) == set(splits.loc[splits["split"] == "test", "image"])
        loc = pd.read_csv(done / f"results/eval/{arch}/localization.csv")
        assert loc.iloc[-1]["label"] == "all" and loc.iloc[-1]["n_boxes"] > 0
    md = (done / "results/report/summary.md").read_text()
    assert "synthetic demo data (not NIH)" in md and "never NIH results" in md
    summary = pd.read_csv(done / "results/report/summary.csv").set_index("model")
    assert summary.loc["CheXNet (Rajpurkar et al. 2017)", "mean_auroc"] == pytest.approx(
        0.841, abs=5e-4
    )
    assert summary.loc["vgg_like", "dataset"] == "synthetic demo data (not NIH)"
    assert summary.loc["resnet18", "weights"].startswith("none")
    assert "linear probe on random features" in summary.loc["resnet18", "note"]
    assert "linear probe" in md


def test_evaluation_setting_reruns_only_evaluation(done):
    try:
        write_config(done, {"eval": {**TINY_CONFIG["eval"], "bootstrap": 30}})
        jobs = planned_jobs(done)
        assert jobs["evaluate_model"] == 4 and set(jobs) <= EVALUATION | {"all"}
        write_config(done, {"eval": {**TINY_CONFIG["eval"], "cam_threshold": 0.6}})
        jobs = planned_jobs(done)
        assert jobs == {"localize_findings": 4, "plot_cams": 4, "summarize_models": 1, "all": 1}
    finally:
        write_config(done)
    (done / "results/eval/vgg_like/roc.png").unlink()
    assert planned_jobs(done) == {"plot_roc": 1, "all": 1}
    snakemake(done)
    assert planned_jobs(done) == {}


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]


def test_html_report_renders_in_chromium(done, tmp_path):
    """snakemake --report gives one self-contained HTML file; a real headless browser renders
    it (non-blank screenshot, the app's categories in the DOM) and decodes every figure."""
    import base64
    import re

    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    report = done / "report.html"
    snakemake(done, "--report", str(report))
    html = report.read_text()
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'u1'}",
            "--window-size=1280,900",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    with Image.open(shot) as im:
        assert im.size == (1280, 900) and np.asarray(im.convert("L")).std() > 10
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'u2'}",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    # The landing page names the data set, the split and the date; every item has a caption.
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", dom))
    assert "Data set of this run:" in text and "the synthetic demo set" in text
    assert "split patient_random" in text
    assert re.search(r"report made on 20\d\d-\d\d-\d\d", text)
    for caption in (
        "of its maximum and the box of its largest region",  # localisation table
        "Per-class test AUROC of each model of this run",  # summary figure
        "one row per epoch: learning rate",  # history.csv
        "as a Markdown document",  # summary.md
    ):
        assert caption in html, caption
    for category in (
        "1. Data",
        "2. Splits and sampling",
        "3. Training",
        "4. Evaluation",
        "5. Summary",
    ):
        assert category in dom, category
    # Every embedded figure decodes in the browser (naturalWidth > 0).
    uris = re.findall(r'"data_uri": "(data:image/png;[^"]+)"', html)
    assert len(uris) == 4 * 4 + 4  # per model: history, roc, filters, cam; 4 overall figures
    for uri in uris:
        assert base64.b64decode(uri.split("base64,", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    page = tmp_path / "figures.html"
    imgs = "".join(f'<img src="{u}">' for u in uris)
    page.write_text(
        f"<html><body>{imgs}<script>window.onload = () => {{ document.body.dataset.widths = "
        "[...document.images].map(i => i.complete ? i.naturalWidth : 0).join(','); };"
        "</script></body></html>"
    )
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'u3'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    widths = [int(w) for w in re.search(r'data-widths="([^"]*)"', dom).group(1).split(",")]
    assert len(widths) == len(uris) and min(widths) > 300
