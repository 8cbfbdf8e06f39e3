"""Rule aggregate_run: see cxr14.report.aggregate_run."""

from cxr14.logs import log_to
from cxr14.report import aggregate_run

with log_to(snakemake.log[0]):
    aggregate_run(
        replicates=snakemake.params.replicates,
        metrics_csvs=snakemake.input.metrics,
        out_csv=snakemake.output.table,
        predictions_csvs=snakemake.input.predictions,
        seeds=snakemake.params.seeds,
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
        run=snakemake.wildcards.run,
    )
