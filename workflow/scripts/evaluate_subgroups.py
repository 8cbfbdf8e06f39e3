"""Rule evaluate_subgroups: see cxr14.subgroups.evaluate_subgroups."""

from cxr14.logs import log_to
from cxr14.subgroups import evaluate_subgroups

with log_to(snakemake.log[0]):
    evaluate_subgroups(
        snakemake.input.predictions,
        snakemake.input.labels,
        snakemake.input.metrics,
        snakemake.output.table,
        age_edges=snakemake.params.age_edges,
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
        min_patients=snakemake.params.min_patients,
    )
