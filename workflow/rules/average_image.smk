rule compute_average_image:
    input:
        unpack(get_average_image_inputs),
    output:
        average="results/stats/{dataset}/{stats}/average_image.npy",
        stats="results/stats/{dataset}/{stats}/pixel_stats.json",
    log:
        "logs/compute_average_image/{dataset}/{stats}.log",
    benchmark:
        "benchmarks/compute_average_image/{dataset}/{stats}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        over=config["average_image"]["over"],
    script:
        "../scripts/compute_average_image.py"


rule plot_average_image:
    input:
        average="results/stats/{dataset}/{stats}/average_image.npy",
        stats="results/stats/{dataset}/{stats}/pixel_stats.json",
    output:
        figure=report(
            f"{FIGURES}/{{stats}}/average_image.png",
            caption="../report/captions/average_image.rst",
            category="1. Data",
            subcategory="{dataset}",
            labels={"data set": "{dataset}", "figure": "average image ({stats})"},
        ),
    log:
        "logs/plot_average_image/{dataset}/{stats}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_average_image.py"
