# ChestX-ray14 multi-label classification pipeline.
# Stages: data layout -> HDF5 store -> splits, average image, oversampling index -> training
# -> evaluation -> model bundles and prediction -> comparisons and summary (one include each,
# in that order; the HTML report is `snakemake --report`).
# Run: snakemake --cores 8 --resources gpu=1   (defaults in profiles/default/config.yaml)


from snakemake.utils import min_version

min_version("9.0")


# Every default, once; --configfile files are merged over it key by key. Found beside this file,
# so that a run in another working directory has the same defaults.
configfile: f"{workflow.basedir}/config/config.yaml"


report: "workflow/report/workflow.rst"


# The image every job runs in with `--sdm apptainer` (the project's Dockerfile; "" none).
container: config["container"] or None


# common.smk checks the configuration first: against workflow/schemas/config.schema.yaml, then what
# a schema cannot say (paths, runs, comparisons), each problem on one line naming its key and file.
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/average_image.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),
