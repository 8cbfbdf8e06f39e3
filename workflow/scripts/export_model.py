"""Rule export_model: see cxr14.bundle.export_model."""

from cxr14.bundle import export_model
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    export_model(
        **dict(snakemake.input.items()),
        out_bundle=snakemake.output.bundle,
        out_card=snakemake.output.card,
        preprocess=dict(snakemake.params.preprocess),
        provenance=dict(snakemake.params.provenance),
        sensitivity=snakemake.params.sensitivity,
        cam_layer=snakemake.params.cam_layer,
        calibration=snakemake.params.calibration,
    )
