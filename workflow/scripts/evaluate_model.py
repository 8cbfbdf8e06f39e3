"""Rule evaluate_model: see cxr14.evaluate.evaluate_model."""

from cxr14.evaluate import evaluate_model
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    evaluate_model(
        checkpoint=snakemake.input.checkpoint,
        store_h5=snakemake.input.store,
        labels_csv=snakemake.input.labels,
        splits_csv=snakemake.input.splits,
        average_npy=snakemake.input.average,
        stats_json=snakemake.input.stats,
        out_predictions=snakemake.output.predictions,
        out_metrics=snakemake.output.metrics,
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
    )
