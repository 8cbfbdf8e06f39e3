"""Rule merge_shards: see cxr14.store.merge_shards."""

from cxr14.entries import provenance
from cxr14.logs import log_to
from cxr14.store import merge_shards

with log_to(snakemake.log[0]):
    merge_shards(
        shard_paths=snakemake.input.shards,
        entries_csv=snakemake.input.entries,
        missing_csv=snakemake.input.missing,
        out_h5=snakemake.output.store,
        out_labels=snakemake.output.labels,
        out_skipped=snakemake.output.skipped,
        attrs={
            "source": snakemake.params.source,
            "data_dir": snakemake.params.data_dir,
            "resize": f"PIL {snakemake.params.resample} (antialiased), aspect not kept",
            **provenance(snakemake.params.source, snakemake.input.metadata, snakemake.params.views),
        },
    )
