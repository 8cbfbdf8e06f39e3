"""Rule downsample_images (one shard): see cxr14.store.downsample_shard."""

from cxr14.logs import log_to
from cxr14.store import downsample_shard

with log_to(snakemake.log[0]):
    downsample_shard(
        entries_csv=snakemake.input.entries,
        data_dir=snakemake.params.data_dir,
        shard=int(snakemake.wildcards.shard),
        n_shards=snakemake.params.n_shards,
        out_h5=snakemake.output.shard,
        size=snakemake.params.size,
        resample=snakemake.params.resample,
        on_bad_image=snakemake.params.on_bad_image,
        threads=snakemake.threads,
        formats=snakemake.params.formats,  # what the layout decodes: PNG, JPEG, DICOM
    )
