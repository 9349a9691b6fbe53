"""The configuration each method picks per task, at every budget (choices.tsv)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..bits import configs_for
from . import ALL_ON, CONFIG_METHODS, FinalError


def random_configs(configs: Sequence[str], seed: int, draws: int) -> list[str]:
    """Random's configurations: ``draws`` distinct ones drawn uniformly from ``configs`` (all of
    them when ``draws >= len(configs)``, in their order: the exact mean) by a generator seeded by
    ``seed`` alone. Every task shares them: Random is a task-agnostic rule, so one set of draws
    estimates the same expectation as per-task draws, and each draw costs one pre-training at the
    final budget instead of one per task that happened to draw it. Random's score on a task is the
    mean over them (``method_scores``)."""
    if draws >= len(configs):
        return list(configs)
    rng = np.random.default_rng(int(seed))
    return [configs[int(i)] for i in rng.choice(len(configs), size=int(draws), replace=False)]


# The fixed rules of the comparison (policy.predictors' names): one configuration for every task.
FIXED_RULES = ("best_fixed", "best_fixed_z")


def best_fixed_config(table: Mapping[str, Mapping[str, float]], seen: Sequence[str], configs: Sequence[str],
                      rule: str = "best_fixed") -> str:
    """The configuration of a fixed rule fitted on the tasks ``seen``: ``best_fixed``, the best mean
    reward over them (first of equals), or ``best_fixed_z``, the best mean per-task z-score. The
    policy stage's rules of the same names (policy.predictors), so the two cannot disagree."""
    from ..policy.predictors import make_predictor

    missing = [(t, b) for t in seen for b in configs if b not in table.get(t, {})]
    if missing:
        raise FinalError(f"reward table: no reward for task {missing[0][0]!r}, configuration {missing[0][1]}")
    rewards = np.array([[table[t][b] for b in configs] for t in seen], dtype=np.float64)
    return configs[int(make_predictor(rule).choose(rewards, None))]


def fixed_rule_configs(table: Mapping[str, Mapping[str, float]], seen: Sequence[str], configs: Sequence[str],
                       tasks: Sequence[str], rule: str) -> dict[str, str]:
    """A fixed rule's configuration for each of ``tasks``: fitted on the other seen tasks for a seen
    task (held out, as Task2Sim's ``heldout_bits``: a seen column never scores a rule on the row it
    chose from), on all of them for any other task."""
    if len(seen) < 2:
        raise FinalError(f"{len(seen)} seen task(s): a seen task's fixed-rule configuration comes from the "
                         "other seen tasks, so at least two are needed")
    everyone = best_fixed_config(table, seen, configs, rule)
    return {t: best_fixed_config(table, [u for u in seen if u != t], configs, rule) if t in seen else everyone
            for t in tasks}


def seen_tasks(predictions: Sequence[Mapping[str, str]]) -> list[str]:
    """The seen tasks of predictions.tsv (the policy stage's split)."""
    seen = [p["task"] for p in predictions if p["split"] == "seen"]
    if not seen:
        raise FinalError("predictions: no seen task")
    return seen


def seen_rules(table: Mapping[str, Mapping[str, float]], predictions: Sequence[Mapping[str, str]],
               vary_bits: Sequence[int]) -> dict[str, str]:
    """Each fixed rule fitted on every seen task: what a task outside the reward table gets
    (fixed_rules.tsv, the one-shot path's baseline)."""
    configs = configs_for(vary_bits)
    return {r: best_fixed_config(table, seen_tasks(predictions), configs, r) for r in FIXED_RULES}


def measured_config(task: str, measured: Mapping[str, Mapping[str, float]], configs: Sequence[str]) -> str:
    """Measured selection for ``task``: the configuration whose reward-budget backbone has the best
    5-NN accuracy left-one-out within the task's training split (``measured``: train_loo.tsv of
    the reward stage; first of equals). No test image and no other task is read."""
    row = measured.get(task, {})
    missing = [b for b in configs if b not in row]
    if missing:
        raise FinalError(f"measured table: no training-split score for task {task!r}, configuration {missing[0]}")
    return configs[int(np.argmax([row[b] for b in configs]))]


def choose_configs(table: Mapping[str, Mapping[str, float]], predictions: Sequence[Mapping[str, str]],
                   vary_bits: Sequence[int], random_seed: int,
                   measured: Mapping[str, Mapping[str, float]], random_draws: int = 1) -> list[dict[str, str]]:
    """One row per (task, method), ``random_draws`` rows for Random: the configuration each
    configuration-choosing method gives each task of ``predictions`` (predictions.tsv of the
    policy stage; Task2Sim's is ``heldout_bits``: a seen task's from the predictor fitted without
    it; likewise the fixed rules', ``fixed_rule_configs``). ``split``: seen/unseen as the policy
    had it, ``new`` for a task outside the reward table (the one-shot path). ``measured``:
    {task: {bits: 5-NN left-one-out on the training split}} (``measured_config``)."""
    configs = configs_for(vary_bits)
    seen = seen_tasks(predictions)
    tasks = [p["task"] for p in predictions]
    fixed = {rule: fixed_rule_configs(table, seen, configs, tasks, rule) for rule in FIXED_RULES}
    draws = random_configs(configs, random_seed, random_draws)
    rows = []
    for p in predictions:
        task = p["task"]
        split = p["split"] if task in table else "new"
        chosen = {"task2sim": [p["heldout_bits"]], "measured": [measured_config(task, measured, configs)],
                  "random": draws, "domain_randomisation": [configs[-1]], "domain_randomisation_all": [ALL_ON],
                  **{rule: [by_task[task]] for rule, by_task in fixed.items()}}
        rows += [{"task": task, "split": split, "method": m, "bits": b} for m in CONFIG_METHODS for b in chosen[m]]
    return rows


def picks(choices: Sequence[Mapping[str, str]]) -> dict[tuple[str, str], list[str]]:
    """{(task, method): [bits, ...]} of choices.tsv rows: one configuration per method, several
    for Random (its draws)."""
    out: dict[tuple[str, str], list[str]] = {}
    for c in choices:
        out.setdefault((c["task"], c["method"]), []).append(c["bits"])
    return out


def rule_configs_text(choices: Sequence[Mapping[str, str]], method: str) -> str:
    """The configurations one method gave the reward table's tasks, for a caption: ``00000000``
    when it gave every task the same, else the most frequent and which tasks got the others
    (a fixed rule's held-out fits can differ on a seen task)."""
    by_bits: dict[str, list[str]] = {}
    for c in choices:
        if c["method"] == method and c["split"] != "new":
            by_bits.setdefault(c["bits"], []).append(c["task"])
    ranked = sorted(by_bits.items(), key=lambda kv: -len(kv[1]))
    if len(ranked) <= 1:
        return ranked[0][0] if ranked else ""
    return ranked[0][0] + "; " + "; ".join(f"{b} on {', '.join(ts)}" for b, ts in ranked[1:])
