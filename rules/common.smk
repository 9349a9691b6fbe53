# Validation, wildcard constraints and input functions shared by every stage.
import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

# The workflow's own library, importable here and in every job without installing it (also in
# --sdm conda environments, which hold only the third-party stack).
_SRC = os.path.join(workflow.basedir, "src")
# Jobs run with the interpreter that runs Snakemake (`.venv/bin/snakemake` works without
# activating the venv), or with the conda env's python under --sdm conda.
_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
_BIN = "" if _CONDA else os.path.dirname(sys.executable)
if os.path.isdir(_SRC):
    sys.path.insert(0, _SRC)
# (quadrupled braces: the f-string halves them, snakemake's shell formatting halves them again)
shell.prefix(
    f'export PYTHONPATH="{_SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; ' + (f'export PATH="{_BIN}:$PATH"; ' if _BIN else "")
)

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from task2sim.bits import BITS_PATTERN, configs_for
from task2sim.config import ConfigError, check_config, load_schema, section_defaults, split_runtime

# One readable line naming the bad key first; then snakemake fills in the schema's defaults.
try:
    check_config(config, load_schema(workflow.source_path("../schemas/config.schema.yaml")))
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None
validate(config, schema="../schemas/config.schema.yaml", set_default=True)


# Scheduling: the jobs the policy and the final-budget backbones wait for (tasks, renders,
# pre-training, rewards, noise, Task2Vec, the policy, the final budget) get CRITICAL priority; the
# rest (ASG, the reward-budget and reference scores, figures) get 0 and fill the cores that path
# leaves idle, e.g. the second core while the one-thread policy job runs (BENCHMARKS.md, "Default
# workflow"). Priorities order jobs only: no output depends on them.
CRITICAL = 1
# Each stage file appends what `rule all` must build; the Snakefile's `rule all` takes the list.
FINAL_TARGETS = []


def task_ids():
    return list(config["tasks"]["items"])


def seen_tasks():
    return [t for t in task_ids() if task_settings(t)["seen"]]


def unseen_tasks():
    return [t for t in task_ids() if not task_settings(t)["seen"]]


def reward_tasks():
    """Tasks in the reward table: all but those with `reward: false` (the one-shot path)."""
    return [t for t in task_ids() if task_settings(t)["reward"]]


def oneshot_tasks():
    """Tasks outside the reward table: Task2Vec -> prediction -> final-budget backbone only."""
    return [t for t in task_ids() if not task_settings(t)["reward"]]


def all_bits():
    """Every configuration string of this run (2^M, M = len(render.vary_bits))."""
    return configs_for(config["render"]["vary_bits"])


def task_settings(task):
    """The resolved settings of one task: its own keys over the tasks-level caps and the item
    defaults, both from the schema."""
    tasks = config["tasks"]
    shared = {k: v for k, v in tasks.items() if k != "items"}
    return {**shared, **section_defaults("$defs.task"), **tasks["items"][task]}


def task_settings_json(wildcards):
    """Task settings as the --config JSON argument of the tasks CLI (seen or not, the data are
    the same: `seen` and `reward` stay out so that moving a task across the split reruns nothing here)."""
    settings = {k: v for k, v in task_settings(wildcards.task).items() if k not in ("seen", "reward")}
    return json.dumps(settings, sort_keys=True)


def config_json(section, drop=()):
    """A config section's science keys as the --config JSON of its CLI: params, so that a change
    reruns the jobs. Runtime keys (x-runtime in the schema) go separately, see runtime_json."""
    science, _ = split_runtime(section, config[section])
    return json.dumps({k: v for k, v in science.items() if k not in drop}, sort_keys=True)


def runtime_json(section):
    """A section's runtime keys as the --runtime JSON: passed as a resource, so changing them
    reruns nothing (they never change a result)."""
    return json.dumps(split_runtime(section, config[section])[1], sort_keys=True)


def _alternation(names):
    # An empty alternation would match the empty string; keep the constraint unmatchable instead.
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    bits=BITS_PATTERN,
    task=_alternation(task_ids()),
    seed=r"\d+",


# --- pretrain / reward / evaluate: input and parameter functions ---------------------------------


def reward_jsons(wildcards):
    """One reward JSON per (config, task) of this run."""
    return expand("results/rewards/{bits}/{task}.json", bits=all_bits(), task=reward_tasks())


def noise_configs():
    """The configurations repeated at the noise stage's seeds."""
    return config["noise"]["configs"]


# The reward section as a reward job reads it: reward.seeds only says which jobs run.
REWARD_JOB = config_json("reward", drop=["seeds"])
REWARD_SEEDS = config["reward"]["seeds"]
# noise.seeds that are not table seeds (a seed of both repeats every configuration)
NOISE_ONLY_SEEDS = [s for s in config["noise"]["seeds"] if s not in REWARD_SEEDS]


def noise_on():
    """The noise stage runs when some configurations are repeated: the noise stage's or the table's seeds."""
    return bool(noise_configs() and NOISE_ONLY_SEEDS) or bool(REWARD_SEEDS)


def noise_tsv(wildcards):
    return ["results/rewards/noise.tsv"] if noise_on() else []


def reward_seed_jsons(wildcards):
    """The table's other seeds (reward.seeds): every (seed, configuration, task)."""
    return expand(
        "results/noise/{seed}/rewards/{bits}/{task}.json", seed=REWARD_SEEDS, bits=all_bits(), task=reward_tasks()
    )


def noise_repeat_jsons(wildcards):
    """The repeated runs' reward JSONs: the table's other seeds and the noise stage's configurations."""
    return reward_seed_jsons(wildcards) + expand(
        "results/noise/{seed}/rewards/{bits}/{task}.json",
        seed=NOISE_ONLY_SEEDS,
        bits=noise_configs(),
        task=reward_tasks(),
    )


def noise_feature_caches(wildcards):
    return " ".join(
        expand(
            "results/noise/{seed}/features/{bits}/{task}.npz",
            seed=wildcards.seed,
            bits=wildcards.bits,
            task=reward_tasks(),
        )
    )


_unknown = sorted(set(noise_configs()) - set(all_bits()))
if _unknown:
    raise WorkflowError(f"invalid configuration: noise.configs: {_unknown[0]} is not one of this run's configurations")
_no_reward_seen = [t for t in oneshot_tasks() if task_settings(t)["seen"]]
if _no_reward_seen:
    raise WorkflowError(f"invalid configuration: tasks.items.{_no_reward_seen[0]}: reward: false needs seen: false")
_unknown = sorted(set(config["evaluate"]["sources"]) - set(all_bits()))
if _unknown:
    raise WorkflowError(
        f"invalid configuration: evaluate.sources: {_unknown[0]} is not one of this run's configurations"
    )
for _key, _seeds in (("noise.seeds", config["noise"]["seeds"]), ("reward.seeds", REWARD_SEEDS)):
    if config["seed"] in _seeds:
        raise WorkflowError(f"invalid configuration: {_key}: {config['seed']} is the run's own seed")
_used = {config["seed"], *REWARD_SEEDS, *config["noise"]["seeds"]}
_reused = [s for s in config["final"]["seeds"] if s in _used]
if _reused:
    raise WorkflowError(
        f"invalid configuration: final.seeds: {_reused[0]} is a seed of the run, reward.seeds or noise.seeds"
        " (the comparison is scored on backbones that fitted and chose nothing)"
    )


def reward_task_files(wildcards):
    """Every task's data.h5, in task_ids() order (parallel to the reward rule's outputs)."""
    return expand("results/tasks/{task}/data.h5", task=reward_tasks())


def reward_feature_caches(wildcards):
    """Per-task feature cache files of one backbone (results/features/{bits}/{task}.npz)."""
    return " ".join(expand("results/features/{bits}/{task}.npz", bits=wildcards.bits, task=reward_tasks()))


def evaluate_inputs(wildcards):
    """The task, plus the backbone unless training from scratch."""
    inputs = {"task": f"results/tasks/{wildcards.task}/data.h5"}
    if wildcards.method != "scratch":
        inputs["model"] = f"results/pretrain/{wildcards.source}/model.pt"
    return inputs


def evaluate_model_args(wildcards, input):
    """--model for pre-trained sources; the configured architecture and render size for scratch."""
    if wildcards.method == "scratch":
        return f"--model-name {config['pretrain']['model']}" f" --image-size {config['render']['image_size']}"
    return f"--model {input.model}"


def evaluate_config_json(wildcards):
    """The method's grid and epochs plus the validation fraction: the --config of evaluate."""
    ev = config["evaluate"]
    return json.dumps({**ev[wildcards.method], "val_fraction": ev["val_fraction"]}, sort_keys=True)


def evaluate_targets():
    """results/evaluate/{method}/{source}/{task}.json for the configured methods and sources."""
    ev = config["evaluate"]
    out = []
    for method in ev["methods"]:
        # scratch ignores the source's weights: one run per task, source "none"
        sources = ["none"] if method == "scratch" else ev["sources"]
        out += expand("results/evaluate/{method}/{source}/{task}.json", method=method, source=sources, task=task_ids())
    return out


# --- task2vec ---------------------------------------------------------------------------------


def task2vec_probe_inputs(wildcards):
    """A configured local probe checkpoint is an input (the packaged EfficientNet-Lite0 weights
    live in the environment; the provenance record hashes them either way)."""
    ckpt = config["task2vec"]["checkpoint"]
    return [ckpt] if ckpt else []


# --- policy --------------------------------------------------------------------------------------


def policy_unseen_tasks():
    """Unseen tasks of the reward table: scored by the policy stage. Tasks outside the table
    (reward: false) get their prediction from the saved policy instead (final_select), so
    adding one refits nothing."""
    return [t for t in unseen_tasks() if t in reward_tasks()]


def policy_task2vec_files(wildcards):
    """The reward table's tasks' Task2Vec: seen ones train the predictors, unseen ones get predictions."""
    return expand("results/task2vec/{task}.npz", task=reward_tasks())


# On a cluster these run on the submit host: each takes seconds, less than a SLURM job's start-up.
localrules:
    all,
    tasks_prepare,
    render_variations,
    reward_table,


# --- final: one-shot backbones and the final comparison (rules/final.smk, docs/final.md) -------

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
    """The scores final_summary needs from the start: every reward-budget backbone and the two
    references, at each evaluation seed."""
    return [
        final_score_path(budget, source, seed)
        for seed in EVAL_SEEDS
        for budget, source in [("reward", b) for b in all_bits()] + [("ref", "scratch"), ("ref", "imagenet")]
    ]


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
    best_fixed), scored beside the task's own on the same split."""
    (bits,) = {r["bits"] for r in final_choices() if r["method"] == "best_fixed"}
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
    "reward": REWARD_JOB,
}


def final_pretrain_config(wildcards):
    """The pretrain section with the final budget's epochs (final.epochs, null: the same)."""
    return json.dumps(
        {**json.loads(config_json("pretrain")), "epochs": FINAL["epochs"] or config["pretrain"]["epochs"]},
        sort_keys=True,
    )
