# The synthetic data sets: written by the workflow in their layout's exact format.
if LAYOUT.generated:

    rule generate_synthetic_data:
        output:
            **{
                key: directory(path) if key.endswith("images") else path
                for key, path in LAYOUT.written_files(config).items()
            },
        log:
            "logs/generate_synthetic_data.log",
        benchmark:
            "benchmarks/generate_synthetic_data.tsv"
        conda:
            "../../envs/cxr14.yaml"
        threads: 4
        params:
            n_images=config["synthetic"]["n_images"],
            image_size=config["synthetic"]["image_size"],
            seed=config["synthetic"]["seed"],
            min_prevalence=config["synthetic"]["min_prevalence"],
            test_fraction=config["synthetic"]["test_fraction"],
        script:
            "../scripts/generate_synthetic_data.py"


rule parse_metadata:
    input:
        **LAYOUT.parse_inputs(config),
    output:
        entries="results/metadata/entries.csv",
        missing="results/metadata/missing_images.csv",
    log:
        "logs/parse_metadata.log",
    benchmark:
        "benchmarks/parse_metadata.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        **LAYOUT.parse_options(config),
        layout=config["data"]["source"],
        data_dir=get_data_dir,
        on_bad_image=config["preprocess"]["on_bad_image"],
        views=config["data"]["views"],
    script:
        "../scripts/parse_metadata.py"


# A data set whose official split is in its metadata (a test CSV beside the training one) gets
# it as list files of image names, which the split stage reads.
if LAYOUT.official_lists_in_metadata:

    rule parse_official_split:
        input:
            **LAYOUT.parse_inputs(config),
        output:
            **LAYOUT.split_list_files(config),
        log:
            "logs/parse_official_split.log",
        conda:
            "../../envs/cxr14.yaml"
        threads: 1
        params:
            layout=config["data"]["source"],
        script:
            "../scripts/parse_official_split.py"


# Expert boxes and re-read labels in the project's own formats (only where the layout has them):
# evaluation reads these, never the data set's files.
if BOXES:

    rule parse_boxes:
        input:
            boxes=BOXES,
        output:
            boxes="results/metadata/boxes.csv",
        log:
            "logs/parse_boxes.log",
        conda:
            "../../envs/cxr14.yaml"
        threads: 1
        params:
            layout=config["data"]["source"],
            box_space=LAYOUT.box_space(config),
            size=SIZE,
        script:
            "../scripts/parse_boxes.py"


if EXPERT_LABELS:

    rule parse_expert_labels:
        input:
            expert_labels=EXPERT_LABELS,
        output:
            expert_labels="results/metadata/expert_labels.csv",
        log:
            "logs/parse_expert_labels.log",
        conda:
            "../../envs/cxr14.yaml"
        threads: 1
        params:
            layout=config["data"]["source"],
        script:
            "../scripts/parse_expert_labels.py"
