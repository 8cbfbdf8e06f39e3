"""Rule train_model: see cxr14.train.run (DDP through torchrun when gpus > 1)."""

from pathlib import Path

from cxr14.logs import log_to
from cxr14.provenance import collect, data_record
from cxr14.tracking import replicate_name
from cxr14.train import run

with log_to(snakemake.log[0]):
    stores = list(snakemake.input.store)
    # A store is results/hdf5/<data set>/images_<size>.h5.
    names = [Path(s).parent.name for s in stores]
    w, track, tracking = snakemake.wildcards, snakemake.config["track"], None
    # Live curves, named by replicate (cxr14.tracking); like provenance, not a param.
    if track["tools"]:
        tracking = {**track, "name": replicate_name(w.run, w.split, w.seed)}
    run(
        settings=dict(snakemake.params.settings),
        tracking=tracking,
        # Read from the job's configuration, not params: a new commit reruns nothing.
        provenance=collect(snakemake.config, data_record(snakemake.config, names, stores)),
        gpus=snakemake.params.gpus,
        threads=snakemake.threads,
        # One of each per data set trained on (in `train_on` order).
        store_h5=stores,
        labels_csv=list(snakemake.input.labels),
        splits_csv=list(snakemake.input.splits),
        index_npy=list(snakemake.input.index),
        average_npy=list(snakemake.input.average),
        stats_json=list(snakemake.input.stats),
        vocabularies=list(snakemake.params.vocabularies),
        findings_csv=snakemake.input.get("findings"),  # maps several sets' labels
        out_dir=Path(snakemake.output.best).parent,
    )
