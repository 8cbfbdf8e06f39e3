"""Rule plot_cams: see cxr14.report.plot_cams."""

from cxr14.logs import log_to
from cxr14.report import plot_cams

with log_to(snakemake.log[0]):
    plot_cams(
        checkpoint=snakemake.input.checkpoint,
        store_h5=snakemake.input.store,
        labels_csv=snakemake.input.labels,
        splits_csv=snakemake.input.splits,
        average_npy=snakemake.input.average,
        stats_json=snakemake.input.stats,
        bbox_csv=snakemake.input.bbox,
        box_space=snakemake.params.box_space,
        out_png=snakemake.output.figure,
        n_images=snakemake.params.n_images,
        cam_threshold=snakemake.params.cam_threshold,
        device=snakemake.params.device,
    )
