# Validation, wildcard constraints and input functions shared by every stage.
import json
import os
import re
import sys

# The workflow's own library, importable here and in every job without installing it (also in
# --sdm conda environments, which hold only the third-party stack).
_SRC = os.path.join(workflow.basedir, "src")
if os.path.isdir(_SRC):
    sys.path.insert(0, _SRC)
    # (quadrupled braces: the f-string halves them, snakemake's shell formatting halves them again)
    shell.prefix(f'export PYTHONPATH="{_SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; ')

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from task2sim.bits import BITS_PATTERN, configs_for
from task2sim.config import ConfigError, check_config, load_schema


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
    return [t for t, c in config["tasks"]["items"].items() if c.get("seen", True)]


def unseen_tasks():
    return [t for t, c in config["tasks"]["items"].items() if not c.get("seen", True)]


def all_bits():
    """Every configuration string of this run (2^M, M = len(render.vary_bits))."""
    return configs_for(config["render"]["vary_bits"])


def task_settings(task):
    """The resolved settings of one task: its own keys over the tasks-level defaults."""
    tasks = config["tasks"]
    item = dict(tasks["items"][task])
    item.setdefault("seen", True)
    item.setdefault("max_train", tasks["max_train"])
    item.setdefault("max_test", tasks["max_test"])
    item.setdefault("test_fraction", tasks["test_fraction"])
    return item


def task_settings_json(wildcards):
    """Task settings as one shell-quoted JSON argument for the CLI."""
    return json.dumps(task_settings(wildcards.task), sort_keys=True)


def _alternation(names):
    # An empty alternation would match the empty string; keep the constraint unmatchable instead.
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    bits=BITS_PATTERN,
    task=_alternation(task_ids()),
    seed=r"\d+",


# --- pretrain / reward / evaluate: input and parameter functions ---------------------------------


def pretrain_params_json(wildcards):
    """The pretrain config section as one JSON argument (keys of task2sim PretrainConfig)."""
    return json.dumps(config["pretrain"], sort_keys=True)


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


def evaluate_params_json(wildcards):
    """The method's grid and epochs plus the validation fraction, as one JSON argument."""
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


# --- render ---------------------------------------------------------------------------------------


def render_params_json(wildcards):
    """The render section as one JSON argument. vary_bits only chooses which datasets exist; it
    is left out so that changing it does not rerender the configurations both runs share."""
    settings = {k: v for k, v in config["render"].items() if k != "vary_bits"}
    return json.dumps(settings, sort_keys=True)


# On a cluster these run on the submit host: each takes seconds, less than a SLURM job's start-up.
localrules:
    all,
    tasks_prepare,
    render_variations,
    reward_table,
