"""Rule plot_oversampling: see cxr14.plots.plot_oversampling."""

from cxr14.logs import log_to
from cxr14.plots import plot_oversampling

with log_to(snakemake.log[0]):
    plot_oversampling(snakemake.input.table, snakemake.output.figure)
