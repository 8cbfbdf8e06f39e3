"""Rule count_classes: see cxr14.report.count_classes."""

from cxr14.logs import log_to
from cxr14.report import count_classes

with log_to(snakemake.log[0]):
    count_classes(snakemake.input.labels, snakemake.output.table, snakemake.output.figure)
