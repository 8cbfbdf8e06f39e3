"""The benchmark's CheXNet-style baseline loop, its GPU peak table and its variant table, on the
CPU (pytest collects bench/ beside tests/; bench/ is on the path as this file's folder)."""

from __future__ import annotations

import bench_gpu
import numpy as np
import pytest
from bench_gpu import dense_bf16_peak
from chexnet_baseline import PngDataset, chexnet_style_epoch
from PIL import Image


def test_the_chexnet_style_loop_trains_one_epoch_from_png_files(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i, mode in enumerate(["L", "L", "RGBA", "L", "I;16"]):  # NIH's modes, read as RGB
        path = tmp_path / f"{i:08d}_000.png"
        pixels = rng.integers(0, 255, (40, 40)).astype(np.uint16 if mode == "I;16" else np.uint8)
        Image.fromarray(pixels).convert(mode).save(path)
        paths.append(path)
    labels = (rng.random((5, 14)) < 0.3).astype(np.float32)
    x, y = PngDataset(paths, labels, size=64)[2]
    assert x.shape == (3, 64, 64) and y.shape == (14,)
    out = chexnet_style_epoch(paths, labels, "cpu", batch_size=2, workers=0, size=64)
    assert out["images"] == 5 and out["seconds"] > 0 and np.isfinite(out["loss"])


def test_peak_table_names_its_source():
    peak, source = dense_bf16_peak("NVIDIA H100 80GB HBM3")
    assert peak == pytest.approx(989.4) and "datasheet" in source
    assert dense_bf16_peak("NVIDIA H100 PCIe")[0] == pytest.approx(756.5)
    assert np.isnan(dense_bf16_peak("Some other card")[0])


def test_a_failing_variant_is_reported_and_the_others_still_run(monkeypatch, capsys):
    """The GPU session is one short call: torch.compile failing on the device's software
    stack must cost only its own row."""

    def step_times(arch, *args):
        if args[-3]:  # compiled
            raise RuntimeError("inductor: no working C compiler\nmore detail")
        if arch == "b" and args[-2]:  # b's channels_last variants, eager among them
            raise RuntimeError("out of memory")
        return 10.0, float("nan")

    monkeypatch.setattr(bench_gpu, "step_times", step_times)
    monkeypatch.setattr(bench_gpu, "flops_per_image", lambda *a: 1e9)
    bench_gpu.variant_table(["a", "b"], np.zeros((1, 8, 8)), None, 2, 64, None, 1000.0)
    out = capsys.readouterr().out
    assert out.count("failed: RuntimeError: inductor: no working C compiler") == 2
    assert out.count("config/nih.yaml") == 2  # each from the fastest variant that ran
    assert "(1.00x)" in out.splitlines()[2]  # a's eager row
    b_rows = [line for line in out.splitlines() if line.startswith("b ")]
    # No eager baseline for b: no ratio rather than one against another variant.
    assert "(-)" in next(line for line in b_rows if "default format" in line)
    assert "more detail" not in out  # one line per failure


def test_startup_bench_splits_a_runs_jobs_by_kind(tmp_path, capsys):
    import bench_startup

    log = tmp_path / ".snakemake" / "log"
    log.mkdir(parents=True)
    lines = []
    for jobid, rule, start, end in (
        (1, "train_model", "01:00:00", "01:02:05"),
        (2, "plot_roc", "01:02:05", "01:02:14"),
        (3, "all", "01:02:14", "01:02:14"),
    ):
        lines += [f"[Mon Nov 30 {start} 2026]", f"localrule {rule}:", f"    jobid: {jobid}", ""]
        lines += [f"[Mon Nov 30 {end} 2026]", f"Finished jobid: {jobid} (Rule: {rule})", ""]
    (log / "2026-11-30T010000.snakemake.log").write_text("\n".join(lines))
    assert bench_startup.job_times(tmp_path) == [
        ("train_model", 125.0),
        ("plot_roc", 9.0),
        ("all", 0.0),
    ]
    bench_startup.jobs_table(tmp_path, {"train_model": 4.0, "plot_roc": 1.5})
    out = capsys.readouterr().out
    assert "| plots | 1 | 9 | 2 |" in out and "| training | 1 | 125 | 4 |" in out
    assert "| all | 3 | 134 | 6 |" in out
    assert bench_startup.script_modules(bench_startup.REPO / "workflow/scripts/plot_roc.py") == [
        "cxr14.figures",
        "cxr14.logs",
    ]
