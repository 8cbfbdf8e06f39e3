"""Rule parse_boxes: see cxr14.entries.write_boxes."""

from cxr14.entries import write_boxes
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    write_boxes(
        layout=snakemake.params.layout,
        bbox_csv=snakemake.input.boxes,
        box_space=snakemake.params.box_space,
        size=snakemake.params.size,
        out_csv=snakemake.output.boxes,
    )
