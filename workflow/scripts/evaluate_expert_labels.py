"""Rule evaluate_expert_labels: see cxr14.expert.evaluate_expert_labels."""

from cxr14.expert import evaluate_expert_labels
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    evaluate_expert_labels(
        snakemake.input.predictions,
        snakemake.input.expert_labels,
        mapping=snakemake.params.mapping,
        out_csv=snakemake.output.table,
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
        alternatives=snakemake.params.alternatives,
    )
