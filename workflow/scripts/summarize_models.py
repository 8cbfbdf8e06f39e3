"""Rule summarize_models: see cxr14.report.summarize_models."""

from cxr14.logs import log_to
from cxr14.report import summarize_models

with log_to(snakemake.log[0]):
    summarize_models(
        replicates=snakemake.params.replicates,
        store_h5=snakemake.input.store,
        skipped_csv=snakemake.input.skipped,
        run_tables=snakemake.input.run_tables,
        metrics_csvs=snakemake.input.metrics,
        localization_csvs=snakemake.input.localization,
        expert_csvs=snakemake.input.expert_labels,
        model_jsons=snakemake.input.models,
        histories=snakemake.input.histories,
        layout=snakemake.params.layout,
        dataset=snakemake.params.dataset,
        split_method=snakemake.params.split_method,
        out_csv=snakemake.output.table,
        out_replicates=snakemake.output.replicates,
        out_md=snakemake.output.markdown,
        out_png=snakemake.output.figure,
    )
