"""Rule plot_subgroups: see cxr14.figures.plot_subgroups."""

from cxr14.figures import plot_subgroups
from cxr14.logs import log_to

w = snakemake.wildcards
with log_to(snakemake.log[0]):
    plot_subgroups(
        snakemake.input.subgroups,
        snakemake.output.figure,
        f"{w.run} ({w.split}, seed {w.seed})",
        snakemake.input.model,
    )
