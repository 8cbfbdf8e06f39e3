"""Rule collect_comparisons: see cxr14.compare.collect_comparisons."""

from cxr14.compare import collect_comparisons
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    collect_comparisons(
        csvs=snakemake.input.tables,
        out_csv=snakemake.output.table,
        out_png=snakemake.output.figure,
        test_sets=snakemake.params.test_sets,  # with several data sets
    )
