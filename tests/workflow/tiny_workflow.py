"""The end-to-end workflow tests' configuration, outputs and paths (the fixtures that build
them are in conftest.py beside this file)."""

from __future__ import annotations

from cxr14.testing.workflow import TINY_CONFIG, write_config

# Every architecture, and a second simple_cnn run (unweighted loss) compared with the first;
# the two simple_cnn runs have two seeds each.
RUNS = [*TINY_CONFIG["runs"], {"name": "simple_cnn_bce", "arch": "simple_cnn", "loss": "bce"}]
RUNS = [{**r, "seeds": [0, 1]} if r["arch"] == "simple_cnn" else r for r in RUNS]
COMPARE = [["simple_cnn", "simple_cnn_bce"]]
NAMES = [r["name"] for r in RUNS]
REPLICATES = [(r["name"], "holdout", s) for r in RUNS for s in r.get("seeds", [0])]
TABLES = ("predictions.csv", "metrics.csv", "localization.csv", "expert_labels.csv")
TABLES += ("subgroups.csv",)
FIGURES = ("history.png", "roc.png", "calibration.png", "filters.png", "cam.png")
FIGURES += ("subgroups.png",)
# What the figures draw from, so that none loads a checkpoint (evaluate_model, localize_findings).
FIGURE_DATA = ("model.json", "filters.npz", "cams.npz")
EVAL_FILES = TABLES + FIGURE_DATA + FIGURES


def model(run: str, split: str = "holdout", seed: int = 0) -> str:
    return f"results/models/{run}/{split}/seed{seed}"


def evals(run: str, split: str = "holdout", seed: int = 0) -> str:
    return f"results/eval/{run}/{split}/seed{seed}"


# One thread per evaluation job: their work is a few milliseconds after their imports, and
# jobs declaring 2 threads would run one at a time on the 2 cores of `snakemake()`.
EVAL = {**TINY_CONFIG["eval"], "threads": 1}


def tiny_runs(wd, overrides=None):
    """The end-to-end test's configuration: TINY_CONFIG with RUNS, COMPARE and EVAL."""
    return write_config(wd, {"runs": RUNS, "compare": COMPARE, "eval": EVAL, **(overrides or {})})


PREPROCESSING = {"generate_synthetic_data", "parse_metadata", "downsample_images", "merge_shards"}


EVALUATION = {
    "evaluate_model",
    "localize_findings",
    "plot_history",
    "plot_roc",
    "plot_calibration",
    "evaluate_expert_labels",
    "evaluate_subgroups",
    "plot_subgroups",
    "plot_filters",
    "plot_cams",
    "aggregate_run",
    "compare_runs",
    "collect_comparisons",
    "export_model",
    "summarize_models",
}


OUTPUTS = [
    "results/hdf5/images_32.h5",
    "results/metadata/labels.csv",
    "results/tables/skipped_images.csv",
    "results/tables/class_counts.csv",
    "results/figures/class_counts.png",
    "results/stats/holdout/average_image.npy",
    "results/stats/holdout/pixel_stats.json",
    "results/figures/holdout/average_image.png",
    "results/splits/holdout/splits.csv",
    "results/tables/holdout/split_counts.csv",
    "results/splits/holdout/oversample_index.npy",
    "results/tables/holdout/oversample_counts.csv",
    "results/figures/holdout/oversample_counts.png",
    *[f"{model(*r)}/{f}" for r in REPLICATES for f in ("best.pt", "last.pt", "history.csv")],
    *[f"{evals(*r)}/{f}" for r in REPLICATES for f in TABLES + FIGURE_DATA],
    *[f"{evals(run)}/{f}" for run in NAMES for f in FIGURES],
    *[f"results/eval/{run}/replicates.csv" for run in NAMES],
    *[f"results/models/{run}/{f}" for run in NAMES for f in ("bundle.pt", "model_card.md")],
    "results/compare/simple_cnn/simple_cnn_bce.csv",
    "results/report/comparisons.csv",
    "results/report/comparisons.png",
    "results/report/summary.csv",
    "results/report/replicates.csv",
    "results/report/summary.md",
    "results/report/auroc_comparison.png",
]


DATA_OUTPUTS = [
    o
    for o in OUTPUTS
    if not o.startswith(("results/models/", "results/eval/", "results/compare/", "results/report/"))
]
