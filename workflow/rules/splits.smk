rule make_splits:
    input:
        unpack(get_split_lists),
        labels="results/metadata/labels.csv",
    output:
        splits="results/splits/{split}/splits.csv",
        counts=report(
            "results/tables/{split}/split_counts.csv",
            caption="../report/captions/split_counts.rst",
            category="2. Splits and sampling",
            subcategory="{split}",
            labels={"split": "{split}", "table": "per-split, per-class counts"},
        ),
    log:
        "logs/make_splits/{split}.log",
    benchmark:
        "benchmarks/make_splits/{split}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        method=config["split"]["method"],
        seed=config["split"]["seed"],
        fractions=config["split"]["fractions"],
        val_fraction=config["split"]["val_fraction"],
        folds=config["split"].get("folds"),
        fold=lambda w: fold_number(w.split),
    script:
        "../scripts/make_splits.py"


rule make_oversample_index:
    input:
        labels="results/metadata/labels.csv",
        splits="results/splits/{split}/splits.csv",
    output:
        index="results/splits/{split}/oversample_index.npy",
        table="results/tables/{split}/oversample_counts.csv",
    log:
        "logs/make_oversample_index/{split}.log",
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
        table="results/tables/{split}/oversample_counts.csv",
    output:
        figure=report(
            "results/figures/{split}/oversample_counts.png",
            caption="../report/captions/oversample_counts.rst",
            category="2. Splits and sampling",
            subcategory="{split}",
            labels={
                "split": "{split}",
                "figure": "class frequency before/after oversampling",
            },
        ),
    log:
        "logs/plot_oversampling/{split}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_oversampling.py"
