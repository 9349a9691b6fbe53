"""Scoring predictors on a reward table: the seen/unseen split and leave-one-task-out.

Every score is the mean, over a set of tasks, of the table's reward for the configuration a
predictor chose for each task. Stochastic predictors run once per seed; deterministic ones once.
With a ``PolicyCheckpoint`` (``memo``), finished fits are read back instead of fitted again and
controller trainings resume (policy/resume.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .data import RewardMatrix
from .predictors import FIXED_RULES, Oracle, Predictor, Task2SimPredictor
from .resume import PolicyCheckpoint, fit_key


@dataclass
class MethodScores:
    """Per seed: mean reward on seen tasks, on unseen tasks, leave-one-task-out over every table task
    (``loo``) and over the seen tasks only (``loo_seen``: never reads an unseen row; NaN: not run),
    plus per-task leave-one-out rewards of the first seed."""

    method: str
    seeds: list[int] = field(default_factory=list)
    seen: list[float] = field(default_factory=list)
    unseen: list[float] = field(default_factory=list)
    loo: list[float] = field(default_factory=list)
    loo_seen: list[float] = field(default_factory=list)
    loo_per_task: dict[str, float] = field(default_factory=dict)


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else float("nan")


def fit_predict(make: Callable[[], Predictor], emb: dict[str, np.ndarray], rm: RewardMatrix,
                train: Sequence[str], targets: Sequence[str], seed: int,
                memo: PolicyCheckpoint | None = None, keep: dict[str, Predictor | None] | None = None) -> np.ndarray:
    """Configuration index per target task of a predictor fitted on ``train`` only: the only place
    where rewards reach a predictor, and only the training tasks' rows do (``oracle`` excepted).
    ``keep``: {``fit_key(name, seed, train, [])``: None} of fits wanted afterwards; a fit of one of
    them puts the fitted predictor there (a fit depends on its training tasks and seed alone)."""
    p = make()
    key = fit_key(p.name, seed, train, targets)
    if memo is not None and (done := memo.result(key)) is not None:
        return np.asarray(done, dtype=np.int64)
    if isinstance(p, Oracle):
        config = p.fit(None, None, rm.space).predict_from_rewards(rm.rows(targets)).config
    else:
        if memo is not None and isinstance(p, Task2SimPredictor):
            p.checkpoint = memo.controller(key)
        p.fit(np.stack([emb[t] for t in train]), rm.rows(train), rm.space, seed)
        config = p.predict(np.stack([emb[t] for t in targets])).config
        if keep is not None and (wanted := fit_key(p.name, seed, train, [])) in keep:
            keep[wanted] = p
    if memo is not None:
        # a controller training is worth saving at once; the other fits are saved per (method, seed)
        memo.done(key, config, flush=isinstance(p, Task2SimPredictor))
    return config


def split_scores(make: Callable[[], Predictor], emb: dict[str, np.ndarray], rm: RewardMatrix,
                 seen: Sequence[str], unseen: Sequence[str], seed: int,
                 memo: PolicyCheckpoint | None = None,
                 keep: dict[str, Predictor | None] | None = None) -> tuple[float, float]:
    """Fit on ``seen``; mean reward of the predictions on ``seen`` and on ``unseen`` (table tasks)."""
    unseen = [t for t in unseen if t in rm.tasks]
    targets = list(seen) + unseen
    cfg = fit_predict(make, emb, rm, seen, targets, seed, memo, keep)
    r = rm.rows(targets)[np.arange(len(targets)), cfg]
    return _mean(r[:len(seen)]), _mean(r[len(seen):])


def leave_one_out_configs(make: Callable[[], Predictor], emb: dict[str, np.ndarray], rm: RewardMatrix,
                          tasks: Sequence[str], seed: int, memo: PolicyCheckpoint | None = None) -> dict[str, int]:
    """Each task's configuration from a predictor fitted on all the other tasks."""
    return {t: int(fit_predict(make, emb, rm, [u for u in tasks if u != t], [t], seed, memo)[0]) for t in tasks}


def leave_one_out(make: Callable[[], Predictor], emb: dict[str, np.ndarray], rm: RewardMatrix,
                  tasks: Sequence[str], seed: int, memo: PolicyCheckpoint | None = None) -> dict[str, float]:
    """Reward of each task's leave-one-out configuration."""
    cfg = leave_one_out_configs(make, emb, rm, tasks, seed, memo)
    return {t: float(rm.rows([t])[0, c]) for t, c in cfg.items()}


def evaluate_methods(factories: dict[str, Callable[[], Predictor]], emb: dict[str, np.ndarray], rm: RewardMatrix,
                     seen: Sequence[str], unseen: Sequence[str], seeds: Sequence[int],
                     loo: bool = True, log: Callable[[str], None] = lambda s: None,
                     memo: PolicyCheckpoint | None = None,
                     keep: dict[str, Predictor | None] | None = None) -> list[MethodScores]:
    """Scores of every method: split and (optionally) leave-one-task-out over every table task
    that has an embedding; stochastic methods once per seed, the others once. ``keep``: as
    ``fit_predict``'s (the split fits on the seen tasks)."""
    loo_tasks = [t for t in rm.tasks if t in emb]
    results = []
    for name, make in factories.items():
        run_seeds = list(seeds) if make().stochastic else list(seeds[:1])
        s = MethodScores(name)
        for seed in run_seeds:
            a, b = split_scores(make, emb, rm, seen, unseen, seed, memo, keep)
            s.seeds.append(seed)
            s.seen.append(a)
            s.unseen.append(b)
            if loo:
                per_task = leave_one_out(make, emb, rm, loo_tasks, seed, memo)
                s.loo.append(_mean(np.array(list(per_task.values()))))
                if not s.loo_per_task:
                    s.loo_per_task = per_task
                s.loo_seen.append(_mean(np.array(list(leave_one_out(make, emb, rm, seen, seed, memo).values()))))
            else:
                s.loo.append(float("nan"))
                s.loo_seen.append(float("nan"))
            if memo is not None:
                memo.flush()
            log(f"{name} seed {seed}: seen {a:.2f} unseen {b:.2f} loo {s.loo[-1]:.2f} loo_seen {s.loo_seen[-1]:.2f}")
        results.append(s)
    return results


def selection_criterion(loo_by_table: Sequence[dict[str, float]], reference: str = "best_fixed") -> dict[str, float]:
    """Each method's leave-one-task-out mean reward minus ``reference``'s on the same table,
    averaged over the tables (each a dict method -> leave-one-out mean over that table's *seen*
    tasks; methods missing from a table are dropped)."""
    names = [m for m in loo_by_table[0] if all(m in t for t in loo_by_table)]
    return {m: float(np.mean([t[m] - t[reference] for t in loo_by_table])) for m in names}


def choose_default(loo_seen_by_table: Sequence[dict[str, float]], candidates: Sequence[str],
                   fixed: Sequence[str] = FIXED_RULES) -> str:
    """The default predictor (docs/policy.md, "How the default is chosen"), from leave-one-out
    means over the seen tasks of each table only, so no held-out task is read.

    An adaptive candidate qualifies when it beats every fixed rule on every table; the qualifier
    with the highest ``selection_criterion`` wins (ties: the earlier candidate). When none
    qualifies, the default is the fixed rule with the highest criterion (ties: the earlier)."""
    missing = [m for m in fixed if not all(m in t for t in loo_seen_by_table)]
    if missing:
        raise ValueError(f"fixed rule {missing[0]!r} was not scored on every table")
    crit = selection_criterion(loo_seen_by_table)

    def best_of(names: Sequence[str]) -> str | None:
        best = None
        for m in names:
            if m in crit and (best is None or crit[m] > crit[best] + 1e-9):
                best = m
        return best

    qualified = [m for m in candidates if m in crit
                 and all(t[m] > max(t[f] for f in fixed) + 1e-9 for t in loo_seen_by_table)]
    return best_of(qualified) or best_of(fixed)
