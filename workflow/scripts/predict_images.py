"""Rule predict_images: see cxr14.predict.predict (files that cannot be read are listed in
predictions_failures.csv; the job still succeeds), as `cxr14 predict` scores them."""

from cxr14.logs import log_to
from cxr14.predict import predict

with log_to(snakemake.log[0]):
    predict(
        model=snakemake.input.bundle,
        inputs=[snakemake.input.images],
        out_csv=snakemake.output.predictions,
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
        cam_dir=snakemake.output.get("cam"),
        backend=snakemake.params.backend,
        threads=snakemake.threads,
    )
