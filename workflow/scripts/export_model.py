"""Rule export_model: see cxr14.bundle.export_model (and the bundle into the replicate's MLflow
run when `track.tools` has mlflow: cxr14.tracking.log_bundle)."""

from cxr14.bundle import export_model
from cxr14.logs import log_to
from cxr14.tracking import log_bundle, replicate_name

with log_to(snakemake.log[0]):
    provenance = dict(snakemake.params.provenance)
    export_model(
        **dict(snakemake.input.items()),
        out_bundle=snakemake.output.bundle,
        out_card=snakemake.output.card,
        preprocess=dict(snakemake.params.preprocess),
        provenance=provenance,
        sensitivity=snakemake.params.sensitivity,
        cam_layer=snakemake.params.cam_layer,
        calibration=snakemake.params.calibration,
    )
    replicate = replicate_name(provenance["run"], provenance["split"], provenance["seed"])
    # From the job's configuration, not params: turning tracking on reruns nothing.
    log_bundle(snakemake.config["track"], replicate, snakemake.output.bundle, snakemake.output.card)
