rule downsample_images:
    input:
        entries=f"{META}/entries.csv",
    output:
        shard=f"results/hdf5/{{dataset}}/shards/images_{SIZE}_{{shard}}.h5",
    log:
        f"logs/downsample_images/{{dataset}}/{SIZE}_{{shard}}.log",
    benchmark:
        f"benchmarks/downsample_images/{{dataset}}/{SIZE}_{{shard}}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: config["preprocess"]["threads"]
    resources:
        mem_mb=2000,
    params:
        formats=lambda w: list(layout_of(w).image_formats),
        data_dir=get_data_dir,
        n_shards=config["preprocess"]["shards"],
        size=SIZE,
        resample=config["preprocess"]["resample"],
        on_bad_image=config["preprocess"]["on_bad_image"],
    script:
        "../scripts/downsample_images.py"


rule merge_shards:
    input:
        shards=get_shards,
        entries=f"{META}/entries.csv",
        missing=f"{META}/missing_images.csv",
        metadata=lambda w: layout_of(w).metadata_file(own(w)),
    output:
        store=STORE,
        labels=f"{META}/labels.csv",
        skipped=f"{TABLES}/skipped_images.csv",
    log:
        "logs/merge_shards/{dataset}.log",
    benchmark:
        "benchmarks/merge_shards/{dataset}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        source=lambda w: layout_of(w).name,
        data_dir=get_data_dir,
        resample=config["preprocess"]["resample"],
        views=lambda w: own(w)["data"]["views"],
    script:
        "../scripts/merge_shards.py"


rule count_classes:
    input:
        labels=f"{META}/labels.csv",
    output:
        table=report(
            f"{TABLES}/class_counts.csv",
            caption="../report/captions/class_counts.rst",
            category="1. Data",
            subcategory="{dataset}",
            labels={"data set": "{dataset}", "table": "images per class"},
        ),
        figure=report(
            f"{FIGURES}/class_counts.png",
            caption="../report/captions/class_counts.rst",
            category="1. Data",
            subcategory="{dataset}",
            labels={"data set": "{dataset}", "figure": "images per class"},
        ),
    log:
        "logs/count_classes/{dataset}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/count_classes.py"
