# The final stage's configuration, checks and input functions (rules/final.smk includes this file;
# Snakemake's linter keeps functions out of files with rules).
from task2sim.final import budget_evaluations, read_tsv
from task2sim.final.recipe import section_of

FINAL = config["final"]
# Keys that pick jobs, not what a job computes: out of the rerun-triggering params.
FINAL_JOB_KEYS = [
    "classes",
    "images_per_class",
    "scaling_images_per_class",
    "epochs",
    "final_budget_methods",
    "compare_at",
]
_reward_images = config["render"]["classes"] * config["render"]["images_per_class"]
if FINAL["classes"] * FINAL["images_per_class"] < 2 * _reward_images:
    raise WorkflowError(
        f"invalid configuration: final: {FINAL['classes']} x {FINAL['images_per_class']} images is less than twice"
        f" the reward budget's {_reward_images}"
    )
_used = {config["seed"], *REWARD_SEEDS, *config["noise"]["seeds"]}
_reused = [s for s in config["final"]["seeds"] if s in _used]
if _reused:
    raise WorkflowError(
        f"invalid configuration: final.seeds: {_reused[0]} is a seed of the run, reward.seeds or noise.seeds"
        " (the comparison is scored on backbones that fitted and chose nothing)"
    )


def final_budget():
    """The final budget's {budget} wildcard: c<classes>_i<images per class>."""
    return f"c{FINAL['classes']}_i{FINAL['images_per_class']}"


def scaling_budgets():
    return [f"c{FINAL['classes']}_i{n}" for n in FINAL["scaling_images_per_class"]]


def comparison_budgets():
    """label -> {budget} of the comparison's columns (final.compare_at: both by default)."""
    return {k: v for k, v in {"reward": "reward", "final": final_budget()}.items() if k in FINAL["compare_at"]}


def final_choices():
    """Rows (task, split, method, bits) of results/final/choices.tsv, once final_choose has run."""
    return read_tsv(checkpoints.final_choose.get().output.tsv)


# The comparison's backbones: the run's own (seed None) or, with final.seeds, those seeds' only.
FINAL_SEEDS = [str(s) for s in FINAL["seeds"]]
EVAL_SEEDS = FINAL_SEEDS or [None]


def final_model(budget, bits, seed=None):
    """A backbone of the comparison at ``budget``: the run's own, or (``seed``, one of final.seeds)
    one rendered and pre-trained again at that seed; a reward-budget one through the noise stage's
    rules, which build any configuration at any seed."""
    if seed is not None:
        if budget == "reward":
            return f"results/noise/{seed}/pretrain/{bits}/model.pt"
        return f"results/final/seeds/{seed}/budgets/{budget}/pretrain/{bits}/model.pt"
    if budget == "reward":
        return f"results/pretrain/{bits}/model.pt"
    return f"results/final/budgets/{budget}/pretrain/{bits}/model.pt"


def final_score_path(budget, source, seed=None):
    """One backbone's score TSV (final_score, or final_seed_score at one of final.seeds)."""
    if seed is None:
        return f"results/final/scores/{budget}/{source}.tsv"
    return f"results/final/seeds/{seed}/scores/{budget}/{source}.tsv"


def final_score_priority(wildcards):
    """A final-budget backbone's scores are on the critical path; the reward-budget and reference
    ones are not (their inputs exist long before the policy is trained)."""
    return 0 if wildcards.budget in ("reward", "ref") else CRITICAL


def final_score_tasks(wildcards):
    """The tasks one backbone is scored on: every reward-table task at the reward budget (so Random
    there is the exact mean over all configurations, and the jobs need no choice: they run while
    the policy trains) and for scratch and the ImageNet reference; at the final budget the tasks
    whose method picked it; seen tasks of Task2Sim / Domain Randomisation at a scaling budget."""
    if wildcards.source in ("scratch", "imagenet") or wildcards.budget == "reward":
        return reward_tasks()
    rows = [r for r in final_choices() if r["split"] != "new" and r["bits"] == wildcards.source]
    tasks = set()
    if wildcards.budget == final_budget():
        tasks |= {r["task"] for r in rows if r["method"] in FINAL["final_budget_methods"]}
    if wildcards.budget in scaling_budgets():
        tasks |= {
            r["task"] for r in rows if r["split"] == "seen" and r["method"] in ("task2sim", "domain_randomisation")
        }
    return [t for t in reward_tasks() if t in tasks]


def final_score_inputs(wildcards):
    """The tasks and the backbone; at the reward budget also the backbone's reward JSONs, whose job
    leaves the feature caches that final_score reads instead of running the network again."""
    seed = wildcards.get("seed")
    inputs = {"tasks": expand("results/tasks/{task}/data.h5", task=final_score_tasks(wildcards))}
    if wildcards.source not in ("scratch", "imagenet"):
        inputs["model"] = final_model(wildcards.budget, wildcards.source, seed)
    if wildcards.budget == "reward":
        root = "results" if seed is None else f"results/noise/{seed}"
        inputs["rewards"] = expand(f"{root}/rewards/{{bits}}/{{task}}.json", bits=wildcards.source, task=reward_tasks())
    return inputs


def final_score_features(wildcards):
    """--features: the reward stage's feature caches of a reward-budget backbone (none elsewhere)."""
    if wildcards.budget != "reward":
        return ""
    seed = wildcards.get("seed")
    root = "results" if seed is None else f"results/noise/{seed}"
    return "--features " + " ".join(
        expand(f"{root}/features/{{bits}}/{{task}}.npz", bits=wildcards.source, task=reward_tasks())
    )


def _score_config(evaluations):
    """A scoring job's --config: the final section's science keys, with the evaluations it runs."""
    drop = FINAL_JOB_KEYS + ["random_seed", "random_draws", "selection", "seeds", "finetune_at"]
    return json.dumps({**json.loads(config_json("final", drop=drop)), "evaluations": evaluations}, sort_keys=True)


def final_score_config(wildcards):
    """final_score's --config, with the evaluations scored at this budget (``finetune`` only where
    final.finetune_at names it, task2sim.final.budget_evaluations)."""
    return _score_config(budget_evaluations(FINAL["evaluations"], FINAL["finetune_at"], wildcards.budget))


def final_score_evaluate(wildcards):
    """final_score's --evaluate: the sections of the evaluations this job runs (evaluate.linear where
    it probes; evaluate.finetune for a pre-trained backbone's fine-tune, evaluate.scratch for
    Scratch's; the ImageNet reference is never fine-tuned), so a change to one method's grid reruns
    only the jobs that run that method."""
    evaluations = budget_evaluations(FINAL["evaluations"], FINAL["finetune_at"], wildcards.budget)
    keys = ["val_fraction"] + (["linear"] if "linear" in evaluations else [])
    if "finetune" in evaluations and wildcards.source != "imagenet":
        keys.append(section_of(wildcards.source))
    return json.dumps({k: config["evaluate"][k] for k in keys}, sort_keys=True)


def final_score_model_args(wildcards):
    if wildcards.source == "scratch":
        return f"--model-name {config['pretrain']['model']} --image-size {config['render']['image_size']}"
    if wildcards.source == "imagenet":
        return ""
    return f"--model {final_model(wildcards.budget, wildcards.source, wildcards.get('seed'))}"


def final_score_files(budgets, methods=None, seen_only=False, seeds=(None,)):
    """The score TSVs of the backbones the methods picked at the given (final or scaling) budgets."""
    rows = [r for r in final_choices() if r["split"] != "new"]
    if seen_only:
        rows = [r for r in rows if r["split"] == "seen"]
    if methods:
        rows = [r for r in rows if r["method"] in methods]
    bits = sorted({r["bits"] for r in rows})
    return [final_score_path(budget, b, seed) for seed in seeds for budget in budgets for b in bits]


def final_fixed_scores():
    """The scores final_summary needs from the start: every reward-budget backbone (when the reward
    budget is compared) and the two references, at each evaluation seed."""
    reward = [("reward", b) for b in all_bits()] if "reward" in FINAL["compare_at"] else []
    return [
        final_score_path(budget, source, seed)
        for seed in EVAL_SEEDS
        for budget, source in reward + [("ref", "scratch"), ("ref", "imagenet")]
    ]


# The fine-tune recipe (named target finetune_recipe): chosen on seen tasks only, at the run's seed.
RECIPE = config["evaluate"]["recipe"]
RECIPE_TASKS = RECIPE["tasks"] or seen_tasks()
RECIPE_SCORES = {("reward", RECIPE["source"]), ("ref", "scratch")}


def recipe_score_inputs(wildcards):
    """The recipe's tasks and, but for Scratch, the reward-budget backbone of the run's seed. The
    settings are checked here, when the target is asked for (a config that never asks for it,
    e.g. a small one merged with study_finetune.yaml, need not list its tasks)."""
    where = "invalid configuration: evaluate.recipe"
    not_seen = [t for t in RECIPE_TASKS if t not in seen_tasks()]
    if not_seen:
        raise WorkflowError(
            f"{where}.tasks: {not_seen[0]!r} is not a seen task of this run (a recipe is chosen on seen tasks only)"
        )
    if RECIPE["source"] not in all_bits():
        raise WorkflowError(f"{where}.source: {RECIPE['source']} is not one of this run's configurations")
    grid = RECIPE["grid"]
    if all(len(v) == 1 for v in (grid["lrs"], grid["weight_decays"], grid["batch_sizes"])) and (
        not isinstance(grid["epochs"], list) or len(grid["epochs"]) == 1
    ):
        raise WorkflowError(f"{where}.grid: one point, nothing to choose on validation")
    if (wildcards.budget, wildcards.source) not in RECIPE_SCORES:
        raise WorkflowError(
            f"results/final/recipe/{wildcards.budget}/{wildcards.source}.tsv: the recipe scores"
            f" reward/{RECIPE['source']} and ref/scratch only"
        )
    inputs = {"tasks": expand("results/tasks/{task}/data.h5", task=RECIPE_TASKS)}
    if wildcards.source != "scratch":
        inputs["model"] = final_model("reward", wildcards.source)
    return inputs


def recipe_score_evaluate(wildcards):
    """--evaluate of a recipe job: the grid, under the section its backbone fine-tunes with."""
    return json.dumps(
        {"val_fraction": config["evaluate"]["val_fraction"], section_of(wildcards.source): RECIPE["grid"]},
        sort_keys=True,
    )


STUDY_MIN_SEEDS = 3


def study_inputs(wildcards):
    """The study's outputs; it needs at least 3 seeds of the reward table and 3 final.seeds."""
    table_seeds = 1 + len(REWARD_SEEDS)
    if min(table_seeds, len(FINAL_SEEDS)) < STUDY_MIN_SEEDS:
        raise WorkflowError(
            f"study: needs at least {STUDY_MIN_SEEDS} seeds of the reward table (this config has {table_seeds})"
            f" and {STUDY_MIN_SEEDS} final.seeds (has {len(FINAL_SEEDS)}):"
            " run snakemake --configfile study.yaml study (docs/study.md)"
        )
    return [
        "results/rewards/table.png",
        "results/rewards/noise.tsv",
        "results/policy/summary.md",
        "results/final/summary.md",
        "results/final/per_task_seen.png",
        "results/final/per_task_unseen.png",
    ]


def final_summary_scores(wildcards):
    """The final-budget scores, known once final_choose has run (the reward-budget and reference
    scores are final_summary's fixed inputs: they are scheduled from the start)."""
    return final_score_files([final_budget()], FINAL["final_budget_methods"], seeds=EVAL_SEEDS)


def final_scaling_scores(wildcards):
    return final_score_files(scaling_budgets(), ["task2sim", "domain_randomisation"], seen_only=True)


def final_select_inputs(wildcards):
    """final_select's inputs by final.selection: the policy and the task's Task2Vec (predict), or
    the task and every reward-budget backbone (measure)."""
    if FINAL["selection"] == "measure":
        models = [final_model("reward", b) for b in all_bits()]
        return {"task": f"results/tasks/{wildcards.task}/data.h5", "models": models}
    return {"policy": "results/policy/policy.pt", "task2vec": f"results/task2vec/{wildcards.task}.npz"}


def final_select_args(wildcards, input, threads, resources):
    """final_select's subcommand with its inputs (task2sim.cli.final predict / measure)."""
    if FINAL["selection"] == "measure":
        return (
            f"measure --task-h5 {input.task} --models {' '.join(input.models)}"
            f" --reward {shlex.quote(FINAL_SECTIONS['reward'])} --device {resources.device} --threads {threads}"
            " --no-progress"
        )
    return f"predict --policy {input.policy} --task2vec {input.task2vec}"


def final_oneshot_model(wildcards):
    """The final-budget backbone of the task's chosen configuration (once final_select has run)."""
    with open(checkpoints.final_select.get(task=wildcards.task).output.prediction) as f:
        return final_model(final_budget(), json.load(f)["bits"])


def final_oneshot_best_fixed(wildcards):
    """The final-budget backbone of the best single configuration on the seen tasks (final_choose's
    best_fixed fitted on all of them), scored beside the task's own on the same split."""
    (bits,) = [r["bits"] for r in read_tsv(checkpoints.final_choose.get().output.fixed) if r["rule"] == "best_fixed"]
    return final_model(final_budget(), bits)


def final_render_config(wildcards):
    """The render section at the budget's size (classes, images per class)."""
    classes, ipc = (int(x[1:]) for x in wildcards.budget.split("_"))
    render = json.loads(config_json("render", drop=["vary_bits"]))
    return json.dumps({**render, "classes": classes, "images_per_class": ipc}, sort_keys=True)


FINAL_SECTIONS = {
    # the one-shot job's (a user's task: its backbone is probed and fine-tuned, never Scratch);
    # final_score's is final_score_evaluate
    "evaluate": json.dumps(
        {k: v for k, v in config["evaluate"].items() if k in ("val_fraction", "linear", "finetune")},
        sort_keys=True,
    ),
    "reward": REWARD_JOB,
}


def final_pretrain_config(wildcards):
    """The pretrain section with the final budget's epochs (final.epochs, null: the same)."""
    return json.dumps(
        {**json.loads(config_json("pretrain")), "epochs": FINAL["epochs"] or config["pretrain"]["epochs"]},
        sort_keys=True,
    )
