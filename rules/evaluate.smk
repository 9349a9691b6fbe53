# Downstream evaluation (linear probe, fine-tune, scratch) of chosen backbones on every task.
# Code: task2sim.train.evaluate, CLI task2sim.cli.evaluate; docs/training.md.


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
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.evaluate --method {wildcards.method} --source {wildcards.source}"
        " --task {wildcards.task} {params.model_args} --task-h5 {input.task}"
        " --config {params.config:q} --seed {params.seed} --device {resources.device}"
        " --threads {threads} --out {output.json} > {log} 2>&1"


FINAL_TARGETS.extend(evaluate_targets())


# --- The payoff (docs/final.md): one-shot backbones and the final comparison ----------------------
# final_choose (a checkpoint) reads the policy's predictions and the reward table and fixes the
# configuration of every (task, method); the backbones those configurations need are rendered and
# pre-trained once per (budget, configuration) through the {budget}/{bits} wildcards, whichever
# tasks and methods share them. Code: task2sim.compare, CLI task2sim.cli.final.

FINAL = config["final"]
# Keys that pick jobs, not what a job computes: out of the rerun-triggering params.
FINAL_JOB_KEYS = ["classes", "images_per_class", "scaling_images_per_class", "epochs", "final_budget_methods"]
_reward_images = config["render"]["classes"] * config["render"]["images_per_class"]
if FINAL["classes"] * FINAL["images_per_class"] < 2 * _reward_images:
    raise WorkflowError(
        f"invalid configuration: final: {FINAL['classes']} x {FINAL['images_per_class']} images is less than twice"
        f" the reward budget's {_reward_images}"
    )


def final_budget():
    """The final budget's {budget} wildcard: c<classes>_i<images per class>."""
    return f"c{FINAL['classes']}_i{FINAL['images_per_class']}"


def scaling_budgets():
    return [f"c{FINAL['classes']}_i{n}" for n in FINAL["scaling_images_per_class"]]


def comparison_budgets():
    """label -> {budget} of the comparison's two columns."""
    return {"reward": "reward", "final": final_budget()}


def final_choices():
    """Rows (task, split, method, bits) of results/final/choices.tsv, once final_choose has run."""
    with open(checkpoints.final_choose.get().output.tsv) as f:
        rows = [dict(zip(["task", "split", "method", "bits"], ln.rstrip("\n").split("\t"))) for ln in f][1:]
    return rows


def final_model(budget, bits):
    if budget == "reward":
        return f"results/pretrain/{bits}/model.pt"
    return f"results/final/budgets/{budget}/pretrain/{bits}/model.pt"


def final_score_tasks(wildcards):
    """The tasks one backbone is scored on: every reward-table task whose method picked it at a
    comparison budget; seen tasks of Task2Sim / Domain Randomisation at a scaling budget; every
    reward-table task for scratch and the ImageNet reference."""
    if wildcards.source in ("scratch", "imagenet"):
        return reward_tasks()
    rows = [r for r in final_choices() if r["split"] != "new" and r["bits"] == wildcards.source]
    tasks = set()
    if wildcards.budget == "reward":
        tasks |= {r["task"] for r in rows}
    if wildcards.budget == final_budget():
        tasks |= {r["task"] for r in rows if r["method"] in FINAL["final_budget_methods"]}
    if wildcards.budget in scaling_budgets():
        tasks |= {
            r["task"] for r in rows if r["split"] == "seen" and r["method"] in ("task2sim", "domain_randomisation")
        }
    return [t for t in reward_tasks() if t in tasks]


def final_score_inputs(wildcards):
    inputs = {"tasks": expand("results/tasks/{task}/data.h5", task=final_score_tasks(wildcards))}
    if wildcards.source not in ("scratch", "imagenet"):
        inputs["model"] = final_model(wildcards.budget, wildcards.source)
    return inputs


def final_score_model_args(wildcards):
    if wildcards.source == "scratch":
        return f"--model-name {config['pretrain']['model']} --image-size {config['render']['image_size']}"
    if wildcards.source == "imagenet":
        return ""
    return f"--model {final_model(wildcards.budget, wildcards.source)}"


def final_score_files(budgets, methods=None, seen_only=False):
    """The score TSVs behind the given budgets (plus scratch and imagenet when comparing)."""
    rows = [r for r in final_choices() if r["split"] != "new"]
    if seen_only:
        rows = [r for r in rows if r["split"] == "seen"]
    if methods:
        rows = [r for r in rows if r["method"] in methods]
    bits = sorted({r["bits"] for r in rows})
    return expand("results/final/scores/{budget}/{bits}.tsv", budget=budgets, bits=bits)


def final_summary_scores(wildcards):
    refs = ["results/final/scores/ref/scratch.tsv", "results/final/scores/ref/imagenet.tsv"]
    at_final = final_score_files([final_budget()], FINAL["final_budget_methods"])
    return sorted(set(final_score_files(["reward"]) + at_final)) + refs


def final_scaling_scores(wildcards):
    return final_score_files(scaling_budgets(), ["task2sim", "domain_randomisation"], seen_only=True)


def final_oneshot_model(wildcards):
    bits = next(r["bits"] for r in final_choices() if r["task"] == wildcards.task and r["method"] == "task2sim")
    return final_model(final_budget(), bits)


def final_render_config(wildcards):
    """The render section at the budget's size (classes, images per class)."""
    classes, ipc = (int(x[1:]) for x in wildcards.budget.split("_"))
    render = json.loads(config_json("render", drop=["vary_bits"]))
    return json.dumps({**render, "classes": classes, "images_per_class": ipc}, sort_keys=True)


FINAL_SECTIONS = {
    "evaluate": json.dumps(
        {k: v for k, v in config["evaluate"].items() if k in ("val_fraction", "linear", "finetune", "scratch")},
        sort_keys=True,
    ),
    "reward": config_json("reward"),
}


checkpoint final_choose:
    input:
        table="results/rewards/table.tsv",
        predictions="results/policy/predictions.tsv",
        policy="results/policy/policy.pt",
    output:
        tsv="results/final/choices.tsv",
        meta="results/final/choices.meta.json",
    log:
        "logs/final/choose.log",
    benchmark:
        "benchmarks/final/choose.tsv"
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        config=json.dumps({"random_seed": FINAL["random_seed"]}),
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final choose --table {input.table} --predictions {input.predictions}"
        " --policy {input.policy} --config {params.config:q} --seed {params.seed} --out {output.tsv} > {log} 2>&1"


use rule render_dataset as final_render with:
    output:
        images="results/final/budgets/{budget}/renders/{bits}/images.h5",
        preview="results/final/budgets/{budget}/renders/{bits}/preview.png",
        meta="results/final/budgets/{budget}/renders/{bits}/images.meta.json",
    log:
        "logs/final/budgets/{budget}/renders/{bits}/images.log",
    benchmark:
        "benchmarks/final/budgets/{budget}/renders/{bits}/images.tsv"
    wildcard_constraints:
        budget=r"c\d+_i\d+",
    params:
        config=final_render_config,
        seed=config["seed"],


def final_pretrain_config(wildcards):
    """The pretrain section with the final budget's epochs (final.epochs, null: the same)."""
    return json.dumps(
        {**json.loads(config_json("pretrain")), "epochs": FINAL["epochs"] or config["pretrain"]["epochs"]},
        sort_keys=True,
    )


use rule pretrain_backbone as final_pretrain with:
    input:
        images="results/final/budgets/{budget}/renders/{bits}/images.h5",
    output:
        model="results/final/budgets/{budget}/pretrain/{bits}/model.pt",
        history="results/final/budgets/{budget}/pretrain/{bits}/history.tsv",
        meta="results/final/budgets/{budget}/pretrain/{bits}/model.meta.json",
    log:
        "logs/final/budgets/{budget}/pretrain/{bits}/model.log",
    benchmark:
        "benchmarks/final/budgets/{budget}/pretrain/{bits}/model.tsv"
    wildcard_constraints:
        budget=r"c\d+_i\d+",
    params:
        out_dir="results/final/budgets/{budget}/pretrain/{bits}",
        config=final_pretrain_config,
        seed=config["seed"],


# One job per backbone: its features are computed once per task and shared by the 5-NN and the
# linear probe (the probe trains on cached features, a few seconds per task on a CPU).
rule final_score:
    input:
        unpack(final_score_inputs),
    output:
        tsv="results/final/scores/{budget}/{source}.tsv",
        meta="results/final/scores/{budget}/{source}.meta.json",
    log:
        "logs/final/scores/{budget}/{source}.log",
    benchmark:
        "benchmarks/final/scores/{budget}/{source}.tsv"
    wildcard_constraints:
        budget=r"reward|ref|c\d+_i\d+",
        source=r"[01]{8}|scratch|imagenet",
    conda:
        "../envs/task2sim.yaml"
    threads: 1
    resources:
        device=config["device"],
        mem_mb=3000,
        runtime=30,
        gpu=0,
    params:
        tasks=lambda wildcards: " ".join(final_score_tasks(wildcards)),
        model_args=final_score_model_args,
        config=config_json("final", drop=FINAL_JOB_KEYS + ["random_seed"]),
        evaluate=FINAL_SECTIONS["evaluate"],
        reward=FINAL_SECTIONS["reward"],
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final score --source {wildcards.source} {params.model_args}"
        " --task {params.tasks} --task-h5 {input.tasks} --config {params.config:q}"
        " --evaluate {params.evaluate:q} --reward {params.reward:q} --seed {params.seed}"
        " --device {resources.device} --threads {threads} --no-progress --out {output.tsv} > {log} 2>&1"


rule final_oneshot:
    input:
        predictions="results/policy/predictions.tsv",
        model=final_oneshot_model,
        task="results/tasks/{task}/data.h5",
    output:
        model="results/final/{task}/model.pt",
        prediction="results/final/{task}/prediction.json",
        evaluation="results/final/{task}/evaluation.json",
        meta="results/final/{task}/model.meta.json",
    log:
        "logs/final/{task}/oneshot.log",
    benchmark:
        "benchmarks/final/{task}/oneshot.tsv"
    conda:
        "../envs/task2sim.yaml"
    threads: 1
    resources:
        device=config["device"],
        mem_mb=3000,
        runtime=30,
        gpu=0,
    params:
        out_dir=subpath(output.model, parent=True),
        config=config_json("final", drop=FINAL_JOB_KEYS + ["random_seed"]),
        evaluate=FINAL_SECTIONS["evaluate"],
        reward=FINAL_SECTIONS["reward"],
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final oneshot --task {wildcards.task} --predictions {input.predictions}"
        " --model {input.model} --task-h5 {input.task} --config {params.config:q}"
        " --evaluate {params.evaluate:q} --reward {params.reward:q} --seed {params.seed}"
        " --device {resources.device} --threads {threads} --no-progress --out-dir {params.out_dir} > {log} 2>&1"


rule final_summary:
    input:
        choices="results/final/choices.tsv",
        policy="results/policy/policy.pt",
        scores=final_summary_scores,
    output:
        md=report(
            "results/evaluate/summary.md",
            category="Final comparison",
            caption="../docs/report/final_summary.rst",
            labels={"figure": "Tables 2/3 (summary)"},
        ),
        tsv=report(
            "results/evaluate/summary.tsv",
            category="Final comparison",
            caption="../docs/report/final_summary.rst",
            labels={"figure": "Tables 2/3 (TSV)"},
        ),
        seen=report(
            "results/evaluate/per_task_seen.png",
            category="Final comparison",
            caption="../docs/report/final_per_task.rst",
            labels={"figure": "per-task bars (Fig. 3)", "split": "seen"},
        ),
        unseen=report(
            "results/evaluate/per_task_unseen.png",
            category="Final comparison",
            caption="../docs/report/final_per_task.rst",
            labels={"figure": "per-task bars (Fig. 4)", "split": "unseen"},
        ),
        meta="results/evaluate/summary.meta.json",
    log:
        "logs/final/summary.log",
    benchmark:
        "benchmarks/final/summary.tsv"
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        budgets=" ".join(f"--budget {k}={v}" for k, v in comparison_budgets().items()),
        config=config_json("final", drop=["scaling_images_per_class"]),
        model=config["pretrain"]["model"],
        epochs=config["pretrain"]["epochs"],
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final summary --choices {input.choices} --policy {input.policy}"
        " --scores {input.scores} {params.budgets} --model-name {params.model} --pretrain-epochs {params.epochs}"
        " --config {params.config:q}"
        " --seed {params.seed} --md {output.md} --tsv {output.tsv} --png-seen {output.seen}"
        " --png-unseen {output.unseen} > {log} 2>&1"


# The scaling study (Fig. 8): a named target, outside `rule all` (snakemake final_scaling).
rule final_scaling:
    input:
        choices="results/final/choices.tsv",
        scores=final_scaling_scores,
    output:
        tsv="results/evaluate/scaling.tsv",
        png=report(
            "results/evaluate/scaling.png",
            category="Final comparison",
            caption="../docs/report/final_scaling.rst",
            labels={"figure": "scaling (Fig. 8)"},
        ),
        meta="results/evaluate/scaling.meta.json",
    log:
        "logs/final/scaling.log",
    benchmark:
        "benchmarks/final/scaling.tsv"
    conda:
        "../envs/task2sim.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        budgets=" ".join(scaling_budgets()),
        seed=config["seed"],
    shell:
        "python -m task2sim.cli.final scaling --choices {input.choices} --scores {input.scores}"
        " --budgets {params.budgets} --seed {params.seed} --tsv {output.tsv} --png {output.png} > {log} 2>&1"


localrules:
    final_choose,
    final_summary,
    final_scaling,


# Only in a workflow that has the policy stage (a Snakefile of a few stages has nothing to compare).
if hasattr(rules, "policy_train"):
    FINAL_TARGETS.extend(["results/evaluate/summary.md", "results/evaluate/per_task_seen.png"])
    FINAL_TARGETS.extend(
        expand("results/final/{task}/{name}", task=oneshot_tasks(), name=["model.pt", "evaluation.json"])
    )
