# The synthetic data sets: written by the workflow in their layout's exact format, each into
# its layout's folder (one rule per generated data set: the files differ by layout).
for _d in datasets_with(lambda lay, c: lay.generated):

    rule:
        name:
            f"generate_synthetic_data_{_d}"
        output:
            **{
                key: directory(path) if key.endswith("images") else path
                for key, path in LAYOUTS[_d].written_files(DATASETS[_d]).items()
            },
        log:
            f"logs/generate_synthetic_data/{_d}.log",
        benchmark:
            f"benchmarks/generate_synthetic_data/{_d}.tsv"
        conda:
            "../../envs/cxr14.yaml"
        threads: 4
        params:
            **DATASETS[_d]["synthetic"],
            writer=LAYOUTS[_d].writer,
        script:
            "../scripts/generate_synthetic_data.py"


rule parse_metadata:
    input:
        unpack(lambda w: layout_of(w).parse_inputs(own(w))),
    output:
        entries=f"{META}/entries.csv",
        missing=f"{META}/missing_images.csv",
    log:
        "logs/parse_metadata/{dataset}.log",
    benchmark:
        "benchmarks/parse_metadata/{dataset}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        options=lambda w: layout_of(w).parse_options(own(w)),
        layout=lambda w: layout_of(w).name,
        data_dir=get_data_dir,
        on_bad_image=config["preprocess"]["on_bad_image"],
        views=lambda w: own(w)["data"]["views"],
    script:
        "../scripts/parse_metadata.py"


# A data set whose official split is in its metadata (a test CSV beside the training one) gets
# it as list files of image names, which the split stage reads.
if OFFICIAL_IN_METADATA:

    rule parse_official_split:
        input:
            unpack(lambda w: layout_of(w).parse_inputs(own(w))),
        output:
            train_val_list=f"{META}/train_val_list.txt",
            test_list=f"{META}/test_list.txt",
            val_list=f"{META}/val_list.txt",
        log:
            "logs/parse_official_split/{dataset}.log",
        conda:
            "../../envs/cxr14.yaml"
        threads: 1
        params:
            layout=lambda w: layout_of(w).name,
        script:
            "../scripts/parse_official_split.py"


# Expert boxes and re-read labels in the project's own formats (only where the layout has them):
# evaluation reads these, never the data set's files.
if WITH_BOXES:

    rule parse_boxes:
        input:
            boxes=lambda w: layout_of(w).bbox_file(own(w)),
        output:
            boxes=f"{META}/boxes.csv",
        log:
            "logs/parse_boxes/{dataset}.log",
        conda:
            "../../envs/cxr14.yaml"
        threads: 1
        params:
            layout=lambda w: layout_of(w).name,
            box_space=lambda w: layout_of(w).box_space(own(w)),
            size=SIZE,
        script:
            "../scripts/parse_boxes.py"


if WITH_EXPERT:

    rule parse_expert_labels:
        input:
            expert_labels=lambda w: layout_of(w).expert_labels_file(own(w)),
        output:
            expert_labels=f"{META}/expert_labels.csv",
        log:
            "logs/parse_expert_labels/{dataset}.log",
        conda:
            "../../envs/cxr14.yaml"
        threads: 1
        params:
            layout=lambda w: layout_of(w).name,
        script:
            "../scripts/parse_expert_labels.py"
