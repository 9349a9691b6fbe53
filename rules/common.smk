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


_no_reward_seen = [t for t in oneshot_tasks() if task_settings(t)["seen"]]
if _no_reward_seen:
    raise WorkflowError(f"invalid configuration: tasks.items.{_no_reward_seen[0]}: reward: false needs seen: false")


# On a cluster these run on the submit host: each takes seconds, less than a SLURM job's start-up.
localrules:
    all,
    tasks_prepare,
    render_variations,
    reward_table,
