rule downsample_images:
    input:
        entries="results/metadata/entries.csv",
    output:
        shard=f"results/hdf5/shards/images_{SIZE}_{{shard}}.h5",
    log:
        f"logs/downsample_images/{SIZE}_{{shard}}.log",
    benchmark:
        f"benchmarks/downsample_images/{SIZE}_{{shard}}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: config["preprocess"]["threads"]
    resources:
        mem_mb=2000,
    params:
        **STORE_FORMATS,
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
        entries="results/metadata/entries.csv",
        missing="results/metadata/missing_images.csv",
        metadata=LAYOUT.metadata_file(config),
    output:
        store=STORE,
        labels="results/metadata/labels.csv",
        skipped="results/tables/skipped_images.csv",
    log:
        "logs/merge_shards.log",
    benchmark:
        "benchmarks/merge_shards.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        source=config["data"]["source"],
        data_dir=get_data_dir,
        resample=config["preprocess"]["resample"],
        views=config["data"]["views"],
    script:
        "../scripts/merge_shards.py"


rule count_classes:
    input:
        labels="results/metadata/labels.csv",
    output:
        table=report(
            "results/tables/class_counts.csv",
            caption="../report/captions/class_counts.rst",
            category="1. Data",
            labels={"table": "images per class"},
        ),
        figure=report(
            "results/figures/class_counts.png",
            caption="../report/captions/class_counts.rst",
            category="1. Data",
            labels={"figure": "images per class"},
        ),
    log:
        "logs/count_classes.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/count_classes.py"
