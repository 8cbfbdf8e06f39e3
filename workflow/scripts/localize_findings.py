"""Rule localize_findings: see cxr14.evaluate.localize."""

from cxr14.evaluate import localize
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    localize(
        checkpoint=snakemake.input.checkpoint,
        store_h5=snakemake.input.store,
        labels_csv=snakemake.input.labels,
        splits_csv=snakemake.input.splits,
        average_npy=snakemake.input.average,
        stats_json=snakemake.input.stats,
        bbox_csv=snakemake.input.bbox,
        box_space=snakemake.params.box_space,
        out_table=snakemake.output.table,
        cam_threshold=snakemake.params.cam_threshold,
        iou_thresholds=tuple(snakemake.params.iou_thresholds),
        device=snakemake.params.device,
    )
