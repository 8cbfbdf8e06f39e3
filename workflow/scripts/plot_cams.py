"""Rule plot_cams: see cxr14.figures.plot_cams."""

from cxr14.figures import plot_cams
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    plot_cams(
        **dict(snakemake.input.items()),  # checkpoint, data and boxes, named as the arguments
        layout=snakemake.params.layout,
        box_space=snakemake.params.box_space,
        out_png=snakemake.output.figure,
        n_images=snakemake.params.n_images,
        cam_threshold=snakemake.params.cam_threshold,
        device=snakemake.params.device,
        cam_layer=snakemake.params.cam_layer,
    )
