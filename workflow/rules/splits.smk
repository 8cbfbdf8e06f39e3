rule make_splits:
    input:
        unpack(get_split_lists),
        labels=f"{META}/labels.csv",
    output:
        splits=f"{SPLIT}/splits.csv",
        counts=report(
            f"{TABLES}/{{split}}/split_counts.csv",
            caption="../report/captions/split_counts.rst",
            category="2. Splits and sampling",
            subcategory="{dataset} {split}",
            labels={
                "data set": "{dataset}",
                "split": "{split}",
                "table": "per-split, per-class counts",
            },
        ),
    log:
        "logs/make_splits/{dataset}/{split}.log",
    benchmark:
        "benchmarks/make_splits/{dataset}/{split}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        method=lambda w: own(w)["split"]["method"],
        seed=lambda w: own(w)["split"]["seed"],
        fractions=lambda w: own(w)["split"]["fractions"],
        val_fraction=lambda w: own(w)["split"]["val_fraction"],
        folds=lambda w: own(w)["split"].get("folds"),
        fold=lambda w: fold_number(w.split),
    script:
        "../scripts/make_splits.py"


rule make_oversample_index:
    input:
        labels=f"{META}/labels.csv",
        splits=f"{SPLIT}/splits.csv",
    output:
        index=f"{SPLIT}/oversample_index.npy",
        table=f"{TABLES}/{{split}}/oversample_counts.csv",
    log:
        "logs/make_oversample_index/{dataset}/{split}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        enabled=config["oversample"]["enabled"],
        seed=config["oversample"]["seed"],
        threshold=config["oversample"]["threshold"],
        power=config["oversample"]["power"],
        max_repeat=config["oversample"]["max_repeat"],
    script:
        "../scripts/make_oversample_index.py"


rule plot_oversampling:
    input:
        table=f"{TABLES}/{{split}}/oversample_counts.csv",
    output:
        figure=report(
            f"{FIGURES}/{{split}}/oversample_counts.png",
            caption="../report/captions/oversample_counts.rst",
            category="2. Splits and sampling",
            subcategory="{dataset} {split}",
            labels={
                "data set": "{dataset}",
                "split": "{split}",
                "figure": "class frequency before/after oversampling",
            },
        ),
    log:
        "logs/plot_oversampling/{dataset}/{split}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_oversampling.py"
