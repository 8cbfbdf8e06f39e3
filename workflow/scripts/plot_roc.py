"""Rule plot_roc: see cxr14.report.plot_roc."""

from cxr14.logs import log_to
from cxr14.report import plot_roc

with log_to(snakemake.log[0]):
    plot_roc(snakemake.input.predictions, snakemake.output.figure, snakemake.wildcards.arch)
