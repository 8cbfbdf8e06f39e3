"""Rule compute_average_image: see cxr14.average_image.compute_average_image."""

from cxr14.average_image import compute_average_image
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    compute_average_image(
        store_h5=snakemake.input.store,
        out_npy=snakemake.output.average,
        out_json=snakemake.output.stats,
        splits_csv=snakemake.input.get("splits"),
        over=snakemake.params.over,
    )
