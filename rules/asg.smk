# ASG: synthetic-to-real fine-tuning of a real ImageNet model on rendered digits, evaluated on the
# real digit tasks (results/asg/). Code: task2sim.asg, CLI task2sim.cli.asg; docs/asg.md.
# Default run (a cheap version): asg_render -> asg_policy -> asg_finetune -> asg_summary.
# Named targets (not in `rule all`), with the study's full-length training (asg.study):
# asg_seeds (every seed of asg.seeds), asg_lambda_sweep (the first seed, each asg.lambda_sweep),
# asg_setting (methods (a) and (e) per source and learning rate: is the paper's precondition met?).


include: "asg_common.smk"


rule asg_render:
    output:
        images="results/asg/source/{style}/{bits}/images.h5",
        preview=report(
            "results/asg/source/{style}/{bits}/preview.png",
            category="ASG",
            caption="../docs/report/asg.rst",
            labels={"figure": "digit source", "config": "{style} {bits}"},
        ),
        meta="results/asg/source/{style}/{bits}/images.meta.json",
    log:
        "logs/asg/source/{style}/{bits}/images.log",
    benchmark:
        "benchmarks/asg/source/{style}/{bits}/images.tsv"
    wildcard_constraints:
        style="silhouette|shaded",
    conda:
        "../envs/task2sim.yaml"
    threads: 1
    resources:
        config_runtime=runtime_json("render"),
        mem_mb=3000,
        runtime=20,
    params:
        config=asg_render_config,
        render=config_json(
            "render", drop=["vary_bits", "classes", "images_per_class", "image_size", "meshes_per_class"]
        ),
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.asg render --bits {wildcards.bits} --out {output.images}"
        " --preview {output.preview} --config {params.config:q} --render-config {params.render:q}"
        " --runtime {resources.config_runtime:q} --seed {params.seed} > {log} 2>&1"


rule asg_policy:
    input:
        source=asg_source(),
    output:
        policy="results/asg/policy.pt",
        meta="results/asg/policy.meta.json",
        figure=report(
            "results/asg/policy_schedule.png",
            category="ASG",
            caption="../docs/report/asg.rst",
            labels={"figure": "policy training schedule"},
        ),
    log:
        "logs/asg/policy.log",
    benchmark:
        "benchmarks/asg/policy.tsv"
    conda:
        "../envs/task2sim.yaml"
    threads: 2
    resources:
        device=config["device"],
        config_runtime=runtime_json("asg"),
        mem_mb=4000,
        runtime=60,
        gpu=0,
    params:
        config=ASG_SCIENCE,
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.asg policy --source {input.source} --out {output.policy}"
        " --figure {output.figure} --config {params.config:q} --runtime {resources.config_runtime:q}"
        " --seed {params.seed} --device {resources.device} --threads {threads} > {log} 2>&1"


rule asg_finetune:
    input:
        source=asg_source(),
        tasks=asg_target_files,
        policy=rules.asg_policy.output.policy,
    output:
        **asg_outputs("results/asg", for_report=True),
    log:
        "logs/asg/finetune.log",
    benchmark:
        "benchmarks/asg/finetune.tsv"
    conda:
        "../envs/task2sim.yaml"
    threads: 2
    resources:
        device=config["device"],
        config_runtime=runtime_json("asg"),
        mem_mb=6000,
        runtime=120,
        gpu=0,
    params:
        out_root=asg_out_root,
        policy=asg_policy_arg,
        targets=" ".join(ASG["targets"]),
        config=ASG_SCIENCE,
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.asg finetune --source {input.source} {params.policy}"
        " --target {params.targets} --target-h5 {input.tasks} --out-root {params.out_root}"
        " --config {params.config:q} --runtime {resources.config_runtime:q} --seed {params.seed}"
        " --device {resources.device} --threads {threads} > {log} 2>&1"


rule asg_summary:
    input:
        asg_metrics(["results/asg"], ASG["methods"]),
    output:
        summary=report(
            "results/asg/summary.md", category="ASG", caption="../docs/report/asg.rst", labels={"figure": "summary"}
        ),
        meta="results/asg/summary.meta.json",
    log:
        "logs/asg/summary.log",
    benchmark:
        "benchmarks/asg/summary.tsv"
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        root=asg_summary_root,
        title=f"ASG summary (default run, seed {config['seed']})",
        extra="",
    shell:
        "python -m task2sim.cli.asg summary --root {params.root} --title {params.title:q}"
        " --out {output.summary} {params.extra} {input} > {log} 2>&1"


# ---- named targets: the study's seeds, and the kl_lambda sweep -----------------------------------


use rule asg_policy as asg_seed_policy with:
    output:
        policy="results/asg/seeds/{seed}/policy.pt",
        meta="results/asg/seeds/{seed}/policy.meta.json",
        figure="results/asg/seeds/{seed}/policy_schedule.png",
    log:
        "logs/asg/seeds/{seed}/policy.log",
    benchmark:
        "benchmarks/asg/seeds/{seed}/policy.tsv"
    params:
        config=ASG_STUDY,
        seed="{seed}",


use rule asg_finetune as asg_seed_finetune with:
    input:
        source=asg_source(),
        tasks=asg_target_files,
        policy=rules.asg_seed_policy.output.policy,
    output:
        **asg_outputs("results/asg/seeds/{seed}"),
    log:
        "logs/asg/seeds/{seed}/finetune.log",
    benchmark:
        "benchmarks/asg/seeds/{seed}/finetune.tsv"
    params:
        out_root=asg_out_root,
        policy=asg_policy_arg,
        targets=" ".join(ASG["targets"]),
        config=ASG_STUDY,
        seed="{seed}",


use rule asg_finetune as asg_sweep_finetune with:
    input:
        source=asg_source(),
        tasks=asg_target_files,
        policy=expand(rules.asg_seed_policy.output.policy, seed=ASG_SWEEP_SEED),
    output:
        **asg_outputs("results/asg/sweep/lambda_{lam}", ASG_SWEEP_METHODS),
    log:
        "logs/asg/sweep/lambda_{lam}/finetune.log",
    benchmark:
        "benchmarks/asg/sweep/lambda_{lam}/finetune.tsv"
    wildcard_constraints:
        lam=r"[0-9.]+",
    params:
        out_root=asg_out_root,
        policy=asg_policy_arg,
        targets=" ".join(ASG["targets"]),
        config=asg_sweep_config,
        seed=ASG_SWEEP_SEED,


use rule asg_summary as asg_seeds with:
    input:
        asg_metrics(expand("results/asg/seeds/{seed}", seed=ASG["seeds"]), ASG["methods"]),
    output:
        summary=report(
            "results/asg/seeds/summary.md",
            category="ASG",
            caption="../docs/report/asg.rst",
            labels={"figure": "summary over seeds"},
        ),
        meta="results/asg/seeds/summary.meta.json",
        figure=report(
            "results/asg/seeds/curves.png",
            category="ASG",
            caption="../docs/report/asg.rst",
            labels={"figure": "target accuracy over seeds"},
        ),
    log:
        "logs/asg/seeds/summary.log",
    benchmark:
        "benchmarks/asg/seeds/summary.tsv"
    params:
        root=asg_summary_root,
        title=f"ASG over seeds {', '.join(str(s) for s in ASG['seeds'])} (study settings)",
        extra=lambda wildcards, output: f"--figure {output.figure}",


use rule asg_finetune as asg_setting_finetune with:
    input:
        source="results/asg/source/{style}/{bits}/images.h5",
        tasks=asg_target_files,
    output:
        **asg_outputs("results/asg/setting/{style}/{bits}/lr_{lr}", ASG_SETTING_METHODS),
    log:
        "logs/asg/setting/{style}/{bits}/lr_{lr}/finetune.log",
    benchmark:
        "benchmarks/asg/setting/{style}/{bits}/lr_{lr}/finetune.tsv"
    wildcard_constraints:
        style="silhouette|shaded",
        lr=r"[0-9.e-]+",
    params:
        out_root=asg_out_root,
        policy=asg_policy_arg,
        targets=" ".join(ASG["targets"]),
        config=asg_setting_config,
        seed=ASG_SWEEP_SEED,


use rule asg_summary as asg_setting with:
    input:
        asg_metrics(asg_setting_prefixes(), ASG_SETTING_METHODS),
    output:
        summary=report(
            "results/asg/setting/summary.md",
            category="ASG",
            caption="../docs/report/asg.rst",
            labels={"figure": "setting: sources and learning rates"},
        ),
        meta="results/asg/setting/summary.meta.json",
    log:
        "logs/asg/setting/summary.log",
    benchmark:
        "benchmarks/asg/setting/summary.tsv"
    params:
        root=asg_summary_root,
        title=f"ASG setting: methods (a) and (e) per source and learning rate (study settings, seed {ASG_SWEEP_SEED})",
        extra="--per-run",


use rule asg_summary as asg_lambda_sweep with:
    input:
        asg_metrics(expand("results/asg/sweep/lambda_{lam}", lam=ASG["lambda_sweep"]), ASG_SWEEP_METHODS),
    output:
        summary=report(
            "results/asg/sweep/summary.md",
            category="ASG",
            caption="../docs/report/asg.rst",
            labels={"figure": "kl_lambda sweep"},
        ),
        meta="results/asg/sweep/summary.meta.json",
    log:
        "logs/asg/sweep/summary.log",
    benchmark:
        "benchmarks/asg/sweep/summary.tsv"
    params:
        root=asg_summary_root,
        title=f"ASG kl_lambda sweep (study settings, seed {ASG_SWEEP_SEED})",
        extra="--per-run",


if ASG["targets"]:
    FINAL_TARGETS.extend(expand("results/asg/{task}/curves.png", task=ASG["targets"]))
    FINAL_TARGETS.append(rules.asg_policy.output.figure)
    FINAL_TARGETS.append(rules.asg_summary.output.summary)


# Summaries of a few TSV files: on a cluster they run on the submit host.
localrules:
    asg_summary,
    asg_seeds,
    asg_lambda_sweep,
    asg_setting,
