"""Rule parse_metadata: see cxr14.entries.build_entries."""

from cxr14.entries import build_entries
from cxr14.logs import log_to

BASE_PARAMS = ("layout", "data_dir", "on_bad_image", "views")

with log_to(snakemake.log[0]):
    build_entries(
        layout=snakemake.params.layout,
        data_dir=snakemake.params.data_dir,
        metadata_csv=snakemake.input.metadata,
        on_bad_image=snakemake.params.on_bad_image,
        views=snakemake.params.views,
        files=dict(snakemake.input.items()),  # the layout's other inputs, by name
        # The layout's parse_options: the params besides these four (none for most layouts).
        options={k: v for k, v in snakemake.params.items() if k not in BASE_PARAMS},
        out_entries=snakemake.output.entries,
        out_missing=snakemake.output.missing,
    )
