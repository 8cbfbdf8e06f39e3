"""Rule parse_expert_labels: see cxr14.entries.write_expert_labels."""

from cxr14.entries import write_expert_labels
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    write_expert_labels(
        layout=snakemake.params.layout,
        expert_csv=snakemake.input.expert_labels,
        out_csv=snakemake.output.expert_labels,
    )
