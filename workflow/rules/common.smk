import os
import sys

# The workflow's own library, also where it is not installed (a conda env from --sdm conda).
sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from cxr14.layouts import get_layout
from cxr14.settings import config_problems, train_settings

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

LAYOUT = get_layout(config["data"]["source"])
# Wrong paths and inconsistent settings stop the run here, before any job, whatever results/
# already holds from an earlier run.
_problems = config_problems(config) + LAYOUT.missing_paths(config)
if _problems:
    raise WorkflowError("configuration problem(s):\n  " + "\n  ".join(_problems))
SYNTHETIC_DIR = get_layout("synthetic").data_dir(config)
ARCHS = config["train"]["archs"]
SIZE = config["preprocess"]["size"]
STORE = f"results/hdf5/images_{SIZE}.h5"


wildcard_constraints:
    shard=r"\d+",
    arch="|".join(ARCHS),


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


def get_average_image_inputs(wildcards):
    """The store, plus the splits when averaging over the training split only."""
    inputs = {"store": STORE}
    if config["average_image"]["over"] == "train":
        inputs["splits"] = "results/splits/splits.csv"
    return inputs


def get_final_outputs():
    return [
        STORE,
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
        *get_model_outputs(),
        *get_eval_outputs(),
    ]


def get_train_settings(wildcards):
    """One architecture's settings only: changing one reruns only that training."""
    return train_settings(config, wildcards.arch)


def get_model_outputs():
    return expand(
        "results/models/{arch}/{file}",
        arch=ARCHS,
        file=["best.pt", "last.pt", "history.csv"],
    )


def get_eval_outputs():
    per_arch = [
        "eval/{arch}/predictions.csv",
        "eval/{arch}/metrics.csv",
        "eval/{arch}/localization.csv",
        "eval/{arch}/history.png",
        "eval/{arch}/roc.png",
        "eval/{arch}/filters.png",
        "eval/{arch}/cam.png",
    ]
    return expand([f"results/{p}" for p in per_arch], arch=ARCHS) + [
        "results/report/summary.csv",
        "results/report/summary.md",
        "results/report/auroc_comparison.png",
    ]


def get_model_eval_inputs(wildcards):
    """What an evaluation of one trained model reads: its best checkpoint and the data.
    Named as the scoring functions' arguments, which the scripts pass them to."""
    return {
        "checkpoint": f"results/models/{wildcards.arch}/best.pt",
        "store_h5": STORE,
        "labels_csv": "results/metadata/labels.csv",
        "splits_csv": "results/splits/splits.csv",
        "average_npy": "results/stats/average_image.npy",
        "stats_json": "results/stats/pixel_stats.json",
    }


def get_cam_inputs(wildcards):
    """A model evaluation's inputs and the expert boxes (the Grad-CAM rules)."""
    return {**get_model_eval_inputs(wildcards), "bbox_csv": LAYOUT.bbox_file(config)}


def get_summary_inputs(wildcards):
    return {
        "metrics": expand("results/eval/{arch}/metrics.csv", arch=ARCHS),
        "localization": expand("results/eval/{arch}/localization.csv", arch=ARCHS),
        "checkpoints": expand("results/models/{arch}/best.pt", arch=ARCHS),
        "histories": expand("results/models/{arch}/history.csv", arch=ARCHS),
    }
