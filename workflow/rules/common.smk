import os
import re
import sys
from types import SimpleNamespace

# The workflow's own library, also where it is not installed (a conda env from --sdm conda).
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from cxr14.findings import FINDING, FINDINGS_CSV
from cxr14.layouts import get_layout
from cxr14.store import foreign_stores
from cxr14.layouts import generated_twice
from cxr14.provenance import collect
from cxr14.tracking import missing_tools
from cxr14.settings import (
    config_problems,
    dataset_keys,
    datasets,
    fold_number,
    fold_problems,
    label_efficiency,
    replicates,
    runs,
    split_ids,
    test_on,
    train_on,
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
    # Each data set's own configuration (its `datasets` entry merged over `data`), and layout.
    DATASETS = datasets(config)
    LAYOUTS = {d: get_layout(own["data"]["source"]) for d, own in DATASETS.items()}
    _problems = weights_problems(config) + generated_twice(LAYOUTS)
    _problems += missing_tools(config["track"])
    for _d, _own in DATASETS.items():
        _layout = LAYOUTS[_d]
        _mine = _layout.view_problems(_own) + _layout.missing_paths(_own)
        _mine += foreign_stores(
            f"results/hdf5/{_d}", _layout.name, _layout.data_dir(_own)
        )
        if not _mine and _own["split"]["method"] == "patient_kfold":
            _mine = fold_problems(_own, _layout.count_patients(_own))
        _problems += dataset_keys(_d, _mine, config)
if _problems:
    raise WorkflowError("configuration problem(s):\n  " + "\n  ".join(_problems))
# This invocation's provenance record (without the configuration itself), for the report's
# landing page only: every job collects its own when it runs. "_" keys are never settings.
config["_provenance"] = {k: v for k, v in collect(config).items() if k != "config"}
SIZE = config["preprocess"]["size"]
# Per data set (built once, shared by every run): its tables, store, splits and statistics.
META = "results/metadata/{dataset}"
STORE = f"results/hdf5/{{dataset}}/images_{SIZE}.h5"
SPLIT = "results/splits/{dataset}/{split}"
TABLES = "results/tables/{dataset}"
FIGURES = "results/figures/{dataset}"
# The experiment plan: runs, the splits they are trained on (the hold-out split, or the folds
# of cross-validation), and each (run, split, seed) replicate: one training job each.
RUNS = list(runs(config))
SPLITS = split_ids(config)
REPLICATES = replicates(config)
# Pixel statistics per split, or once when averaging over every image.
STATS = SPLITS if config["average_image"]["over"] == "train" else ["all"]
# The data sets each run trains on (pooled when several) and is tested on; its first training
# set is its home: its summary, bundle and model card report the home test split.
TRAIN_ON = {r: train_on(config, r) for r in RUNS}
TEST_ON = {r: test_on(config, r) for r in RUNS}
HOME = {r: sets[0] for r, sets in TRAIN_ON.items()}
FIRST = next(iter(DATASETS))
# Pairs of runs compared on each data set both are tested on.
COMPARE = [
    (d, a, b) for a, b in config["compare"] for d in TEST_ON[a] if d in TEST_ON[b]
]
# The harmonised findings table (cxr14/findings.csv): how one data set's labels are scored on
# another's.
FINDINGS_CSV = str(FINDINGS_CSV)
MODEL = "results/models/{run}/{split}/seed{seed}"
# A replicate's validation and model facts; its evaluation on one data set's test split.
REPLICATE = "results/eval/{run}/{split}/seed{seed}"
EVAL = "results/eval/{run}/{split}/seed{seed}/{dataset}"


wildcard_constraints:
    shard=r"\d+",
    run="|".join(re.escape(r) for r in RUNS),
    run_a="|".join(re.escape(r) for r in RUNS),
    run_b="|".join(re.escape(r) for r in RUNS),
    dataset="|".join(re.escape(d) for d in DATASETS),
    split="|".join(SPLITS),
    stats="|".join(STATS),
    seed=r"\d+",


def own(wildcards):
    """The configuration of the job's data set."""
    return DATASETS[wildcards.dataset]


def layout_of(wildcards):
    return LAYOUTS[wildcards.dataset]


def datasets_with(test):
    """The data sets whose layout and configuration pass ``test(layout, config)``."""
    return [d for d in DATASETS if test(LAYOUTS[d], DATASETS[d])]


# Data sets with an official split in their metadata, expert boxes, expert re-read labels.
OFFICIAL_IN_METADATA = datasets_with(lambda lay, c: lay.official_lists_in_metadata)
WITH_BOXES = datasets_with(lambda lay, c: lay.bbox_file(c))
WITH_EXPERT = datasets_with(lambda lay, c: lay.expert_labels_file(c))


def get_data_dir(wildcards):
    """The folder the data set's images are found under."""
    return layout_of(wildcards).data_dir(own(wildcards))


def get_split_lists(wildcards):
    """The official split lists, needed only by `split.method: official`."""
    if own(wildcards)["split"]["method"] != "official":
        return {}
    return layout_of(wildcards).split_list_files(own(wildcards))


def get_shards(wildcards):
    return [
        f"results/hdf5/{wildcards.dataset}/shards/images_{SIZE}_{shard}.h5"
        for shard in range(config["preprocess"]["shards"])
    ]


def stats_dir(dataset, split):
    """Where a split's average image and pixel std are (shared when averaging over all)."""
    over = config["average_image"]["over"]
    return f"results/stats/{dataset}/{split if over == 'train' else 'all'}"


def get_average_image_inputs(wildcards):
    """The store, plus the split when averaging over its training images only."""
    inputs = {"store": STORE.format(dataset=wildcards.dataset)}
    if wildcards.stats != "all":
        inputs["splits"] = f"{SPLIT}/splits.csv".format(
            dataset=wildcards.dataset, split=wildcards.stats
        )
    return inputs


def replicate_paths(pattern, run=None, dataset=None):
    """``pattern`` (with {run}, {split}, {seed} and maybe {dataset}: ``dataset``, else each
    run's home data set) for every replicate (of ``run``)."""
    return [
        pattern.format(run=r, split=s, seed=seed, dataset=dataset or HOME[r])
        for r, s, seed in replicates(config, run)
    ]


def replica_path(pattern, wildcards):
    """``pattern`` filled in with a job's run, split, seed (and data set)."""
    return pattern.format(**dict(wildcards.items()))


def first_replicate(run):
    """The replicate a run's figures are drawn for (its first split and seed)."""
    return dict(zip(("run", "split", "seed"), replicates(config, run)[0]))


def get_final_outputs():
    data = [
        STORE,
        f"{META}/labels.csv",
        f"{TABLES}/skipped_images.csv",
        f"{TABLES}/class_counts.csv",
        f"{FIGURES}/class_counts.png",
    ]
    per_split = [
        f"{SPLIT}/splits.csv",
        f"{TABLES}/{{split}}/split_counts.csv",
        f"{SPLIT}/oversample_index.npy",
        f"{TABLES}/{{split}}/oversample_counts.csv",
        f"{FIGURES}/{{split}}/oversample_counts.png",
    ]
    per_stats = [
        "results/stats/{dataset}/{stats}/average_image.npy",
        f"{FIGURES}/{{stats}}/average_image.png",
    ]
    return [
        *expand(data, dataset=DATASETS),
        *expand(per_split, dataset=DATASETS, split=SPLITS),
        *expand(per_stats, dataset=DATASETS, stats=STATS),
        *get_model_outputs(),
        *get_eval_outputs(),
    ]


def get_train_settings(wildcards):
    """One replicate's settings only: changing one run reruns only that run's trainings, and
    a data set's label policy only the trainings on it."""
    policies = {
        d: {k: DATASETS[d]["data"][k] for k in ("uncertain", "blank")}
        for d in TRAIN_ON[wildcards.run]
        if LAYOUTS[d].uncertain_labels
    }
    return train_settings(config, wildcards.run, int(wildcards.seed), policies)


def data_files(dataset, split):
    """A data set's files for one split, named as the scoring functions' arguments."""
    return {
        "store_h5": STORE.format(dataset=dataset),
        "labels_csv": f"{META}/labels.csv".format(dataset=dataset),
        "splits_csv": f"{SPLIT}/splits.csv".format(dataset=dataset, split=split),
    }


def get_train_inputs(wildcards):
    """The files of every data set the run trains on (lists, in `train_on` order), and the
    findings table that maps their labels onto shared findings when there are several.
    """
    sets, split = TRAIN_ON[wildcards.run], wildcards.split
    inputs = {
        "store": [STORE.format(dataset=d) for d in sets],
        "labels": [f"{META}/labels.csv".format(dataset=d) for d in sets],
        "splits": [f"{SPLIT}/splits.csv".format(dataset=d, split=split) for d in sets],
        "index": [
            f"{SPLIT}/oversample_index.npy".format(dataset=d, split=split) for d in sets
        ],
        "average": [f"{stats_dir(d, split)}/average_image.npy" for d in sets],
        "stats": [f"{stats_dir(d, split)}/pixel_stats.json" for d in sets],
    }
    if len(sets) > 1:
        inputs["findings"] = FINDINGS_CSV
    return inputs


def vocabularies(sets):
    """The label vocabulary (column of the findings table) of each data set."""
    return [LAYOUTS[d].vocabulary for d in sets]


def get_model_outputs():
    files = ["best.pt", "last.pt", "history.csv"]
    return [p for f in files for p in replicate_paths(f"{MODEL}/{f}")]


def eval_paths(pattern, datasets=None):
    """``pattern`` for every replicate and each data set it is tested on (of ``datasets``)."""
    return [
        pattern.format(run=r, split=s, seed=seed, dataset=d)
        for r, s, seed in REPLICATES
        for d in TEST_ON[r]
        if datasets is None or d in datasets
    ]


def in_domain(run, dataset):
    """Whether ``run`` was trained on ``dataset`` alone (its classes are that set's labels):
    where localisation and expert labels, in that set's label names, are scored."""
    return TRAIN_ON[run] == [dataset]


def in_domain_paths(pattern, sets, run=None):
    """``pattern`` for every replicate (of ``run``) tested on a data set of ``sets`` it was
    trained on alone."""
    return [
        pattern.format(run=r, split=s, seed=seed, dataset=d)
        for r, s, seed in replicates(config, run)
        for d in TEST_ON[r]
        if d in sets and in_domain(r, d)
    ]


def get_eval_outputs():
    outputs = eval_paths(f"{EVAL}/predictions.csv") + eval_paths(f"{EVAL}/metrics.csv")
    outputs += eval_paths(f"{EVAL}/subgroups.csv")
    outputs += in_domain_paths(f"{EVAL}/localization.csv", WITH_BOXES)
    outputs += in_domain_paths(f"{EVAL}/expert_labels.csv", WITH_EXPERT)
    figures = ["roc.png", "calibration.png", "subgroups.png"]
    for r in RUNS:
        first = first_replicate(r)
        outputs += [
            f"{REPLICATE}/{f}".format(**first) for f in ("history.png", "filters.png")
        ]
        outputs += [
            f"{EVAL}/{f}".format(**first, dataset=d)
            for d in TEST_ON[r]
            for f in figures
        ]
        outputs += [
            f"{EVAL}/cam.png".format(**first, dataset=d)
            for d in TEST_ON[r]
            if d in WITH_BOXES and in_domain(r, d)
        ]
        outputs += [f"results/eval/{r}/{d}/replicates.csv" for d in TEST_ON[r]]
    outputs += expand(
        "results/models/{run}/{f}", run=RUNS, f=["bundle.pt", "model_card.md"]
    )
    if SUMMARY_RUNS:
        outputs += [
            "results/report/summary.csv",
            "results/report/replicates.csv",
            "results/report/summary.md",
            "results/report/auroc_comparison.png",
        ]
    if len(DATASETS) > 1:
        outputs += ["results/report/transfer.csv", "results/report/transfer.png"]
    if COMPARE:
        outputs += ["results/report/comparisons.csv", "results/report/comparisons.png"]
    if LABEL_EFFICIENCY:
        outputs += [
            "results/report/label_efficiency.csv",
            "results/report/label_efficiency.png",
        ]
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


def get_validate_inputs(wildcards):
    """A replicate's best checkpoint and the validation data of each set it trained on."""
    sets = TRAIN_ON[wildcards.run]
    files = [data_files(d, wildcards.split) for d in sets]
    inputs = {k: [f[k] for f in files] for k in files[0]}
    inputs["checkpoint"] = replica_path(f"{MODEL}/best.pt", wildcards)
    if len(sets) > 1:
        inputs["findings_csv"] = FINDINGS_CSV
    return inputs


def blank_policy(dataset):
    """How evaluation scores a blank label of ``dataset`` (None: its labels are all known)."""
    return (
        DATASETS[dataset]["data"]["blank"]
        if LAYOUTS[dataset].uncertain_labels
        else None
    )


def get_model_eval_inputs(wildcards):
    """What an evaluation of one trained model on one data set reads: its best checkpoint,
    its validation predictions (thresholds, recalibration) and the data set's test split.
    Named as the scoring functions' arguments, which the scripts pass them to."""
    return {
        "checkpoint": replica_path(f"{MODEL}/best.pt", wildcards),
        "val_predictions": replica_path(f"{REPLICATE}/val_predictions.csv", wildcards),
        **data_files(wildcards.dataset, wildcards.split),
        "findings_csv": FINDINGS_CSV,
    }


def get_export_inputs(wildcards):
    """A run's first replicate: its model, validation predictions and home test metrics."""
    first = first_replicate(wildcards.run)
    return {
        "checkpoint": f"{MODEL}/best.pt".format(**first),
        "val_predictions": f"{REPLICATE}/val_predictions.csv".format(**first),
        "metrics_csv": f"{EVAL}/metrics.csv".format(
            **first, dataset=HOME[wildcards.run]
        ),
    }


def get_export_params(wildcards):
    """Where the bundled model comes from, for its provenance and model card."""
    first = first_replicate(wildcards.run)
    sets = TRAIN_ON[wildcards.run]
    home, layouts = sets[0], [LAYOUTS[d] for d in sets]
    return {
        **first,
        "split_method": DATASETS[home]["split"]["method"],
        # Pooled: every training set, the home one (whose test split the card reports) first.
        "dataset": " + ".join(LAYOUTS[d].display_label(DATASETS[d]) for d in sets),
        "caveat": "; ".join(
            dict.fromkeys(lay.results_caveat for lay in layouts if lay.results_caveat)
        ),
        "label_note": " ".join(
            dict.fromkeys(lay.wording.label_note for lay in layouts)
        ),
    }


def get_cam_inputs(wildcards):
    """A model's checkpoint, the data set's test split and its expert boxes."""
    return {
        "checkpoint": replica_path(f"{MODEL}/best.pt", wildcards),
        **data_files(wildcards.dataset, wildcards.split),
        "boxes_csv": f"{META}/boxes.csv".format(dataset=wildcards.dataset),
    }


def get_cam_layer(wildcards):
    """The layer Grad-CAM reads for this run's architecture ("": the architecture's own)."""
    arch = runs(config)[wildcards.run]["arch"]
    return config["eval"]["cam_layers"].get(arch, "")


def get_run_metrics(wildcards):
    """Every replicate's metrics of one run on one data set (its aggregate over seeds and
    folds)."""
    return replicate_paths(f"{EVAL}/metrics.csv", wildcards.run, wildcards.dataset)


def get_comparison_inputs(wildcards):
    a, b, d = wildcards.run_a, wildcards.run_b, wildcards.dataset
    return {
        "predictions_a": replicate_paths(f"{EVAL}/predictions.csv", a, d),
        "predictions_b": replicate_paths(f"{EVAL}/predictions.csv", b, d),
        "metrics_a": replicate_paths(f"{EVAL}/metrics.csv", a, d),
        "metrics_b": replicate_paths(f"{EVAL}/metrics.csv", b, d),
        "findings_csv": FINDINGS_CSV,
    }


def get_comparison_params(wildcards):
    """The seed of each predictions file (files of one seed are the folds of one replicate)."""
    return {
        side: [seed for _, _, seed in replicates(config, run)]
        for side, run in (("a", wildcards.run_a), ("b", wildcards.run_b))
    }


def model_vocabulary(run):
    """The vocabulary of a run's classes: its data set's labels, or the findings of several."""
    sets = TRAIN_ON[run]
    return LAYOUTS[sets[0]].vocabulary if len(sets) == 1 else FINDING


# The transfer matrix's cells: each run on each data set it is tested on, its predictions.
TRANSFER_CELLS = [
    {
        "run": r,
        "test_set": d,
        "train_on": TRAIN_ON[r],
        "vocabulary": model_vocabulary(r),
        "seeds": [seed for _, _, seed in replicates(config, r)],
        "files": replicate_paths(f"{EVAL}/predictions.csv", r, d),
    }
    for r in RUNS
    for d in TEST_ON[r]
]


# Runs that differ only in train.label_fraction, each tested on its (first) training set.
LABEL_EFFICIENCY = label_efficiency(config)


# The summary (beside the first data set's published results) covers the runs trained on the
# first data set alone; every run is in the transfer matrix.
SUMMARY_RUNS = [r for r in RUNS if TRAIN_ON[r] == [FIRST]]
SUMMARY_REPLICATES = [rep for r in SUMMARY_RUNS for rep in replicates(config, r)]


def summary_paths(pattern):
    return [p for r in SUMMARY_RUNS for p in replicate_paths(pattern, r, FIRST)]


def get_summary_inputs(wildcards):
    return {
        "store": STORE.format(dataset=FIRST),
        "skipped": f"{TABLES}/skipped_images.csv".format(dataset=FIRST),
        "run_tables": [
            f"results/eval/{r}/{FIRST}/replicates.csv" for r in SUMMARY_RUNS
        ],
        "metrics": summary_paths(f"{EVAL}/metrics.csv"),
        "localization": (
            summary_paths(f"{EVAL}/localization.csv") if FIRST in WITH_BOXES else []
        ),
        "expert_labels": (
            summary_paths(f"{EVAL}/expert_labels.csv") if FIRST in WITH_EXPERT else []
        ),
        "models": summary_paths(f"{REPLICATE}/model.json"),
        "histories": summary_paths(f"{MODEL}/history.csv"),
    }
