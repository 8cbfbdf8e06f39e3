"""Rule plot_filters: see cxr14.figures.plot_filters."""

from cxr14.figures import plot_filters
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    plot_filters(
        snakemake.input.filters,
        snakemake.input.model,
        snakemake.output.figure,
        snakemake.params.layers,
    )
