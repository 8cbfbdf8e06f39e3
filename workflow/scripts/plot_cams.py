"""Rule plot_cams: see cxr14.figures.plot_cams."""

from cxr14.figures import plot_cams
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    plot_cams(snakemake.input.cams, snakemake.input.model, snakemake.output.figure)
