rule aggregate_run:
    input:
        metrics=get_run_metrics,
        predictions=lambda w: replicate_paths(
            f"{EVAL}/predictions.csv", w.run, w.dataset
        ),
    output:
        table=report(
            "results/eval/{run}/{dataset}/replicates.csv",
            caption="../report/captions/replicates.rst",
            category="4. Evaluation",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "data set": "{dataset}",
                "table": "AUROC per replicate, mean, sd, min, max, seed-and-patient CI",
            },
        ),
    log:
        "logs/aggregate_run/{run}/{dataset}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        replicates=lambda w: [
            f"{s}/seed{seed}" for _, s, seed in replicates(config, w.run)
        ],
        seeds=lambda w: [seed for _, _, seed in replicates(config, w.run)],
        bootstrap=config["eval"]["bootstrap"],
        seed=config["eval"]["seed"],
    script:
        "../scripts/aggregate_run.py"


rule compare_runs:
    input:
        unpack(get_comparison_inputs),
    output:
        table="results/compare/{dataset}/{run_a}/{run_b}.csv",
    log:
        "logs/compare_runs/{dataset}/{run_a}/{run_b}.log",
    benchmark:
        "benchmarks/compare_runs/{dataset}/{run_a}/{run_b}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        seeds=get_comparison_params,
        vocabularies=lambda w: [model_vocabulary(w.run_a), model_vocabulary(w.run_b)],
        bootstrap=config["eval"]["bootstrap"],
        seed=config["eval"]["seed"],
    script:
        "../scripts/compare_runs.py"


rule collect_comparisons:
    input:
        tables=[f"results/compare/{d}/{a}/{b}.csv" for d, a, b in COMPARE],
    output:
        table=report(
            "results/report/comparisons.csv",
            caption="../report/captions/comparisons.rst",
            category="5. Summary",
            labels={"table": "paired comparisons of runs"},
        ),
        figure=report(
            "results/report/comparisons.png",
            caption="../report/captions/comparisons_png.rst",
            category="5. Summary",
            labels={"figure": "paired comparisons (forest plot)"},
        ),
    log:
        "logs/collect_comparisons.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        test_sets=[d for d, _, _ in COMPARE] if len(DATASETS) > 1 else [],
    script:
        "../scripts/collect_comparisons.py"


# Every run on every data set's test split: only where the workflow has several data sets.
if len(DATASETS) > 1:

    rule collect_transfer:
        input:
            predictions=[p for cell in TRANSFER_CELLS for p in cell["files"]],
            findings_csv=FINDINGS_CSV,
        output:
            table=report(
                "results/report/transfer.csv",
                caption="../report/captions/transfer.rst",
                category="5. Summary",
                labels={"table": "transfer matrix: every run on every test set"},
            ),
            drops=report(
                "results/report/transfer_drops.csv",
                caption="../report/captions/transfer_drops.rst",
                category="5. Summary",
                labels={"table": "in-domain to external AUROC drops"},
            ),
            figure=report(
                "results/report/transfer.png",
                caption="../report/captions/transfer_png.rst",
                category="5. Summary",
                labels={"figure": "transfer matrix (heat map)"},
            ),
        log:
            "logs/collect_transfer.log",
        benchmark:
            "benchmarks/collect_transfer.tsv"
        conda:
            "../../envs/cxr14.yaml"
        threads: 1
        params:
            cells=[{k: v for k, v in c.items() if k != "files"} for c in TRANSFER_CELLS],
            bootstrap=config["eval"]["bootstrap"],
            seed=config["eval"]["seed"],
        script:
            "../scripts/collect_transfer.py"


# Only where some runs differ in nothing but train.label_fraction.
if LABEL_EFFICIENCY:

    rule collect_label_efficiency:
        input:
            run_tables=[
                f"results/eval/{r['run']}/{HOME[r['run']]}/replicates.csv"
                for r in LABEL_EFFICIENCY
            ],
        output:
            table=report(
                "results/report/label_efficiency.csv",
                caption="../report/captions/label_efficiency.rst",
                category="5. Summary",
                labels={"table": "label efficiency: mean AUROC per label fraction"},
            ),
            figure=report(
                "results/report/label_efficiency.png",
                caption="../report/captions/label_efficiency_png.rst",
                category="5. Summary",
                labels={"figure": "label efficiency (AUROC against label fraction)"},
            ),
        log:
            "logs/collect_label_efficiency.log",
        conda:
            "../../envs/cxr14.yaml"
        threads: 1
        params:
            rows=LABEL_EFFICIENCY,
        script:
            "../scripts/collect_label_efficiency.py"


rule summarize_models:
    input:
        unpack(get_summary_inputs),
    output:
        table=report(
            "results/report/summary.csv",
            caption="../report/captions/summary.rst",
            category="5. Summary",
            labels={"table": "summary per run (CSV)"},
        ),
        replicates=report(
            "results/report/replicates.csv",
            caption="../report/captions/replicates_summary.rst",
            category="5. Summary",
            labels={"table": "summary per replicate (CSV)"},
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
        replicates=SUMMARY_REPLICATES,
        layout=LAYOUTS[FIRST].name,
        dataset=LAYOUTS[FIRST].display_label(DATASETS[FIRST]),
        published_dataset=LAYOUTS[FIRST].published_dataset or "no published results",
        split_method=DATASETS[FIRST]["split"]["method"],
    script:
        "../scripts/summarize_models.py"


# A finished run says where to look (what `make run` leaves), and how to make the HTML report.
onsuccess:
    if os.path.exists("results/report/summary.md"):
        print(
            "\nThe summary of every run: results/report/summary.md (and summary.csv)."
            "\nThe HTML report of every figure and table: make report"
            " (snakemake --report results/report.html).",
            file=sys.stderr,
        )
