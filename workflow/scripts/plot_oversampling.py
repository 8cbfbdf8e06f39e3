"""Rule plot_oversampling: see cxr14.figures.plot_oversampling."""

from cxr14.figures import plot_oversampling
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    plot_oversampling(snakemake.input.table, snakemake.output.figure)
