"""Rule plot_history: see cxr14.figures.plot_history."""

from cxr14.figures import plot_history
from cxr14.logs import log_to

w = snakemake.wildcards
with log_to(snakemake.log[0]):
    plot_history(
        snakemake.input.history,
        snakemake.output.figure,
        f"{w.run} ({w.split}, seed {w.seed})",
        snakemake.input.model,
    )
