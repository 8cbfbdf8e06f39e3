"""Rule plot_average_image: see cxr14.figures.plot_average_image."""

from cxr14.figures import plot_average_image
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    plot_average_image(snakemake.input.average, snakemake.input.stats, snakemake.output.figure)
