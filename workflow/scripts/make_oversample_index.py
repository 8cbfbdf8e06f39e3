"""Rule make_oversample_index: see cxr14.oversample.make_oversample_index."""

from cxr14.logs import log_to
from cxr14.oversample import make_oversample_index

with log_to(snakemake.log[0]):
    make_oversample_index(
        labels_csv=snakemake.input.labels,
        splits_csv=snakemake.input.splits,
        out_index=snakemake.output.index,
        out_table=snakemake.output.table,
        enabled=snakemake.params.enabled,
        threshold=snakemake.params.threshold,
        power=snakemake.params.power,
        max_repeat=snakemake.params.max_repeat,
        seed=snakemake.params.seed,
    )
