rule train_model:
    input:
        store=STORE,
        labels="results/metadata/labels.csv",
        splits="results/splits/splits.csv",
        index="results/splits/oversample_index.npy",
        average="results/stats/average_image.npy",
        stats="results/stats/pixel_stats.json",
    output:
        best="results/models/{arch}/best.pt",
        last="results/models/{arch}/last.pt",
        history=report(
            "results/models/{arch}/history.csv",
            caption="../report/captions/history_csv.rst",
            category="3. Training",
            subcategory="{arch}",
            labels={"model": "{arch}", "table": "history per epoch"},
        ),
    log:
        "logs/train_model/{arch}.log",
    benchmark:
        "benchmarks/train_model/{arch}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=config["train"]["gpus"],
        mem_mb=16000,
    params:
        settings=get_train_settings,
        gpus=config["train"]["gpus"],
    script:
        "../scripts/train_model.py"
