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


def best_fixed_config(table: Mapping[str, Mapping[str, float]], seen: Sequence[str], configs: Sequence[str]) -> str:
    """The configuration with the best mean reward over the seen tasks (first of equals): the
    policy stage's fixed rule ``best_fixed`` (policy.predictors), so the two cannot disagree."""
    from ..policy.predictors import BestFixed

    missing = [(t, b) for t in seen for b in configs if b not in table.get(t, {})]
    if missing:
        raise FinalError(f"reward table: no reward for task {missing[0][0]!r}, configuration {missing[0][1]}")
    rewards = np.array([[table[t][b] for b in configs] for t in seen], dtype=np.float64)
    return configs[int(BestFixed().choose(rewards, None))]


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
    it). ``split``: seen/unseen as the policy had it, ``new`` for a task outside the
    reward table (the one-shot path). ``measured``: {task: {bits: 5-NN left-one-out on the
    training split}} (``measured_config``)."""
    configs = configs_for(vary_bits)
    seen = [p["task"] for p in predictions if p["split"] == "seen"]
    if not seen:
        raise FinalError("predictions: no seen task")
    best = best_fixed_config(table, seen, configs)
    draws = random_configs(configs, random_seed, random_draws)
    rows = []
    for p in predictions:
        task = p["task"]
        split = p["split"] if task in table else "new"
        chosen = {"task2sim": [p["heldout_bits"]], "measured": [measured_config(task, measured, configs)],
                  "random": draws,
                  "domain_randomisation": [configs[-1]], "domain_randomisation_all": [ALL_ON], "best_fixed": [best]}
        rows += [{"task": task, "split": split, "method": m, "bits": b} for m in CONFIG_METHODS for b in chosen[m]]
    return rows


def picks(choices: Sequence[Mapping[str, str]]) -> dict[tuple[str, str], list[str]]:
    """{(task, method): [bits, ...]} of choices.tsv rows: one configuration per method, several
    for Random (its draws)."""
    out: dict[tuple[str, str], list[str]] = {}
    for c in choices:
        out.setdefault((c["task"], c["method"]), []).append(c["bits"])
    return out

