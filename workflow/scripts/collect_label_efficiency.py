"""Rule collect_label_efficiency: see cxr14.report.label_efficiency."""

from cxr14.logs import log_to
from cxr14.report import label_efficiency

with log_to(snakemake.log[0]):
    label_efficiency(
        rows=[dict(r) for r in snakemake.params.rows],
        run_tables=list(snakemake.input.run_tables),
        out_csv=snakemake.output.table,
        out_png=snakemake.output.figure,
    )
