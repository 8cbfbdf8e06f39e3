"""Rule train_model: see cxr14.train.run (DDP through torchrun when gpus > 1)."""

from pathlib import Path

from cxr14.logs import log_to
from cxr14.train import run

with log_to(snakemake.log[0]):
    run(
        settings=dict(snakemake.params.settings),
        gpus=snakemake.params.gpus,
        threads=snakemake.threads,
        store_h5=snakemake.input.store,
        labels_csv=snakemake.input.labels,
        splits_csv=snakemake.input.splits,
        index_npy=snakemake.input.index,
        average_npy=snakemake.input.average,
        stats_json=snakemake.input.stats,
        out_dir=Path(snakemake.output.best).parent,
    )
