rule generate_synthetic_data:
    output:
        metadata=f"{SYNTHETIC_DIR}/Data_Entry_2017.csv",
        train_val_list=f"{SYNTHETIC_DIR}/train_val_list.txt",
        test_list=f"{SYNTHETIC_DIR}/test_list.txt",
        bbox=f"{SYNTHETIC_DIR}/BBox_List_2017.csv",
        expert_labels=f"{SYNTHETIC_DIR}/google2019_labels.csv",
        images=directory(f"{SYNTHETIC_DIR}/images"),
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
        layout=config["data"]["source"],
        data_dir=get_data_dir,
        on_bad_image=config["preprocess"]["on_bad_image"],
        views=config["data"]["views"],
    script:
        "../scripts/parse_metadata.py"
