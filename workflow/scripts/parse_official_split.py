"""Rule parse_official_split: see cxr14.entries.write_official_lists."""

from cxr14.entries import write_official_lists
from cxr14.logs import log_to

with log_to(snakemake.log[0]):
    write_official_lists(
        layout=snakemake.params.layout,
        files=dict(snakemake.input.items()),
        out_train_val=snakemake.output.train_val_list,
        out_test=snakemake.output.test_list,
        out_val=snakemake.output.get("val_list"),  # where the data set fixes validation
    )
