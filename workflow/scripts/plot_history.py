"""Rule plot_history: see cxr14.report.plot_history."""

from cxr14.logs import log_to
from cxr14.report import plot_history

with log_to(snakemake.log[0]):
    plot_history(snakemake.input.history, snakemake.output.figure, snakemake.wildcards.arch)
