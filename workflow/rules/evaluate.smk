rule validate_model:
    input:
        unpack(get_validate_inputs),
    output:
        val_predictions=f"{REPLICATE}/val_predictions.csv",
        calibration=f"{REPLICATE}/calibration.json",
        model=f"{REPLICATE}/model.json",
        filters=f"{REPLICATE}/filters.npz",
    log:
        "logs/validate_model/{run}/{split}/seed{seed}.log",
    benchmark:
        "benchmarks/validate_model/{run}/{split}/seed{seed}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: config["eval"]["threads"]
    params:
        blanks=lambda w: [blank_policy(d) for d in TRAIN_ON[w.run]],
        vocabularies=lambda w: vocabularies(TRAIN_ON[w.run]),
        device=config["eval"]["device"],
        batch_size=config["eval"]["batch_size"],
        calibration=config["eval"]["calibration"],
    script:
        "../scripts/validate_model.py"


rule evaluate_model:
    input:
        unpack(get_model_eval_inputs),
    output:
        predictions=f"{EVAL}/predictions.csv",
        metrics=report(
            f"{EVAL}/metrics.csv",
            caption="../report/captions/metrics.rst",
            category="4. Evaluation",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "data set": "{dataset}",
                "split": "{split}",
                "seed": "{seed}",
                "table": "metrics (AUROC with CI, operating points)",
            },
        ),
    log:
        "logs/evaluate_model/{run}/{split}/seed{seed}/{dataset}.log",
    benchmark:
        "benchmarks/evaluate_model/{run}/{split}/seed{seed}/{dataset}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: config["eval"]["threads"]
    params:
        blank=lambda w: blank_policy(w.dataset),
        vocabulary=lambda w: LAYOUTS[w.dataset].vocabulary,
        bootstrap=config["eval"]["bootstrap"],
        seed=config["eval"]["seed"],
        device=config["eval"]["device"],
        batch_size=config["eval"]["batch_size"],
        calibration=config["eval"]["calibration"],
        sensitivity=config["eval"]["sensitivity"],
        fixed_rates=config["eval"]["fixed_rates"],
    script:
        "../scripts/evaluate_model.py"


rule plot_history:
    input:
        history=f"{MODEL}/history.csv",
        model=f"{REPLICATE}/model.json",
    output:
        figure=report(
            f"{REPLICATE}/history.png",
            caption="../report/captions/history.rst",
            category="3. Training",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "split": "{split}",
                "seed": "{seed}",
                "figure": "loss and validation AUROC per epoch",
            },
        ),
    log:
        "logs/plot_history/{run}/{split}/seed{seed}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_history.py"


rule plot_roc:
    input:
        predictions=f"{EVAL}/predictions.csv",
        model=f"{REPLICATE}/model.json",
    output:
        figure=report(
            f"{EVAL}/roc.png",
            caption="../report/captions/roc.rst",
            category="4. Evaluation",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "data set": "{dataset}",
                "split": "{split}",
                "seed": "{seed}",
                "figure": "ROC curves",
            },
        ),
    log:
        "logs/plot_roc/{run}/{split}/seed{seed}/{dataset}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_roc.py"


rule plot_calibration:
    input:
        predictions=f"{EVAL}/predictions.csv",
        metrics=f"{EVAL}/metrics.csv",
        model=f"{REPLICATE}/model.json",
        calibration=f"{REPLICATE}/calibration.json",
    output:
        figure=report(
            f"{EVAL}/calibration.png",
            caption="../report/captions/calibration.rst",
            category="4. Evaluation",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "data set": "{dataset}",
                "split": "{split}",
                "seed": "{seed}",
                "figure": "calibration (reliability diagram, ECE per class)",
            },
        ),
    log:
        "logs/plot_calibration/{run}/{split}/seed{seed}/{dataset}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_calibration.py"


rule evaluate_expert_labels:
    input:
        predictions=f"{EVAL}/predictions.csv",
        expert_labels=f"{META}/expert_labels.csv",
    output:
        table=report(
            f"{EVAL}/expert_labels.csv",
            caption="../report/captions/expert_labels.rst",
            category="4. Evaluation",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "data set": "{dataset}",
                "split": "{split}",
                "seed": "{seed}",
                "table": "AUROC against expert labels and the original labels",
            },
        ),
    log:
        "logs/evaluate_expert_labels/{run}/{split}/seed{seed}/{dataset}.log",
    benchmark:
        "benchmarks/evaluate_expert_labels/{run}/{split}/seed{seed}/{dataset}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        mapping=config["eval"]["expert_mapping"],
        alternatives=config["eval"]["expert_mapping_alternatives"],
        # Said in the table's caption.
        expert_source=lambda w: layout_of(w).wording.expert_source,
        labels_phrase=lambda w: layout_of(w).wording.labels,
        bootstrap=config["eval"]["bootstrap"],
        seed=config["eval"]["seed"],
    script:
        "../scripts/evaluate_expert_labels.py"


rule evaluate_subgroups:
    input:
        predictions=f"{EVAL}/predictions.csv",
        labels=f"{META}/labels.csv",
        metrics=f"{EVAL}/metrics.csv",
    output:
        table=report(
            f"{EVAL}/subgroups.csv",
            caption="../report/captions/subgroups.rst",
            category="4. Evaluation",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "data set": "{dataset}",
                "split": "{split}",
                "seed": "{seed}",
                "table": "AUROC, TPR and FPR by sex, age band and view, with CIs",
            },
        ),
    log:
        "logs/evaluate_subgroups/{run}/{split}/seed{seed}/{dataset}.log",
    benchmark:
        "benchmarks/evaluate_subgroups/{run}/{split}/seed{seed}/{dataset}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        age_edges=config["eval"]["subgroup_age_edges"],
        min_patients=config["eval"]["subgroup_min_positive_patients"],
        bootstrap=config["eval"]["bootstrap"],
        seed=config["eval"]["seed"],
    script:
        "../scripts/evaluate_subgroups.py"


rule plot_subgroups:
    input:
        subgroups=f"{EVAL}/subgroups.csv",
        model=f"{REPLICATE}/model.json",
    output:
        figure=report(
            f"{EVAL}/subgroups.png",
            caption="../report/captions/subgroups_png.rst",
            category="4. Evaluation",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "data set": "{dataset}",
                "split": "{split}",
                "seed": "{seed}",
                "figure": "AUROC and TPR by subgroup",
            },
        ),
    log:
        "logs/plot_subgroups/{run}/{split}/seed{seed}/{dataset}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_subgroups.py"


rule plot_filters:
    input:
        filters=f"{REPLICATE}/filters.npz",
        model=f"{REPLICATE}/model.json",
    output:
        figure=report(
            f"{REPLICATE}/filters.png",
            caption="../report/captions/filters.rst",
            category="4. Evaluation",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "split": "{split}",
                "seed": "{seed}",
                "figure": "learned filters",
            },
        ),
    log:
        "logs/plot_filters/{run}/{split}/seed{seed}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        layers=config["eval"]["filter_layers"],
    script:
        "../scripts/plot_filters.py"


# Localisation and the Grad-CAM figure need expert boxes: planned only where the layout has them.
if WITH_BOXES:

    rule localize_findings:
        input:
            unpack(get_cam_inputs),
        output:
            table=report(
                f"{EVAL}/localization.csv",
                caption="../report/captions/localization.rst",
                category="4. Evaluation",
                subcategory="{run}",
                labels={
                    "run": "{run}",
                    "data set": "{dataset}",
                    "split": "{split}",
                    "seed": "{seed}",
                    "table": "localisation accuracy by IoU and IoBB, with counts and CIs",
                },
            ),
            cams=f"{EVAL}/cams.npz",
        log:
            "logs/localize_findings/{run}/{split}/seed{seed}/{dataset}.log",
        benchmark:
            "benchmarks/localize_findings/{run}/{split}/seed{seed}/{dataset}.tsv"
        conda:
            "../../envs/cxr14.yaml"
        threads: config["eval"]["threads"]
        params:
            cam_threshold=config["eval"]["cam_threshold"],
            cam_images=config["eval"]["cam_images"],
            iou_thresholds=config["eval"]["iou_thresholds"],
            iobb_thresholds=config["eval"]["iobb_thresholds"],
            device=config["eval"]["device"],
            cam_layer=get_cam_layer,
        script:
            "../scripts/localize_findings.py"

    rule plot_cams:
        input:
            cams=f"{EVAL}/cams.npz",
            model=f"{REPLICATE}/model.json",
        output:
            figure=report(
                f"{EVAL}/cam.png",
                caption="../report/captions/cam.rst",
                category="4. Evaluation",
                subcategory="{run}",
                labels={
                    "run": "{run}",
                    "data set": "{dataset}",
                    "split": "{split}",
                    "seed": "{seed}",
                    "figure": "Grad-CAM with expert boxes",
                },
            ),
        log:
            "logs/plot_cams/{run}/{split}/seed{seed}/{dataset}.log",
        conda:
            "../../envs/cxr14.yaml"
        threads: 1
        params:
            # Said in the figure's caption (the CAMs themselves come from localize_findings).
            cam_threshold=config["eval"]["cam_threshold"],
        script:
            "../scripts/plot_cams.py"
