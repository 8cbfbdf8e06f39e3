rule export_model:
    input:
        unpack(get_export_inputs),
    output:
        bundle="results/models/{run}/bundle.pt",
        card=report(
            "results/models/{run}/model_card.md",
            caption="../report/captions/model_card.rst",
            category="4. Evaluation",
            subcategory="{run}",
            labels={"run": "{run}", "table": "model card (Markdown)"},
        ),
    log:
        "logs/export_model/{run}.log",
    benchmark:
        "benchmarks/export_model/{run}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        provenance=get_export_params,
        preprocess={"store_size": SIZE, "resample": config["preprocess"]["resample"]},
        sensitivity=config["eval"]["sensitivity"],
        cam_layer=get_cam_layer,
        calibration=config["eval"]["calibration"],
    script:
        "../scripts/export_model.py"


rule predict_images:
    input:
        bundle="results/models/{run}/bundle.pt",
        images=config["predict"]["input_dir"] or [],
    output:
        **get_predict_outputs(),
    log:
        "logs/predict_images/{run}.log",
    benchmark:
        "benchmarks/predict_images/{run}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: config["eval"]["threads"]
    params:
        device=config["eval"]["device"],
        batch_size=config["eval"]["batch_size"],
        backend=config["predict"]["backend"],
    script:
        "../scripts/predict_images.py"
