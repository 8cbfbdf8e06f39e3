"""Rule plot_filters: see cxr14.report.plot_filters."""

from cxr14.logs import log_to
from cxr14.report import plot_filters

with log_to(snakemake.log[0]):
    plot_filters(snakemake.input.checkpoint, snakemake.output.figure, snakemake.params.layers)
