rule aggregate_run:
    input:
        metrics=get_run_metrics,
        predictions=lambda w: replicate_paths(f"{EVAL}/predictions.csv", w.run),
    output:
        table=report(
            "results/eval/{run}/replicates.csv",
            caption="../report/captions/replicates.rst",
            category="4. Evaluation",
            subcategory="{run}",
            labels={
                "run": "{run}",
                "table": "AUROC per replicate, mean, sd, min, max, seed-and-patient CI",
            },
        ),
    log:
        "logs/aggregate_run/{run}.log",
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
        table="results/compare/{run_a}/{run_b}.csv",
    log:
        "logs/compare_runs/{run_a}/{run_b}.log",
    benchmark:
        "benchmarks/compare_runs/{run_a}/{run_b}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        seeds=get_comparison_params,
        bootstrap=config["eval"]["bootstrap"],
        seed=config["eval"]["seed"],
    script:
        "../scripts/compare_runs.py"


rule collect_comparisons:
    input:
        tables=[f"results/compare/{a}/{b}.csv" for a, b in COMPARE],
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
    script:
        "../scripts/collect_comparisons.py"


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
        replicates=REPLICATES,
        layout=config["data"]["source"],
        dataset=LAYOUT.display_label(config),
        published_dataset=LAYOUT.published_dataset or "no published results",
        split_method=config["split"]["method"],
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
