"""Rule generate_synthetic_data: see cxr14.synthetic.generate, with the layout's writer
(cxr14.synthetic for the NIH layout, cxr14.synthetic_chexpert, ...), into the folder of its
metadata output."""

from pathlib import Path

from cxr14.logs import log_to
from cxr14.synthetic import generate

with log_to(snakemake.log[0]):
    generate(
        out_dir=Path(snakemake.output.metadata).parent,
        n_images=snakemake.params.n_images,
        image_size=snakemake.params.image_size,
        seed=snakemake.params.seed,
        min_prevalence=snakemake.params.min_prevalence,
        test_fraction=snakemake.params.test_fraction,
        workers=snakemake.threads,
        writer=snakemake.params.writer,  # the layout's writer module
        relabel=dict(snakemake.params.relabel),
    )
