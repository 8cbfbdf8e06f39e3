rule evaluate_model:
    input:
        unpack(get_model_eval_inputs),
    output:
        predictions="results/eval/{arch}/predictions.csv",
        metrics=report(
            "results/eval/{arch}/metrics.csv",
            caption="../report/captions/metrics.rst",
            category="4. Evaluation",
            subcategory="{arch}",
            labels={
                "model": "{arch}",
                "table": "metrics (AUROC with CI, operating points)",
            },
        ),
    log:
        "logs/evaluate_model/{arch}.log",
    benchmark:
        "benchmarks/evaluate_model/{arch}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: config["eval"]["threads"]
    params:
        bootstrap=config["eval"]["bootstrap"],
        seed=config["eval"]["seed"],
        device=config["eval"]["device"],
        batch_size=config["eval"]["batch_size"],
    script:
        "../scripts/evaluate_model.py"


rule localize_findings:
    input:
        unpack(get_cam_inputs),
    output:
        table=report(
            "results/eval/{arch}/localization.csv",
            caption="../report/captions/localization.rst",
            category="4. Evaluation",
            subcategory="{arch}",
            labels={"model": "{arch}", "table": "localisation accuracy by IoU"},
        ),
    log:
        "logs/localize_findings/{arch}.log",
    benchmark:
        "benchmarks/localize_findings/{arch}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: config["eval"]["threads"]
    params:
        layout=config["data"]["source"],
        box_space=LAYOUT.box_space(config),
        cam_threshold=config["eval"]["cam_threshold"],
        iou_thresholds=config["eval"]["iou_thresholds"],
        device=config["eval"]["device"],
    script:
        "../scripts/localize_findings.py"


rule plot_history:
    input:
        history="results/models/{arch}/history.csv",
        checkpoint="results/models/{arch}/best.pt",
    output:
        figure=report(
            "results/eval/{arch}/history.png",
            caption="../report/captions/history.rst",
            category="3. Training",
            subcategory="{arch}",
            labels={
                "model": "{arch}",
                "figure": "loss and validation AUROC per epoch",
            },
        ),
    log:
        "logs/plot_history/{arch}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_history.py"


rule plot_roc:
    input:
        predictions="results/eval/{arch}/predictions.csv",
        checkpoint="results/models/{arch}/best.pt",
    output:
        figure=report(
            "results/eval/{arch}/roc.png",
            caption="../report/captions/roc.rst",
            category="4. Evaluation",
            subcategory="{arch}",
            labels={"model": "{arch}", "figure": "ROC curves"},
        ),
    log:
        "logs/plot_roc/{arch}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_roc.py"


rule plot_filters:
    input:
        checkpoint="results/models/{arch}/best.pt",
    output:
        figure=report(
            "results/eval/{arch}/filters.png",
            caption="../report/captions/filters.rst",
            category="4. Evaluation",
            subcategory="{arch}",
            labels={"model": "{arch}", "figure": "learned filters"},
        ),
    log:
        "logs/plot_filters/{arch}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        layers=config["eval"]["filter_layers"],
    script:
        "../scripts/plot_filters.py"


rule plot_cams:
    input:
        unpack(get_cam_inputs),
    output:
        figure=report(
            "results/eval/{arch}/cam.png",
            caption="../report/captions/cam.rst",
            category="4. Evaluation",
            subcategory="{arch}",
            labels={"model": "{arch}", "figure": "Grad-CAM with expert boxes"},
        ),
    log:
        "logs/plot_cams/{arch}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: config["eval"]["threads"]
    params:
        layout=config["data"]["source"],
        box_space=LAYOUT.box_space(config),
        n_images=config["eval"]["cam_images"],
        cam_threshold=config["eval"]["cam_threshold"],
        device=config["eval"]["device"],
    script:
        "../scripts/plot_cams.py"


rule summarize_models:
    input:
        unpack(get_summary_inputs),
    output:
        table=report(
            "results/report/summary.csv",
            caption="../report/captions/summary.rst",
            category="5. Summary",
            labels={"table": "summary (CSV)"},
        ),
        markdown=report(
            "results/report/summary.md",
            caption="../report/captions/summary_md.rst",
            category="5. Summary",
            labels={"table": "summary (Markdown)"},
        ),
        figure=report(
            "results/report/auroc_comparison.png",
            caption="../report/captions/auroc_comparison.rst",
            category="5. Summary",
            labels={"figure": "per-class AUROC across models and published results"},
        ),
    log:
        "logs/summarize_models.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        archs=ARCHS,
        layout=config["data"]["source"],
        dataset=LAYOUT.display_label(config),
    script:
        "../scripts/summarize_models.py"
