import os

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

SIZE = config["preprocess"]["size"]
STORE = f"results/hdf5/images_{SIZE}.h5"
SYNTHETIC_DIR = "results/synthetic"


wildcard_constraints:
    shard=r"\d+",
    arch="simple_cnn|vgg_like|resnet18|densenet121",


def get_data_dir():
    """The folder in NIH layout that the workflow reads."""
    if config["data"]["source"] == "synthetic":
        return SYNTHETIC_DIR
    return config["data"]["nih_dir"]


def get_data_inputs(wildcards):
    """Metadata table (and, for the synthetic set, the image folder) the parser reads."""
    if config["data"]["source"] == "synthetic":
        return {
            "metadata": f"{SYNTHETIC_DIR}/Data_Entry_2017.csv",
            "images": f"{SYNTHETIC_DIR}/images",
        }
    return {"metadata": os.path.join(get_data_dir(), config["data"]["metadata_csv"])}


def get_split_lists(wildcards):
    """NIH's official split lists, needed only by `split.method: official`."""
    if config["split"]["method"] != "official":
        return {}
    return {
        "train_val_list": os.path.join(get_data_dir(), "train_val_list.txt"),
        "test_list": os.path.join(get_data_dir(), "test_list.txt"),
    }


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


# Keys of the `train` section that configure the jobs, not the training itself.
TRAIN_JOB_KEYS = ("archs", "gpus", "threads")


def get_train_settings(wildcards):
    """The settings of one architecture's training: `train` defaults + `models.<arch>`.

    Only these go into the job's params, so changing one architecture's hyperparameter reruns
    only that architecture's training (and what depends on it).
    """
    shared = {k: v for k, v in config["train"].items() if k not in TRAIN_JOB_KEYS}
    return {
        "arch": wildcards.arch,
        **shared,
        **config["models"].get(wildcards.arch, {}),
    }


def get_model_outputs():
    return expand(
        "results/models/{arch}/{file}",
        arch=config["train"]["archs"],
        file=["best.pt", "last.pt", "history.csv"],
    )


def get_bbox_list():
    """Expert boxes: NIH's BBox_List_2017.csv, or the synthetic set's planted boxes."""
    return os.path.join(get_data_dir(), "BBox_List_2017.csv")


def get_box_space():
    """Pixel space of the boxes: NIH's are in 1024x1024; the synthetic set's in its PNGs'."""
    if config["data"]["source"] == "synthetic":
        return config["synthetic"]["image_size"]
    return 1024


def get_dataset_label():
    """How every result of this run is labelled: synthetic results are never NIH results."""
    if config["data"]["source"] == "synthetic":
        return "synthetic demo data (not NIH)"
    return f"NIH ChestX-ray14, {config['split']['method']} split"


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
    return expand([f"results/{p}" for p in per_arch], arch=config["train"]["archs"]) + [
        "results/report/summary.csv",
        "results/report/summary.md",
        "results/report/auroc_comparison.png",
    ]


def get_model_eval_inputs(wildcards):
    """What every evaluation of one trained model reads: its best checkpoint and the data."""
    return {
        "checkpoint": f"results/models/{wildcards.arch}/best.pt",
        "store": STORE,
        "labels": "results/metadata/labels.csv",
        "splits": "results/splits/splits.csv",
        "average": "results/stats/average_image.npy",
        "stats": "results/stats/pixel_stats.json",
    }


def get_summary_inputs(wildcards):
    archs = config["train"]["archs"]
    return {
        "metrics": expand("results/eval/{arch}/metrics.csv", arch=archs),
        "localization": expand("results/eval/{arch}/localization.csv", arch=archs),
        "checkpoints": expand("results/models/{arch}/best.pt", arch=archs),
        "histories": expand("results/models/{arch}/history.csv", arch=archs),
    }
