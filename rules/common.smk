# Validation, wildcard constraints and input functions shared by every stage.
import json
import os
import re
import sys

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
    f'export PYTHONPATH="{_SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
    + (f'export PATH="{_BIN}:$PATH"; ' if _BIN else "")
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


# Each stage file appends what `rule all` must build; the Snakefile's `rule all` takes the list.
FINAL_TARGETS = []


def task_ids():
    return list(config["tasks"]["items"])


def seen_tasks():
    return [t for t in task_ids() if task_settings(t)["seen"]]


def unseen_tasks():
    return [t for t in task_ids() if not task_settings(t)["seen"]]


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
    the same: `seen` stays out so that moving a task across the split reruns nothing here)."""
    settings = {k: v for k, v in task_settings(wildcards.task).items() if k != "seen"}
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
    return expand("results/rewards/{bits}/{task}.json", bits=all_bits(), task=task_ids())


def reward_task_files(wildcards):
    """Every task's data.h5, in task_ids() order (parallel to the reward rule's outputs)."""
    return expand("results/tasks/{task}/data.h5", task=task_ids())


def reward_feature_caches(wildcards):
    """Per-task feature cache files of one backbone (results/features/{bits}/{task}.npz)."""
    return " ".join(expand("results/features/{bits}/{task}.npz", bits=wildcards.bits, task=task_ids()))


def evaluate_inputs(wildcards):
    """The task, plus the backbone unless training from scratch."""
    inputs = {"task": f"results/tasks/{wildcards.task}/data.h5"}
    if wildcards.method != "scratch":
        inputs["model"] = f"results/pretrain/{wildcards.source}/model.pt"
    return inputs


def evaluate_model_args(wildcards, input):
    """--model for pre-trained sources; the configured architecture and render size for scratch."""
    if wildcards.method == "scratch":
        return (f"--model-name {config['pretrain']['model']}"
                f" --image-size {config['render']['image_size']}")
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
        out += expand("results/evaluate/{method}/{source}/{task}.json", method=method,
                      source=sources, task=task_ids())
    return out


# --- policy --------------------------------------------------------------------------------------


def policy_task2vec_files(wildcards):
    """Every configured task's Task2Vec (seen ones train the predictors, unseen ones get predictions)."""
    return expand("results/task2vec/{task}.npz", task=task_ids())


# On a cluster these run on the submit host: each takes seconds, less than a SLURM job's start-up.
localrules:
    all,
    tasks_prepare,
    render_variations,
    reward_table,
