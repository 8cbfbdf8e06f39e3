rule compute_average_image:
    input:
        unpack(get_average_image_inputs),
    output:
        average="results/stats/average_image.npy",
        stats="results/stats/pixel_stats.json",
    log:
        "logs/compute_average_image.log",
    benchmark:
        "benchmarks/compute_average_image.tsv"
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    params:
        over=config["average_image"]["over"],
    script:
        "../scripts/compute_average_image.py"


rule plot_average_image:
    input:
        average="results/stats/average_image.npy",
        stats="results/stats/pixel_stats.json",
    output:
        figure=report(
            "results/figures/average_image.png",
            caption="../report/captions/average_image.rst",
            category="1. Data",
            labels={"figure": "average image"},
        ),
    log:
        "logs/plot_average_image.log",
    conda:
        "../../envs/cxr14.yaml"
    threads: 1
    script:
        "../scripts/plot_average_image.py"
