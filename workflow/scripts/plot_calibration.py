"""Rule plot_calibration: see cxr14.figures.plot_calibration."""

from cxr14.figures import plot_calibration
from cxr14.logs import log_to

w = snakemake.wildcards
with log_to(snakemake.log[0]):
    plot_calibration(
        snakemake.input.predictions,
        snakemake.input.metrics,
        snakemake.output.figure,
        f"{w.run} ({w.split}, seed {w.seed})",
        snakemake.input.model,
        snakemake.input.calibration,
    )
