"""The end-to-end workflow tests' configuration, outputs and paths (the fixtures that build
them are in conftest.py beside this file)."""

from __future__ import annotations

from cxr14.testing.workflow import TINY_CONFIG, write_config

# The reference study's architectures and densenet121, a timm vision transformer (its patch
# tokens make the odd Grad-CAM), a second simple_cnn run (unweighted loss) compared with the
# first, and a third on half the training labels (a label-efficiency study with the first);
# the simple_cnn runs have two seeds each.
RUNS = [
    *TINY_CONFIG["runs"],
    {"name": "vit_small", "arch": "vit_small_patch16_224", "weights": "none"},
    {"name": "simple_cnn_bce", "arch": "simple_cnn", "loss": "bce"},
    {"name": "simple_cnn_half", "arch": "simple_cnn", "label_fraction": 0.5},
]
RUNS = [{**r, "seeds": [0, 1]} if r["arch"] == "simple_cnn" else r for r in RUNS]
COMPARE = [["simple_cnn", "simple_cnn_bce"]]
NAMES = [r["name"] for r in RUNS]
REPLICATES = [(r["name"], "holdout", s) for r in RUNS for s in r.get("seeds", [0])]
# The one data set of the tiny configuration (named by its source).
DATASET = "synthetic"
# A model's evaluation on the data set's test split, per replicate ...
TABLES = ("predictions.csv", "metrics.csv", "localization.csv", "expert_labels.csv")
TABLES += ("subgroups.csv",)
TEST_FIGURES = ("roc.png", "calibration.png", "cam.png", "subgroups.png")
# ... and what is the replicate's whatever it is tested on (validation, model facts).
REPLICATE_FILES = ("val_predictions.csv", "calibration.json")
REPLICATE_FIGURES = ("history.png", "filters.png")
FIGURES = REPLICATE_FIGURES + TEST_FIGURES
# What the figures draw from, so that none loads a checkpoint (validate_model,
# localize_findings).
REPLICATE_DATA = ("model.json", "filters.npz")
TEST_DATA = ("cams.npz",)


def model(run: str, split: str = "holdout", seed: int = 0) -> str:
    return f"results/models/{run}/{split}/seed{seed}"


def evals(run: str, split: str = "holdout", seed: int = 0) -> str:
    """A replicate's folder of evaluation results (validation, model facts)."""
    return f"results/eval/{run}/{split}/seed{seed}"


def evaluated(run: str, split: str = "holdout", seed: int = 0, dataset: str = DATASET) -> str:
    """A replicate's evaluation on a data set's test split."""
    return f"{evals(run, split, seed)}/{dataset}"


def figures(run: str) -> list[str]:
    """The figures of a run (drawn for its first replicate)."""
    return [f"{evals(run)}/{f}" for f in REPLICATE_FIGURES] + [
        f"{evaluated(run)}/{f}" for f in TEST_FIGURES
    ]


# One thread per evaluation job: their work is a few milliseconds after their imports, and
# jobs declaring 2 threads would run one at a time on the 2 cores of `snakemake()`.
EVAL = {**TINY_CONFIG["eval"], "threads": 1}


# Every training tracked live, with both tools (parallel jobs writing one MLflow SQLite store).
TRACK = {"tools": ["tensorboard", "mlflow"]}


def tiny_runs(wd, overrides=None):
    """The end-to-end test's configuration: TINY_CONFIG with RUNS, COMPARE, EVAL and TRACK."""
    base = {"runs": RUNS, "compare": COMPARE, "eval": EVAL, "track": TRACK}
    return write_config(wd, {**base, **(overrides or {})})


PREPROCESSING = {
    "generate_synthetic_data_synthetic",
    "parse_metadata",
    "downsample_images",
    "merge_shards",
}


EVALUATION = {
    "validate_model",
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
    "collect_label_efficiency",
    "export_model",
    "summarize_models",
}


OUTPUTS = [
    "results/hdf5/synthetic/images_32.h5",
    "results/metadata/synthetic/labels.csv",
    "results/tables/synthetic/skipped_images.csv",
    "results/tables/synthetic/class_counts.csv",
    "results/figures/synthetic/class_counts.png",
    "results/stats/synthetic/holdout/average_image.npy",
    "results/stats/synthetic/holdout/pixel_stats.json",
    "results/figures/synthetic/holdout/average_image.png",
    "results/splits/synthetic/holdout/splits.csv",
    "results/tables/synthetic/holdout/split_counts.csv",
    "results/splits/synthetic/holdout/oversample_index.npy",
    "results/tables/synthetic/holdout/oversample_counts.csv",
    "results/figures/synthetic/holdout/oversample_counts.png",
    *[f"{model(*r)}/{f}" for r in REPLICATES for f in ("best.pt", "last.pt", "history.csv")],
    *[f"{evals(*r)}/{f}" for r in REPLICATES for f in REPLICATE_FILES + REPLICATE_DATA],
    *[f"{evaluated(*r)}/{f}" for r in REPLICATES for f in TABLES + TEST_DATA],
    *[path for run in NAMES for path in figures(run)],
    *[f"results/eval/{run}/synthetic/replicates.csv" for run in NAMES],
    *[f"results/models/{run}/{f}" for run in NAMES for f in ("bundle.pt", "model_card.md")],
    "results/compare/synthetic/simple_cnn/simple_cnn_bce.csv",
    "results/report/comparisons.csv",
    "results/report/comparisons.png",
    "results/report/summary.csv",
    "results/report/replicates.csv",
    "results/report/summary.md",
    "results/report/auroc_comparison.png",
    "results/report/label_efficiency.csv",
    "results/report/label_efficiency.png",
]


DATA_OUTPUTS = [
    o
    for o in OUTPUTS
    if not o.startswith(("results/models/", "results/eval/", "results/compare/", "results/report/"))
]
