rule train_model:
    input:
        unpack(get_train_inputs),
    output:
        best=f"{MODEL}/best.pt",
        last=f"{MODEL}/last.pt",
        history=report(
            f"{MODEL}/history.csv",
            caption="../report/captions/history_csv.rst",
            category="3. Training",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "split": "{split}",
                "seed": "{seed}",
                "table": "history",
            },
        ),
    log:
        "logs/train_model/{run}/{split}/seed{seed}.log",
    benchmark:
        "benchmarks/train_model/{run}/{split}/seed{seed}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=config["train"]["gpus"],
        mem_mb=16000,
    params:
        settings=get_train_settings,
        gpus=config["train"]["gpus"],
        vocabularies=lambda w: vocabularies(TRAIN_ON[w.run]),
    script:
        "../scripts/train_model.py"
