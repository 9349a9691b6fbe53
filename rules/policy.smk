# The Task2Sim controller and its competitors: a configuration per task from its Task2Vec, reading
# rewards from the table. Code: task2sim.policy, CLI task2sim.cli.policy, docs/policy.md.


include: "policy_common.smk"


rule policy_train:
    input:
        table=rules.reward_table.output.tsv,
        task2vec=policy_task2vec_files,
        # the measured seed sd of each task's reward, shown beside the predictions
        noise=noise_tsv,
    output:
        policy="results/policy/policy.pt",
        predictions=report(
            "results/policy/predictions.tsv",
            category="Policy",
            caption="../docs/report/policy_predictions.rst",
            labels={"figure": "predictions (TSV)"},
        ),
        summary_md=report(
            "results/policy/summary.md",
            category="Policy",
            caption="../docs/report/policy_summary.rst",
            labels={"figure": "summary"},
        ),
        summary_tsv=report(
            "results/policy/summary.tsv",
            category="Policy",
            caption="../docs/report/policy_summary.rst",
            labels={"figure": "summary (TSV)"},
        ),
        heatmap=report(
            "results/policy/heatmap.png",
            category="Policy",
            caption="../docs/report/policy_heatmap.rst",
            labels={"figure": "P(bit=1) heatmap"},
        ),
        meta="results/policy/policy.meta.json",
    log:
        "logs/policy/train.log",
    benchmark:
        "benchmarks/policy/train.tsv"
    priority: CRITICAL
    conda:
        "../envs/task2sim.yaml"
    # batch-4 controller updates are latency-bound: a second torch thread only slows them (docs/policy.md)
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=0,
    params:
        seen=" ".join(seen_tasks()),
        unseen=" ".join(policy_unseen_tasks()),
        config=config_json("policy"),
        seed=config["seed"],
        noise=lambda wildcards, input: f"--noise {input.noise}" if input.noise else "",
    shell:
        "python -m task2sim.cli.policy --table {input.table} --task2vec {input.task2vec}"
        " --seen {params.seen} --unseen {params.unseen} {params.noise} --out-dir results/policy"
        " --config {params.config:q} --seed {params.seed} --threads {threads} --no-progress > {log} 2>&1"


FINAL_TARGETS.extend(["results/policy/summary.md", "results/policy/heatmap.png"])
