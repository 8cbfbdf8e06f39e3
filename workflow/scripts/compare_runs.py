"""Rule compare_runs: see cxr14.compare.compare_runs."""

from cxr14.compare import compare_runs
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    compare_runs(
        run_a=snakemake.wildcards.run_a,
        run_b=snakemake.wildcards.run_b,
        predictions_a=snakemake.input.predictions_a,
        predictions_b=snakemake.input.predictions_b,
        metrics_a=snakemake.input.metrics_a,
        metrics_b=snakemake.input.metrics_b,
        seeds_a=snakemake.params.seeds["a"],
        seeds_b=snakemake.params.seeds["b"],
        out_csv=snakemake.output.table,
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
        vocabularies=snakemake.params.vocabularies,  # of each run's classes
        findings_csv=snakemake.input.findings_csv,
    )
