import os
import re
import sys
from types import SimpleNamespace

# The workflow's own library, also where it is not installed (a conda env from --sdm conda).
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from cxr14.layouts import get_layout
from cxr14.store import foreign_stores
from cxr14.settings import (
    config_problems,
    fold_number,
    fold_problems,
    replicates,
    runs,
    split_ids,
    train_settings,
    weights_problems,
)

# Jobs import the project's library from this checkout's src/, also inside conda environments
# (--sdm conda) and on cluster nodes, so a job always runs the code of the workflow it is part of.
# (Set, not required, so `envvars:` does not apply.)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p
        for p in (os.path.join(workflow.basedir, "src"), os.environ.get("PYTHONPATH"))
        if p
    )
)

# A refused key, wrong paths and inconsistent settings stop the run here, before any job,
# whatever results/ already holds from an earlier run. Files by precedence: the defaults, then
# each --configfile.
_defaults = os.path.join(workflow.basedir, "config", "config.yaml")
_files = [_defaults] + [f for f in workflow.configfiles if f != _defaults]
_problems = config_problems(
    config,
    os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"),
    _files,
)
if not _problems:
    LAYOUT = get_layout(config["data"]["source"])
    _problems = LAYOUT.view_problems(config) + LAYOUT.missing_paths(config)
    _problems += weights_problems(config)
    _problems += foreign_stores("results/hdf5", LAYOUT.name, LAYOUT.data_dir(config))
if not _problems and config["split"]["method"] == "patient_kfold":
    _problems = fold_problems(config, LAYOUT.count_patients(config))
if _problems:
    raise WorkflowError("configuration problem(s):\n  " + "\n  ".join(_problems))
SIZE = config["preprocess"]["size"]
STORE = f"results/hdf5/images_{SIZE}.h5"
# The image formats the store decodes, named in the shard jobs' params only where they are not
# PNG alone (so that a PNG data set's existing store is not rebuilt).
STORE_FORMATS = (
    {"formats": list(LAYOUT.image_formats)} if LAYOUT.image_formats != ("PNG",) else {}
)
# The experiment plan: runs, the splits they are trained on (the hold-out split, or the folds
# of cross-validation), and each (run, split, seed) replicate: one training job each.
RUNS = list(runs(config))
SPLITS = split_ids(config)
REPLICATES = replicates(config)
# Pixel statistics per split, or once when averaging over every image.
STATS = SPLITS if config["average_image"]["over"] == "train" else ["all"]
COMPARE = [tuple(pair) for pair in config["compare"]]
# Expert re-read labels and boxes (None where this configuration has none: the stages that
# use them are left out).
EXPERT_LABELS = LAYOUT.expert_labels_file(config)
BOXES = LAYOUT.bbox_file(config)
# How evaluation scores a blank label, only for data sets whose labels can be blank: the jobs of
# data sets with known labels only do not carry it, so nothing of theirs reruns when it changes.
EVAL_POLICY = {"blank": config["data"]["blank"]} if LAYOUT.uncertain_labels else {}
MODEL = "results/models/{run}/{split}/seed{seed}"
EVAL = "results/eval/{run}/{split}/seed{seed}"


wildcard_constraints:
    shard=r"\d+",
    run="|".join(re.escape(r) for r in RUNS),
    run_a="|".join(re.escape(r) for r in RUNS),
    run_b="|".join(re.escape(r) for r in RUNS),
    split="|".join(SPLITS),
    stats="|".join(STATS),
    seed=r"\d+",


def get_data_dir(wildcards):
    """The folder the data set's images are found under."""
    return LAYOUT.data_dir(config)


def get_split_lists(wildcards):
    """The official split lists, needed only by `split.method: official`."""
    if config["split"]["method"] != "official":
        return {}
    return LAYOUT.split_list_files(config)


def get_shards(wildcards):
    return [
        f"results/hdf5/shards/images_{SIZE}_{shard}.h5"
        for shard in range(config["preprocess"]["shards"])
    ]


def stats_dir(split):
    """Where a split's average image and pixel std are (shared when averaging over all)."""
    return f"results/stats/{split if config['average_image']['over'] == 'train' else 'all'}"


def get_average_image_inputs(wildcards):
    """The store, plus the split when averaging over its training images only."""
    inputs = {"store": STORE}
    if wildcards.stats != "all":
        inputs["splits"] = f"results/splits/{wildcards.stats}/splits.csv"
    return inputs


def replicate_paths(pattern, run=None):
    """``pattern`` (with {run}, {split}, {seed}) for every replicate (of ``run``)."""
    return [
        pattern.format(run=r, split=s, seed=seed)
        for r, s, seed in replicates(config, run)
    ]


def replica_path(pattern, wildcards):
    """``pattern`` filled in with a job's run, split and seed."""
    return pattern.format(run=wildcards.run, split=wildcards.split, seed=wildcards.seed)


def first_replicate(run):
    """The replicate a run's figures are drawn for (its first split and seed)."""
    return dict(zip(("run", "split", "seed"), replicates(config, run)[0]))


def get_final_outputs():
    data = [
        STORE,
        "results/metadata/labels.csv",
        "results/tables/skipped_images.csv",
        "results/tables/class_counts.csv",
        "results/figures/class_counts.png",
    ]
    per_split = [
        "results/splits/{split}/splits.csv",
        "results/tables/{split}/split_counts.csv",
        "results/splits/{split}/oversample_index.npy",
        "results/tables/{split}/oversample_counts.csv",
        "results/figures/{split}/oversample_counts.png",
    ]
    per_stats = [
        "results/stats/{stats}/average_image.npy",
        "results/figures/{stats}/average_image.png",
    ]
    return [
        *data,
        *expand(per_split, split=SPLITS),
        *expand(per_stats, stats=STATS),
        *get_model_outputs(),
        *get_eval_outputs(),
    ]


def get_train_settings(wildcards):
    """One replicate's settings only: changing one run reruns only that run's trainings."""
    return train_settings(
        config, wildcards.run, int(wildcards.seed), LAYOUT.uncertain_labels
    )


def get_train_inputs(wildcards):
    split = wildcards.split
    return {
        "store": STORE,
        "labels": "results/metadata/labels.csv",
        "splits": f"results/splits/{split}/splits.csv",
        "index": f"results/splits/{split}/oversample_index.npy",
        "average": f"{stats_dir(split)}/average_image.npy",
        "stats": f"{stats_dir(split)}/pixel_stats.json",
    }


def get_model_outputs():
    files = ["best.pt", "last.pt", "history.csv"]
    return [p for f in files for p in replicate_paths(f"{MODEL}/{f}")]


def get_eval_outputs():
    tables = ["predictions.csv", "metrics.csv", "subgroups.csv"]
    tables += ["localization.csv"] if BOXES else []
    tables += ["expert_labels.csv"] if EXPERT_LABELS else []
    figures = [
        "history.png",
        "roc.png",
        "calibration.png",
        "filters.png",
        "subgroups.png",
    ]
    figures += ["cam.png"] if BOXES else []
    outputs = [p for f in tables for p in replicate_paths(f"{EVAL}/{f}")]
    outputs += [
        f"{EVAL}/{f}".format(**first_replicate(r)) for r in RUNS for f in figures
    ]
    outputs += expand("results/eval/{run}/replicates.csv", run=RUNS)
    outputs += expand(
        "results/models/{run}/{f}", run=RUNS, f=["bundle.pt", "model_card.md"]
    )
    outputs += [
        "results/report/summary.csv",
        "results/report/replicates.csv",
        "results/report/summary.md",
        "results/report/auroc_comparison.png",
    ]
    if COMPARE:
        outputs += ["results/report/comparisons.csv", "results/report/comparisons.png"]
    if config["predict"]["input_dir"]:
        outputs += expand("results/predict/{run}/predictions.csv", run=RUNS)
    return outputs


def get_predict_outputs():
    """predict_images' outputs: the tables, and the overlays' folder when asked for."""
    outputs = {
        "predictions": "results/predict/{run}/predictions.csv",
        "failures": "results/predict/{run}/predictions_failures.csv",
    }
    if config["predict"]["cam"]:
        outputs["cam"] = directory("results/predict/{run}/cam")
    return outputs


def get_model_eval_inputs(wildcards):
    """What an evaluation of one trained model reads: its best checkpoint and the data of its
    split. Named as the scoring functions' arguments, which the scripts pass them to."""
    split = wildcards.split
    return {
        "checkpoint": replica_path(f"{MODEL}/best.pt", wildcards),
        "store_h5": STORE,
        "labels_csv": "results/metadata/labels.csv",
        "splits_csv": f"results/splits/{split}/splits.csv",
        "average_npy": f"{stats_dir(split)}/average_image.npy",
        "stats_json": f"{stats_dir(split)}/pixel_stats.json",
    }


def get_export_inputs(wildcards):
    """A run's first replicate: its model, normalisation, validation predictions and test
    metrics."""
    first = first_replicate(wildcards.run)
    inputs = get_model_eval_inputs(SimpleNamespace(**first))
    return {
        **{k: inputs[k] for k in ("checkpoint", "average_npy", "stats_json")},
        "val_predictions": f"{EVAL}/val_predictions.csv".format(**first),
        "metrics_csv": f"{EVAL}/metrics.csv".format(**first),
    }


def get_export_params(wildcards):
    """Where the bundled model comes from, for its provenance and model card."""
    first = first_replicate(wildcards.run)
    return {
        **first,
        "split_method": config["split"]["method"],
        "dataset": LAYOUT.display_label(config),
        "caveat": LAYOUT.results_caveat,
        "label_note": LAYOUT.wording.label_note,
    }


def get_cam_inputs(wildcards):
    """A model evaluation's inputs and the expert boxes (localize_findings)."""
    return {
        **get_model_eval_inputs(wildcards),
        "boxes_csv": "results/metadata/boxes.csv",
    }


def get_cam_layer(wildcards):
    """The layer Grad-CAM reads for this run's architecture ("": the architecture's own)."""
    arch = runs(config)[wildcards.run]["arch"]
    return config["eval"]["cam_layers"].get(arch, "")


def get_run_metrics(wildcards):
    """Every replicate's metrics of one run (its aggregate over seeds and folds)."""
    return replicate_paths(f"{EVAL}/metrics.csv", wildcards.run)


def get_comparison_inputs(wildcards):
    a, b = wildcards.run_a, wildcards.run_b
    return {
        "predictions_a": replicate_paths(f"{EVAL}/predictions.csv", a),
        "predictions_b": replicate_paths(f"{EVAL}/predictions.csv", b),
        "metrics_a": replicate_paths(f"{EVAL}/metrics.csv", a),
        "metrics_b": replicate_paths(f"{EVAL}/metrics.csv", b),
    }


def get_comparison_params(wildcards):
    """The seed of each predictions file (files of one seed are the folds of one replicate)."""
    return {
        side: [seed for _, _, seed in replicates(config, run)]
        for side, run in (("a", wildcards.run_a), ("b", wildcards.run_b))
    }


def get_summary_inputs(wildcards):
    return {
        "store": STORE,
        "skipped": "results/tables/skipped_images.csv",
        "run_tables": expand("results/eval/{run}/replicates.csv", run=RUNS),
        "metrics": replicate_paths(f"{EVAL}/metrics.csv"),
        "localization": (replicate_paths(f"{EVAL}/localization.csv") if BOXES else []),
        "expert_labels": (
            replicate_paths(f"{EVAL}/expert_labels.csv") if EXPERT_LABELS else []
        ),
        "models": replicate_paths(f"{EVAL}/model.json"),
        "histories": replicate_paths(f"{MODEL}/history.csv"),
    }
