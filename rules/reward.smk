# 5-NN reward of every backbone on every task, and the task x config reward table.
# Code: task2sim.reward (knn, table, plot), CLI task2sim.cli.reward.


include: "reward_common.smk"


# One job per backbone scores every task: loading torch + timm costs ~5 s per process, more than
# the 5-NN of a CPU-sized task (~1-4 s), so per-(config, task) jobs would mostly start up.
# The outputs are still one file per (config, task).
rule reward_knn5:
    input:
        model=rules.pretrain_backbone.output.model,
        tasks=reward_task_files,
    output:
        json=expand("results/rewards/{{bits}}/{task}.json", task=reward_tasks()),
        meta=expand("results/rewards/{{bits}}/{task}.meta.json", task=reward_tasks()),
    log:
        "logs/rewards/{bits}/knn5.log",
    benchmark:
        "benchmarks/rewards/{bits}/knn5.tsv"
    priority: CRITICAL
    conda:
        "../envs/task2sim.yaml"
    threads: 1
    resources:
        # where to run, not what to compute: a resource, so changing it reruns nothing
        device=config["device"],
        config_runtime=runtime_json("reward"),
        mem_mb=3000,
        runtime=30,
        gpu=0,
    params:
        task_ids=" ".join(reward_tasks()),
        # Feature cache, deliberately not an output (snakemake deletes outputs before a rerun):
        # after a change of k or temperature, or a new task, the network does not run again.
        # Each file carries a key (model, checkpoint, task file, image size); stale ones are redone.
        features=reward_feature_caches,
        config=REWARD_JOB,
    shell:
        "python -m task2sim.cli.reward knn --model {input.model} --bits {wildcards.bits}"
        " --task {params.task_ids} --task-h5 {input.tasks} --out {output.json}"
        " --features {params.features} --config {params.config:q} --runtime {resources.config_runtime:q}"
        " --device {resources.device} --threads {threads} > {log} 2>&1"


rule reward_table:
    input:
        run=reward_jsons,
        # the table's other seeds (reward.seeds): a cell is the mean over them and the run's
        repeats=reward_seed_jsons,
        # noise.tsv when the noise stage is on: the heatmap shows each task's seed sd and ties
        noise=noise_tsv,
    output:
        tsv=report(
            "results/rewards/table.tsv",
            category="Rewards",
            caption="../docs/report/reward_table.rst",
            labels={"figure": "reward table (TSV)"},
        ),
        png=report(
            "results/rewards/table.png",
            category="Rewards",
            caption="../docs/report/reward_table.rst",
            labels={"figure": "reward table"},
        ),
        # The same table in the published Task2Sim reward_db.json layout (task2sim.reward.table).
        db="results/rewards/reward_db.json",
        # The 5-NN left-one-out within each task's training split: what measured selection reads.
        measured="results/rewards/train_loo.tsv",
        meta="results/rewards/table.meta.json",
    log:
        "logs/rewards/table.log",
    benchmark:
        "benchmarks/rewards/table.tsv"
    priority: CRITICAL
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        noise=lambda wildcards, input: f"--noise {input.noise}" if input.noise else "",
        repeats=expand("results/noise/{seed}/rewards", seed=REWARD_SEEDS),
    shell:
        "python -m task2sim.cli.reward aggregate --tsv {output.tsv} --png {output.png}"
        " --reward-db {output.db} --measured-tsv {output.measured} {params.noise} --repeats {params.repeats}"
        " -- {input.run} > {log} 2>&1"


FINAL_TARGETS.extend(["results/rewards/table.tsv", "results/rewards/table.png"])
