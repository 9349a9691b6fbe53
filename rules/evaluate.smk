# Downstream evaluation (linear probe, fine-tune, scratch) of chosen backbones on every task.
# Code: task2sim.train.evaluate, CLI task2sim.cli.evaluate; docs/training.md.


include: "evaluate_common.smk"


rule evaluate_downstream:
    input:
        unpack(evaluate_inputs),
    output:
        json="results/evaluate/{method}/{source}/{task}.json",
        meta="results/evaluate/{method}/{source}/{task}.meta.json",
    log:
        "logs/evaluate/{method}/{source}/{task}.log",
    benchmark:
        "benchmarks/evaluate/{method}/{source}/{task}.tsv"
    wildcard_constraints:
        method="linear|finetune|scratch",
        source=r"[01]{8}|none",
    conda:
        "../envs/task2sim.yaml"
    threads: 2
    resources:
        # where to run, not what to compute: a resource, so changing it reruns nothing
        device=config["device"],
        mem_mb=4000,
        runtime=60,
        gpu=0,
    params:
        model_args=evaluate_model_args,
        config=evaluate_config_json,
        reward=evaluate_reward_json,
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.evaluate --method {wildcards.method} --source {wildcards.source}"
        " --task {wildcards.task} {params.model_args} --task-h5 {input.task}"
        " --config {params.config:q} --reward {params.reward:q} --seed {params.seed} --device {resources.device}"
        " --threads {threads} --out {output.json} > {log} 2>&1"


FINAL_TARGETS.extend(evaluate_targets())
