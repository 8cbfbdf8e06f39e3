"""Rule collect_transfer: see cxr14.transfer.transfer_matrix."""

from cxr14.logs import log_to
from cxr14.transfer import transfer_matrix

with log_to(snakemake.log[0]):
    transfer_matrix(
        cells=[dict(c) for c in snakemake.params.cells],
        predictions=list(snakemake.input.predictions),
        out_csv=snakemake.output.table,
        out_drops=snakemake.output.drops,
        out_png=snakemake.output.figure,
        findings_csv=snakemake.input.findings_csv,
        n_boot=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
    )
