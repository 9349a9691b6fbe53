# Pre-train one backbone per simulator configuration: results/pretrain/{bits}/model.pt.
# Code: task2sim.train.pretrain (+ data, models), CLI task2sim.cli.pretrain; docs/training.md.


rule pretrain_backbone:
    input:
        images="results/renders/{bits}/images.h5",
    output:
        model="results/pretrain/{bits}/model.pt",
        history="results/pretrain/{bits}/history.tsv",
        meta="results/pretrain/{bits}/model.meta.json",
    log:
        "logs/pretrain/{bits}/model.log",
    benchmark:
        "benchmarks/pretrain/{bits}/model.tsv"
    priority: CRITICAL
    conda:
        "../envs/task2sim.yaml"
    threads: 2
    resources:
        # where to run, not what to compute: a resource, so changing it reruns nothing
        device=config["device"],
        config_runtime=runtime_json("pretrain"),
        mem_mb=4000,
        runtime=60,
        # 0 here; a GPU profile sets e.g. `set-resources: {pretrain_backbone: {gpu: 1}}`.
        gpu=0,
    params:
        out_dir=subpath(output.model, parent=True),
        config=config_json("pretrain"),
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.pretrain --images {input.images} --out-dir {params.out_dir}"
        " --config {params.config:q} --runtime {resources.config_runtime:q} --seed {params.seed}"
        " --device {resources.device}"
        " --threads {threads} > {log} 2>&1"
