"""Scoring predictors on a reward table: the seen/unseen split and leave-one-task-out.

Every score is the mean, over a set of tasks, of the table's reward for the configuration a
predictor chose for each task. Stochastic predictors run once per seed; deterministic ones once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .data import RewardMatrix
from .predictors import Oracle, Predictor


@dataclass
class MethodScores:
    """Per seed: mean reward on seen tasks, on unseen tasks, and leave-one-task-out (NaN: not run),
    plus per-task leave-one-out rewards of the first seed."""

    method: str
    seeds: list[int] = field(default_factory=list)
    seen: list[float] = field(default_factory=list)
    unseen: list[float] = field(default_factory=list)
    loo: list[float] = field(default_factory=list)
    loo_per_task: dict[str, float] = field(default_factory=dict)


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def split_scores(make: Callable[[], Predictor], emb: dict[str, np.ndarray], rm: RewardMatrix,
                 seen: Sequence[str], unseen: Sequence[str], seed: int) -> tuple[float, float]:
    """Fit on ``seen``; mean reward of the predictions on ``seen`` and on ``unseen`` (table tasks)."""
    unseen = [t for t in unseen if t in rm.tasks]
    p = make()
    if isinstance(p, Oracle):
        return _mean(rm.rows(seen).max(1)), _mean(rm.rows(unseen).max(1)) if unseen else float("nan")
    p.fit(np.stack([emb[t] for t in seen]), rm.rows(seen), rm.space, seed)
    out = []
    for tasks in (list(seen), unseen):
        if not tasks:
            out.append(float("nan"))
            continue
        cfg = p.predict(np.stack([emb[t] for t in tasks])).config
        out.append(_mean(rm.rows(tasks)[np.arange(len(tasks)), cfg]))
    return out[0], out[1]


def leave_one_out(make: Callable[[], Predictor], emb: dict[str, np.ndarray], rm: RewardMatrix,
                  tasks: Sequence[str], seed: int) -> dict[str, float]:
    """Reward of each task's prediction by a predictor fitted on all the other tasks."""
    out = {}
    for t in tasks:
        if isinstance(make(), Oracle):
            out[t] = float(rm.rows([t]).max())
            continue
        rest = [u for u in tasks if u != t]
        p = make().fit(np.stack([emb[u] for u in rest]), rm.rows(rest), rm.space, seed)
        out[t] = float(rm.rows([t])[0, p.predict(emb[t][None]).config[0]])
    return out


def evaluate_methods(factories: dict[str, Callable[[], Predictor]], emb: dict[str, np.ndarray], rm: RewardMatrix,
                     seen: Sequence[str], unseen: Sequence[str], seeds: Sequence[int],
                     loo: bool = True, log: Callable[[str], None] = lambda s: None) -> list[MethodScores]:
    """Scores of every method: split and (optionally) leave-one-task-out over every table task
    that has an embedding; stochastic methods once per seed, the others once."""
    loo_tasks = [t for t in rm.tasks if t in emb]
    results = []
    for name, make in factories.items():
        run_seeds = list(seeds) if make().stochastic else list(seeds[:1])
        s = MethodScores(name)
        for seed in run_seeds:
            a, b = split_scores(make, emb, rm, seen, unseen, seed)
            s.seeds.append(seed)
            s.seen.append(a)
            s.unseen.append(b)
            if loo:
                per_task = leave_one_out(make, emb, rm, loo_tasks, seed)
                s.loo.append(_mean(np.array(list(per_task.values()))))
                if not s.loo_per_task:
                    s.loo_per_task = per_task
            else:
                s.loo.append(float("nan"))
            log(f"{name} seed {seed}: seen {a:.2f} unseen {b:.2f} loo {s.loo[-1]:.2f}")
        results.append(s)
    return results
