rule compute_average_image:
    input:
        unpack(get_average_image_inputs),
    output:
        average="results/stats/{stats}/average_image.npy",
        stats="results/stats/{stats}/pixel_stats.json",
    log:
        "logs/compute_average_image/{stats}.log",
    benchmark:
        "benchmarks/compute_average_image/{stats}.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        over=config["average_image"]["over"],
    script:
        "../scripts/compute_average_image.py"


rule plot_average_image:
    input:
        average="results/stats/{stats}/average_image.npy",
        stats="results/stats/{stats}/pixel_stats.json",
    output:
        figure=report(
            "results/figures/{stats}/average_image.png",
            caption="../report/captions/average_image.rst",
            category="1. Data",
            labels={"figure": "average image ({stats})"},
        ),
    log:
        "logs/plot_average_image/{stats}.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_average_image.py"
