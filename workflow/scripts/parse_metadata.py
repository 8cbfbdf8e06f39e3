"""Rule parse_metadata: see cxr14.entries.build_entries."""

from cxr14.entries import build_entries
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    build_entries(
        layout=snakemake.params.layout,
        data_dir=snakemake.params.data_dir,
        metadata_csv=snakemake.input.metadata,
        on_bad_image=snakemake.params.on_bad_image,
        views=snakemake.params.views,
        files=dict(snakemake.input.items()),  # the layout's other inputs, by name
        options=dict(snakemake.params.options),  # the layout's parse_options (most: none)
        out_entries=snakemake.output.entries,
        out_missing=snakemake.output.missing,
    )
