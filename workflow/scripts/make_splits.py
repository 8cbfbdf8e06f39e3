"""Rule make_splits: see cxr14.splits.make_splits."""

from cxr14.logs import log_to
from cxr14.splits import make_splits

with log_to(snakemake.log[0]):
    make_splits(
        labels_csv=snakemake.input.labels,
        out_splits=snakemake.output.splits,
        out_counts=snakemake.output.counts,
        method=snakemake.params.method,
        fractions=dict(snakemake.params.fractions),
        seed=snakemake.params.seed,
        train_val_list=snakemake.input.get("train_val_list"),
        test_list=snakemake.input.get("test_list"),
        val_list=snakemake.input.get("val_list"),  # a data set that fixes validation too
        val_fraction=snakemake.params.val_fraction,
        folds=snakemake.params.folds,
        fold=snakemake.params.fold,
    )
