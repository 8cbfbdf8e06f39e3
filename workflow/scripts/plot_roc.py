"""Rule plot_roc: see cxr14.figures.plot_roc."""

from cxr14.figures import plot_roc
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    plot_roc(
        snakemake.input.predictions,
        snakemake.output.figure,
        snakemake.wildcards.arch,
        snakemake.input.checkpoint,
    )
