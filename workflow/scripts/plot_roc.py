"""Rule plot_roc: see cxr14.figures.plot_roc."""

from cxr14.figures import plot_roc
from cxr14.logs import log_to

w = snakemake.wildcards
with log_to(snakemake.log[0]):
    plot_roc(
        snakemake.input.predictions,
        snakemake.output.figure,
        f"{w.run} ({w.split}, seed {w.seed})",
        snakemake.input.model,
    )
