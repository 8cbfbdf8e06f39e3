"""Rule evaluate_model: see cxr14.evaluate.evaluate_model."""

from cxr14.evaluate import evaluate_model
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    evaluate_model(
        **dict(snakemake.input.items()),  # checkpoint and data, named as the arguments
        out_predictions=snakemake.output.predictions,
        out_metrics=snakemake.output.metrics,
        vocabulary=snakemake.params.vocabulary,
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
        calibration=snakemake.params.calibration,
        sensitivity=snakemake.params.sensitivity,
        fixed_rates=tuple(snakemake.params.fixed_rates),
        blank=snakemake.params.blank,  # None for data sets whose labels are all known
    )
