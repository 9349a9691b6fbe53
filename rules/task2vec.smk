# Task2Vec embedding of every task, and the task-distance matrices.
# Code: task2sim.task2vec, CLI task2sim.cli.task2vec; docs/task2vec.md.


include: "task2vec_common.smk"


rule task2vec_embed:
    input:
        task=rules.tasks_prepare.output.data,
        probe=task2vec_probe_inputs,
    output:
        npz="results/task2vec/{task}.npz",
        meta="results/task2vec/{task}.meta.json",
    log:
        "logs/task2vec/{task}.log",
    benchmark:
        "benchmarks/task2vec/{task}.tsv"
    priority: CRITICAL
    conda:
        "../envs/task2sim.yaml"
    # One thread: two tasks at a time use two cores better than one task on two threads
    # (BENCHMARKS.md, Task2Vec).
    threads: 1
    resources:
        device=config["device"],
        mem_mb=3000,
        runtime=15,
        gpu=0,
    params:
        config=config_json("task2vec"),
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.task2vec embed --task-h5 {input.task:q} --task {wildcards.task:q}"
        " --out {output.npz:q} --config {params.config:q} --seed {params.seed}"
        " --device {resources.device} --threads {threads} > {log:q} 2>&1"


rule task2vec_distances:
    input:
        expand(rules.task2vec_embed.output.npz, task=task_ids()),
    output:
        png=report(
            "results/task2vec/distances.png",
            category="Task2Vec",
            caption="../docs/report/task2vec_distances.rst",
            labels={"figure": "task distances"},
        ),
        tsv=report(
            "results/task2vec/distances.tsv",
            category="Task2Vec",
            caption="../docs/report/task2vec_distances.rst",
            labels={"figure": "task distances (TSV)"},
        ),
        meta="results/task2vec/distances.meta.json",
    log:
        "logs/task2vec/distances.log",
    benchmark:
        "benchmarks/task2vec/distances.tsv"
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        seen=" ".join(seen_tasks()),
        unseen=" ".join(unseen_tasks()),
    shell:
        "python -m task2sim.cli.task2vec distances {input:q} --tsv {output.tsv:q} --png {output.png:q}"
        " --seen {params.seen} --unseen {params.unseen} > {log:q} 2>&1"


# Seconds of work: on a cluster it runs on the submit host.
localrules:
    task2vec_distances,


FINAL_TARGETS.extend(expand("results/task2vec/{task}.npz", task=task_ids()))
FINAL_TARGETS.append("results/task2vec/distances.png")
