# ASG: synthetic-to-real fine-tuning of a real ImageNet model on rendered 3-D digits, evaluated on
# the real digit tasks (results/asg/). Code: task2sim.asg, CLI task2sim.cli.asg; docs/asg.md.
# Default run: asg_render -> asg_policy -> asg_finetune per target -> asg_summary.
# Named targets (not in `rule all`): asg_lambda_sweep, asg_seeds.

if [t for t in ASG["targets"] if t not in task_ids()]:
    raise WorkflowError(
        f"invalid configuration: asg.targets: {[t for t in ASG['targets'] if t not in task_ids()][0]!r}"
        " is not a task id in tasks.items"
    )

ASG_FINETUNE_SHELL = (
    "python -m task2sim.cli.asg finetune --source {input.source} --policy {input.policy}"
    " --target {params.targets} --target-h5 {input.tasks} --out-root {params.out_root}"
    " --config {params.config:q} --runtime {resources.config_runtime:q} --seed {params.seed}"
    " --device {resources.device} --threads {threads} > {log} 2>&1"
)
ASG_POLICY_SHELL = (
    "python -m task2sim.cli.asg policy --source {input.source} --out {output.policy}"
    " --figure {output.figure} --config {params.config:q} --runtime {resources.config_runtime:q}"
    " --seed {params.seed} --device {resources.device} --threads {threads} > {log} 2>&1"
)


rule asg_render:
    output:
        images="results/asg/source/{bits}/images.h5",
        preview=report(
            "results/asg/source/{bits}/preview.png",
            category="ASG",
            caption="../docs/report/asg.rst",
            labels={"figure": "digit source", "config": "{bits}"},
        ),
        meta="results/asg/source/{bits}/images.meta.json",
    log:
        "logs/asg/source/{bits}/images.log",
    benchmark:
        "benchmarks/asg/source/{bits}/images.tsv"
    conda:
        "../envs/task2sim.yaml"
    threads: 1
    resources:
        config_runtime=runtime_json("render"),
        mem_mb=3000,
        runtime=20,
    params:
        config=ASG_SCIENCE,
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
        ASG_POLICY_SHELL


rule asg_finetune:
    input:
        source=asg_source(),
        tasks=asg_target_files,
        policy="results/asg/policy.pt",
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
        targets=" ".join(ASG["targets"]),
        config=ASG_SCIENCE,
        seed=config["seed"],
    shell:
        ASG_FINETUNE_SHELL


rule asg_summary:
    input:
        expand("results/asg/{target}/{method}/metrics.tsv", target=ASG["targets"], method=ASG["methods"]),
    output:
        report("results/asg/summary.md", category="ASG", caption="../docs/report/asg.rst", labels={"figure": "summary"}),
    log:
        "logs/asg/summary.log",
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "python -m task2sim.cli.asg summary --root results/asg --out {output} {input} > {log} 2>&1"


# ---- named targets: three seeds, and the kl_lambda sweep -----------------------------------------


rule asg_seed_policy:
    input:
        source=asg_source(),
    output:
        policy="results/asg/seeds/{seed}/policy.pt",
        meta="results/asg/seeds/{seed}/policy.meta.json",
        figure="results/asg/seeds/{seed}/policy_schedule.png",
    log:
        "logs/asg/seeds/{seed}/policy.log",
    benchmark:
        "benchmarks/asg/seeds/{seed}/policy.tsv"
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
        seed="{seed}",
    shell:
        ASG_POLICY_SHELL


rule asg_seed_finetune:
    input:
        source=asg_source(),
        tasks=asg_target_files,
        policy="results/asg/seeds/{seed}/policy.pt",
    output:
        **asg_outputs("results/asg/seeds/{seed}"),
    log:
        "logs/asg/seeds/{seed}/finetune.log",
    benchmark:
        "benchmarks/asg/seeds/{seed}/finetune.tsv"
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
        targets=" ".join(ASG["targets"]),
        config=ASG_SCIENCE,
        seed="{seed}",
    shell:
        ASG_FINETUNE_SHELL


rule asg_sweep_finetune:
    input:
        source=asg_source(),
        tasks=asg_target_files,
        policy="results/asg/policy.pt",
    output:
        **asg_outputs("results/asg/sweep/lambda_{lam}", ASG_SWEEP_METHODS),
    log:
        "logs/asg/sweep/lambda_{lam}/finetune.log",
    benchmark:
        "benchmarks/asg/sweep/lambda_{lam}/finetune.tsv"
    wildcard_constraints:
        lam=r"[0-9.]+",
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
        targets=" ".join(ASG["targets"]),
        config=asg_sweep_config,
        seed=config["seed"],
    shell:
        ASG_FINETUNE_SHELL


rule asg_seeds:
    input:
        asg_seed_metrics,
    output:
        report(
            "results/asg/seeds/summary.md",
            category="ASG",
            caption="../docs/report/asg.rst",
            labels={"figure": "summary over seeds"},
        ),
    log:
        "logs/asg/seeds/summary.log",
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        seeds=" ".join(str(s) for s in ASG["seeds"]),
    shell:
        "python -m task2sim.cli.asg summary --root results/asg --title 'ASG over seeds {params.seeds}'"
        " --out {output} {input} > {log} 2>&1"


rule asg_lambda_sweep:
    input:
        asg_sweep_metrics,
    output:
        report(
            "results/asg/sweep/summary.md",
            category="ASG",
            caption="../docs/report/asg.rst",
            labels={"figure": "kl_lambda sweep"},
        ),
    log:
        "logs/asg/sweep/summary.log",
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "python -m task2sim.cli.asg summary --root results/asg/sweep --title 'ASG kl_lambda sweep'"
        " --out {output} {input} > {log} 2>&1"


if ASG["targets"]:
    FINAL_TARGETS.extend(expand("results/asg/{task}/curves.png", task=ASG["targets"]))
    FINAL_TARGETS.append("results/asg/policy_schedule.png")
    FINAL_TARGETS.append("results/asg/summary.md")


# Summaries of a few TSV files: on a cluster they run on the submit host.
localrules:
    asg_summary,
    asg_seeds,
    asg_lambda_sweep,
