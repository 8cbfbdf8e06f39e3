"""Rule localize_findings: see cxr14.localization.localize."""

from cxr14.localization import localize
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    localize(
        **dict(snakemake.input.items()),  # checkpoint, data and boxes, named as the arguments
        out_table=snakemake.output.table,
        out_cams=snakemake.output.cams,
        cam_threshold=snakemake.params.cam_threshold,
        cam_images=snakemake.params.cam_images,
        iou_thresholds=tuple(snakemake.params.iou_thresholds),
        iobb_thresholds=tuple(snakemake.params.iobb_thresholds),
        device=snakemake.params.device,
        cam_layer=snakemake.params.cam_layer,
    )
