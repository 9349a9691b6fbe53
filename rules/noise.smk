# Seed-to-seed noise of the rewards: the configurations in noise.configs are rendered, pre-trained
# and scored again at each seed in noise.seeds, and every configuration at each seed of
# reward.seeds (the same rules, other paths and seeds); results/rewards/noise.tsv sets each task's
# seed sd beside the spread of its table cells. The final comparison's seeds (final.seeds) reuse
# these rules for their reward-budget backbones.
# Code: task2sim.reward.noise, CLI task2sim.cli.reward noise; docs/training.md.


use rule render_dataset as noise_render with:
    output:
        images="results/noise/{seed}/renders/{bits}/images.h5",
        preview="results/noise/{seed}/renders/{bits}/preview.png",
        meta="results/noise/{seed}/renders/{bits}/images.meta.json",
    log:
        "logs/noise/{seed}/renders/{bits}/images.log",
    benchmark:
        "benchmarks/noise/{seed}/renders/{bits}/images.tsv"
    params:
        config=config_json("render", drop=["vary_bits"]),
        seed=lambda wildcards: wildcards.seed,


use rule pretrain_backbone as noise_pretrain with:
    input:
        images="results/noise/{seed}/renders/{bits}/images.h5",
    output:
        model="results/noise/{seed}/pretrain/{bits}/model.pt",
        history="results/noise/{seed}/pretrain/{bits}/history.tsv",
        meta="results/noise/{seed}/pretrain/{bits}/model.meta.json",
    log:
        "logs/noise/{seed}/pretrain/{bits}/model.log",
    benchmark:
        "benchmarks/noise/{seed}/pretrain/{bits}/model.tsv"
    params:
        out_dir="results/noise/{seed}/pretrain/{bits}",
        config=config_json("pretrain"),
        seed=lambda wildcards: wildcards.seed,


use rule reward_knn5 as noise_knn5 with:
    input:
        model="results/noise/{seed}/pretrain/{bits}/model.pt",
        tasks=reward_task_files,
    output:
        json=expand("results/noise/{{seed}}/rewards/{{bits}}/{task}.json", task=reward_tasks()),
        meta=expand("results/noise/{{seed}}/rewards/{{bits}}/{task}.meta.json", task=reward_tasks()),
    log:
        "logs/noise/{seed}/rewards/{bits}/knn5.log",
    benchmark:
        "benchmarks/noise/{seed}/rewards/{bits}/knn5.tsv"
    params:
        task_ids=" ".join(reward_tasks()),
        features=noise_feature_caches,
        config=REWARD_JOB,


rule reward_noise:
    input:
        run=reward_jsons,
        repeats=noise_repeat_jsons,
    output:
        tsv=report(
            "results/rewards/noise.tsv",
            category="Rewards",
            caption="../docs/report/reward_noise.rst",
            labels={"figure": "reward noise (TSV)"},
        ),
        meta="results/rewards/noise.meta.json",
    log:
        "logs/rewards/noise.log",
    benchmark:
        "benchmarks/rewards/noise.tsv"
    priority: CRITICAL
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        table_repeats=expand("results/noise/{seed}/rewards", seed=REWARD_SEEDS),
        repeats=expand("results/noise/{seed}/rewards", seed=NOISE_ONLY_SEEDS if noise_configs() else []),
    shell:
        "python -m task2sim.cli.reward noise --tsv {output.tsv} --table-repeats {params.table_repeats}"
        " --repeats {params.repeats} -- {input.run} > {log} 2>&1"


if noise_on():
    FINAL_TARGETS.append("results/rewards/noise.tsv")


# Seconds of work: on a cluster it runs on the submit host.
localrules:
    reward_noise,
