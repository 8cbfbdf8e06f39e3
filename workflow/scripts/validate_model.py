"""Rule validate_model: see cxr14.evaluate.validate_model."""

from cxr14.evaluate import validate_model
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    validate_model(
        **dict(snakemake.input.items()),  # checkpoint and data, named as the arguments
        out_val_predictions=snakemake.output.val_predictions,
        out_model=snakemake.output.model,
        out_filters=snakemake.output.filters,
        out_calibration=snakemake.output.calibration,
        vocabularies=list(snakemake.params.vocabularies),
        blanks=list(snakemake.params.blanks),
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
        calibration=snakemake.params.calibration,
    )
