"""Every way of choosing a configuration for a task, behind one interface (docs/policy.md).

A predictor is fitted on training tasks (their L2-normalised Task2Vec and their rows of the reward
table) and then predicts, for any embedding, one configuration and P(bit = 1) per varied bit. It
never sees a reward of a task it predicts for, except ``oracle``, which exists as the ceiling and is
marked ``uses_target``.

- ``task2sim``: the paper's controller (``controller``), stochastic.
- ``similarity``: a Task2Vec-similarity-weighted mean of the training tasks' standardised rewards.
- ``reward_model``: per-task reward surfaces smoothed on bit features, then kernel ridge regression
  over tasks of their deviation from the shared (mean) surface.
- ``ensemble``: the mean of the standardised scores of ``similarity`` and ``reward_model``.
- ``gated_*`` (``gated_reward_model_main`` was the default until the selection rule read only
  seen tasks: docs/policy.md, "How the default is chosen"), ``shortlist_*``: best_fixed unless
  (gated) or within the best K of (shortlist) what a base predictor prefers, tuned by inner
  leave-one-out.
- ``best_fixed`` / ``best_fixed_z``: the fixed rules, one configuration for every task (the best
  mean reward, or the best mean per-task z-score, over the training tasks).
- ``VARIANTS``: the rest of the search for a default (docs/policy.md): other per-task targets
  (``zscore``, ``rank``, ``top``), centred Task2Vec, k nearest tasks, main effects only.
- baselines: ``best_fixed`` (best mean reward on the training tasks), ``all_on``, ``all_off``,
  ``random`` (seeded), and ``oracle``.

Hyper-parameters of ``similarity`` and ``reward_model`` are chosen by leave-one-out over the
training tasks only, maximising the mean reward of the held-out training task.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import Ridge

from .controller import (
    ControllerCheckpoint,
    ControllerSettings,
    Task2SimController,
    controller_probs,
    train_controller,
)
from .data import ConfigSpace, centre_rows, l2_normalise, standardise_rows



def rank_rows(values: np.ndarray) -> np.ndarray:
    """Per-task ranks across configurations, scaled to [-0.5, 0.5] (ties share the mean rank): only
    the order within a task counts, not how far apart its rewards are."""
    r = rankdata(values, axis=1)
    return (r - 1) / max(values.shape[1] - 1, 1) - 0.5


def top_rows(values: np.ndarray, fraction: float = 1 / 16) -> np.ndarray:
    """Per-task votes: 1 for the ceil(fraction C) best configurations of the task, else 0; averaged
    over training tasks this is (weighted) voting of the tasks for their best configurations."""
    k = max(1, int(np.ceil(fraction * values.shape[1])))
    kth = -np.sort(-values, axis=1)[:, k - 1:k]
    return (values >= kth).astype(np.float64)


TARGETS = {"centre": centre_rows, "zscore": standardise_rows, "rank": rank_rows, "top": top_rows}


@dataclass
class Prediction:
    """``config[i]``: the chosen configuration index of task i; ``p_bits[i, h]``: P(bit h = 1).

    ``p_kind`` says what ``p_bits`` is: ``probability`` (the controller's heads), ``boltzmann``
    (marginals of a softmax over standardised scores, derived from a score, not calibrated) or
    ``indicator`` (0/1 of the chosen configuration)."""

    config: np.ndarray
    p_bits: np.ndarray
    p_kind: str


def boltzmann_bits(space: ConfigSpace, scores: np.ndarray, temperature: float) -> np.ndarray:
    """Marginal P(bit = 1) under softmax(score / (temperature * sd)) over configurations, sd the
    spread of the task's scores across configurations (so the result does not depend on units)."""
    sd = scores.std(axis=-1, keepdims=True)
    s = scores / (temperature * np.where(sd > 0, sd, 1.0))
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    return space.p_bits(w / w.sum(axis=-1, keepdims=True))


def indicator_bits(space: ConfigSpace, config: np.ndarray) -> np.ndarray:
    return space.actions()[np.asarray(config)].astype(np.float64)


class Predictor:
    name = ""
    stochastic = False
    uses_target = False

    def fit(self, emb: np.ndarray, rewards: np.ndarray, space: ConfigSpace, seed: int = 0) -> Predictor:
        raise NotImplementedError

    def predict(self, emb: np.ndarray) -> Prediction:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Fitted hyper-parameters worth reporting."""
        return {}


class _FixedConfig(Predictor):
    """One configuration for every task."""

    def choose(self, rewards: np.ndarray, space: ConfigSpace) -> int:
        raise NotImplementedError

    def fit(self, emb, rewards, space, seed=0):
        self.space = space
        self.index = int(self.choose(rewards, space))
        return self

    def predict(self, emb):
        config = np.full(len(emb), self.index)
        return Prediction(config, indicator_bits(self.space, config), "indicator")

    def describe(self):
        return {"config": self.space.configs[self.index]}


class BestFixed(_FixedConfig):
    name = "best_fixed"

    def choose(self, rewards, space):
        return np.argmax(rewards.mean(axis=0))


class BestFixedZ(_FixedConfig):
    """The configuration with the best mean per-task z-score over the training tasks: each task's
    rewards standardised across configurations first, so a task with a wide spread does not outvote
    the others by its scale alone."""

    name = "best_fixed_z"

    def choose(self, rewards, space):
        return np.argmax(standardise_rows(rewards).mean(axis=0))


class AllOn(_FixedConfig):
    name = "all_on"

    def choose(self, rewards, space):
        return len(space.configs) - 1


class AllOff(_FixedConfig):
    name = "all_off"

    def choose(self, rewards, space):
        return 0


class RandomConfig(Predictor):
    """An independent uniform configuration per task, from the fit seed."""

    name = "random"
    stochastic = True

    def fit(self, emb, rewards, space, seed=0):
        self.space, self.seed = space, seed
        return self

    def predict(self, emb):
        config = np.random.default_rng(self.seed).integers(0, len(self.space.configs), len(emb))
        return Prediction(config, np.full((len(emb), self.space.n_heads), 0.5), "probability")


class Oracle(Predictor):
    """The best configuration of each task, read from the task's own rewards: the ceiling."""

    name = "oracle"
    uses_target = True

    def fit(self, emb, rewards, space, seed=0):
        self.space = space
        return self

    def predict_from_rewards(self, target_rewards: np.ndarray) -> Prediction:
        config = target_rewards.argmax(axis=1)
        return Prediction(config, indicator_bits(self.space, config), "indicator")

    def predict(self, emb):
        raise TypeError("oracle needs the target tasks' rewards (predict_from_rewards)")


class Task2SimPredictor(Predictor):
    name = "task2sim"
    stochastic = True

    def __init__(self, settings: ControllerSettings):
        self.settings = settings
        # where the training keeps its state to resume from (policy/resume.py); None: nowhere
        self.checkpoint: ControllerCheckpoint | None = None

    def fit(self, emb, rewards, space, seed=0):
        self.space = space
        self.model: Task2SimController = train_controller(emb, rewards, space, self.settings, seed,
                                                          checkpoint=self.checkpoint)
        return self

    def predict(self, emb):
        p = controller_probs(self.model, emb)
        return Prediction(self.space.index_of((p > 0.5).astype(np.int64)), p, "probability")


def _loo_choose(grid: Sequence[Any], gram: np.ndarray, rewards: np.ndarray, targets: np.ndarray,
                scores_for: Callable[[Any, np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> Any:
    """The grid point whose held-out configurations have the best mean raw reward, by
    leave-one-out over the training tasks. Ties go to the earlier grid point (grids are ordered
    from the most to the least conservative). ``scores_for(g, sim_train, targets_train, sim)``
    sees the tasks through their cosine similarities only (the fold's training tasks among
    themselves, the held-out task to them), cut from ``gram``, the training tasks' cosines
    (Task2Vec is L2-normalised), for every fold and grid point."""
    n = len(gram)
    if n < 3:
        return grid[0]
    folds = []
    for i in range(n):
        keep = np.arange(n) != i
        folds.append((gram[np.ix_(keep, keep)], targets[keep], gram[i:i + 1, keep]))
    best, best_value = grid[0], -np.inf
    for g in grid:
        total = 0.0
        for i, (sim_train, z_train, sim) in enumerate(folds):
            s = scores_for(g, sim_train, z_train, sim)
            total += rewards[i, int(np.argmax(s[0]))]
        if total > best_value + 1e-9:
            best, best_value = g, total
    return best


def similarity_scores(temperature: float, sim_train: np.ndarray | None, z_train: np.ndarray,
                      sim: np.ndarray) -> np.ndarray:
    """Weighted mean of standardised training rewards, weights softmax(cosine / temperature), from
    the tasks' cosines ``sim`` [tasks, training tasks] (``sim_train`` unused); temperature inf
    gives uniform weights (the best fixed configuration on standardised rewards)."""
    if np.isinf(temperature):
        w = np.ones(sim.shape)
    else:
        s = sim / temperature
        w = np.exp(s - s.max(axis=1, keepdims=True))
    return (w / w.sum(axis=1, keepdims=True)) @ z_train


# Most conservative first (uniform weights), then ever sharper kernels on cosine similarity.
SIMILARITY_TEMPERATURES = (float("inf"), 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)


class SimilarityTransfer(Predictor):
    name = "similarity"
    # score -> P(bit) temperature, in units of the task's score spread over configurations
    boltzmann_temperature = 0.25

    def __init__(self, temperatures: Sequence[float] = SIMILARITY_TEMPERATURES, targets: str = "centre"):
        self.temperatures = tuple(float(t) for t in temperatures)
        self.targets = targets

    def fit(self, emb, rewards, space, seed=0):
        self.space = space
        self.emb, self.z = emb, TARGETS[self.targets](rewards)
        self.temperature = _loo_choose(self.temperatures, emb @ emb.T, rewards, self.z, similarity_scores)
        return self

    def scores(self, emb: np.ndarray) -> np.ndarray:
        return similarity_scores(self.temperature, None, self.z, emb @ self.emb.T)

    def predict(self, emb):
        s = self.scores(emb)
        return Prediction(s.argmax(axis=1), boltzmann_bits(self.space, s, self.boltzmann_temperature), "boltzmann")

    def describe(self):
        return {"temperature": self.temperature}


def knn_scores(k: float, sim_train: np.ndarray | None, z_train: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """Plain mean of the standardised rewards of the k training tasks most cosine-similar to each
    task (cosines ``sim`` [tasks, training tasks]; ``sim_train`` unused; k = inf: all of them, the
    best fixed configuration on standardised rewards)."""
    if np.isinf(k) or k >= len(z_train):
        return np.repeat(z_train.mean(axis=0, keepdims=True), len(sim), axis=0)
    near = np.argsort(-sim, axis=1, kind="stable")[:, :int(k)]
    return z_train[near].mean(axis=1)


class KnnTransfer(SimilarityTransfer):
    """``similarity`` with the k nearest training tasks weighted equally instead of a softmax
    kernel; k from {all, 8, 5, 3, 2, 1} by leave-one-out over the training tasks."""

    name = "similarity_knn"

    def __init__(self, ks: Sequence[float] = (float("inf"), 8, 5, 3, 2, 1), targets: str = "centre"):
        super().__init__(ks, targets)

    def fit(self, emb, rewards, space, seed=0):
        self.space = space
        self.emb, self.z = emb, TARGETS[self.targets](rewards)
        self.temperature = _loo_choose(self.temperatures, emb @ emb.T, rewards, self.z, knn_scores)
        return self

    def scores(self, emb):
        return knn_scores(self.temperature, None, self.z, emb @ self.emb.T)

    def describe(self):
        return {"k": self.temperature}


def bit_features(space: ConfigSpace, interactions: bool = True) -> np.ndarray:
    """[C, M + M(M-1)/2] bit main effects and pairwise interactions, as +-1 codes (``interactions``
    False: [C, M] main effects only)."""
    a = 2.0 * space.actions() - 1.0
    if not interactions:
        return a
    pairs = [a[:, i] * a[:, j] for i, j in itertools.combinations(range(space.n_heads), 2)]
    return np.column_stack([a] + pairs) if pairs else a


def smooth_surfaces(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each task's rewards [n, C] as ridge coefficients [n, 1 + p] on the bit features [C, p]."""
    smooth = Ridge(alpha=1.0).fit(features, targets.T)
    # one training task: sklearn returns a scalar intercept and 1-D coefficients
    return np.column_stack([np.atleast_1d(smooth.intercept_), np.atleast_2d(smooth.coef_)])


def _reward_model_scores(params: tuple[float, float], sim_train: np.ndarray, coef: np.ndarray,
                         sim: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Shared surface + kernel ridge over tasks of each task's deviation from it (both in the
    smoothed bit-feature space ``coef``), from the cosines among the training tasks
    (``sim_train``) and of the tasks to them (``sim``): see ``RewardModel``."""
    temperature, alpha = params
    shared = coef.mean(axis=0)

    def kernel(cosine):
        return np.exp((cosine - 1.0) / temperature)

    # kernel ridge regression (precomputed kernel): dual coefficients (K + alpha I)^-1 Y
    k_train = kernel(sim_train)
    dual = np.linalg.solve(k_train + alpha * np.eye(len(k_train)), coef - shared)
    pred = shared + kernel(sim) @ dual
    return pred[:, :1] + pred[:, 1:] @ features.T


REWARD_MODEL_GRID = tuple((t, a) for a in (10.0, 1.0, 0.1) for t in (0.5, 0.2, 0.1, 0.05))


class RewardModel(Predictor):
    """z(task, config) = (shared + task-specific) coefficients . bit features(config).

    Each training task's standardised rewards are smoothed by ridge regression on bit main effects
    and pairwise interactions; the coefficients' mean over training tasks is the shared surface,
    and kernel ridge regression on an RBF-like kernel of Task2Vec cosine similarity predicts a new
    task's deviation from it (large ridge penalty: back to the shared surface). The kernel's
    temperature and the penalty are chosen by leave-one-out on the training tasks.
    """

    name = "reward_model"
    boltzmann_temperature = 0.25

    def __init__(self, grid: Sequence[tuple[float, float]] = REWARD_MODEL_GRID, targets: str = "centre",
                 interactions: bool = True):
        self.grid = tuple(grid)
        self.targets = targets
        self.interactions = interactions

    def fit(self, emb, rewards, space, seed=0):
        self.space = space
        self.features = bit_features(space, self.interactions)
        # Smoothing is per task, so it is done once, outside the leave-one-out loop.
        self.emb, self.coef = emb, smooth_surfaces(self.features, TARGETS[self.targets](rewards))
        self.gram = emb @ emb.T  # the training tasks' cosines: the kernel of every fit and prediction

        def scores_for(g, sim_train, c_tr, sim):
            return _reward_model_scores(g, sim_train, c_tr, sim, self.features)

        self.params = _loo_choose(self.grid, self.gram, rewards, self.coef, scores_for)
        return self

    def scores(self, emb: np.ndarray) -> np.ndarray:
        return _reward_model_scores(self.params, self.gram, self.coef, emb @ self.emb.T, self.features)

    def predict(self, emb):
        s = self.scores(emb)
        return Prediction(s.argmax(axis=1), boltzmann_bits(self.space, s, self.boltzmann_temperature), "boltzmann")

    def describe(self):
        return {"temperature": self.params[0], "ridge_alpha": self.params[1]}


class Ensemble(Predictor):
    """Mean of the member scores, each standardised across configurations."""

    name = "ensemble"
    boltzmann_temperature = 0.25

    def __init__(self, members: Sequence[Predictor] | None = None):
        self.members = list(members) if members is not None else [SimilarityTransfer(), RewardModel()]

    def fit(self, emb, rewards, space, seed=0):
        self.space = space
        for m in self.members:
            m.fit(emb, rewards, space, seed)
        return self

    def scores(self, emb: np.ndarray) -> np.ndarray:
        return np.mean([standardise_rows(m.scores(emb)) for m in self.members], axis=0)

    def predict(self, emb):
        s = self.scores(emb)
        return Prediction(s.argmax(axis=1), boltzmann_bits(self.space, s, self.boltzmann_temperature), "boltzmann")

    def describe(self):
        return {m.name: m.describe() for m in self.members}


class _TunedRule(Predictor):
    """A decision rule over a base predictor's scores and the training tasks' mean rewards, with one
    parameter chosen by inner leave-one-out over the training tasks (the base refitted on each
    inner fold, hyper-parameter search included). Grids run from the most conservative value
    (the best fixed configuration) onwards; ties go to the more conservative one."""

    grid: tuple[float, ...] = ()

    def __init__(self, base: Callable[[], Predictor], name: str):
        self.base_factory, self.name = base, name

    def decide(self, param: float, scores: np.ndarray, mean_reward: np.ndarray) -> int:
        raise NotImplementedError

    def fit(self, emb, rewards, space, seed=0):
        self.space = space
        self.base = self.base_factory().fit(emb, rewards, space, seed)
        self.mean_reward = rewards.mean(axis=0)
        n = len(emb)
        self.param = self.grid[0]
        if n >= 3:
            folds = []
            for i in range(n):
                keep = np.arange(n) != i
                b = self.base_factory().fit(emb[keep], rewards[keep], space, seed)
                folds.append((b.scores(emb[i:i + 1])[0], rewards[keep].mean(axis=0), rewards[i]))
            best = -np.inf
            for g in self.grid:
                total = sum(r[self.decide(g, sc, mr)] for sc, mr, r in folds)
                if total > best + 1e-9:
                    self.param, best = g, total
        return self

    def predict(self, emb):
        s = self.base.scores(emb)
        config = np.array([self.decide(self.param, row, self.mean_reward) for row in s])
        return Prediction(config, indicator_bits(self.space, config), "indicator")

    def describe(self):
        return {"param": self.param, "base": self.base.describe()}


class Gated(_TunedRule):
    """The best fixed configuration, unless the base predictor's top configuration beats it by more
    than tau times the spread (sd over configurations) of the base's scores for the task."""

    grid = (float("inf"), 2.0, 1.0, 0.5, 0.25, 0.0)

    def decide(self, tau, scores, mean_reward):
        fixed, top = int(np.argmax(mean_reward)), int(np.argmax(scores))
        sd = scores.std()
        return top if scores[top] - scores[fixed] > tau * (sd if sd > 0 else 1.0) else fixed

    def describe(self):
        return {"tau": self.param, "base": self.base.describe()}


class Shortlist(_TunedRule):
    """The base predictor chooses only among the K configurations with the best mean reward over
    the training tasks (K = 1: best_fixed)."""

    grid = (1, 2, 4, 8, 16, 32)

    def decide(self, k, scores, mean_reward):
        short = np.argsort(-mean_reward, kind="stable")[:int(k)]
        return int(short[np.argmax(scores[short])])

    def describe(self):
        return {"k": self.param, "base": self.base.describe()}


class CentredEmbedding(Predictor):
    """A base predictor on Task2Vec centred on the training tasks' mean (then L2-normalised again),
    so that cosine similarity measures how tasks differ from the typical task rather than the
    direction all Fisher embeddings share."""

    def __init__(self, base: Callable[[], Predictor], name: str):
        self.base_factory, self.name = base, name

    def _t(self, emb):
        return l2_normalise(emb - self.centre)

    def fit(self, emb, rewards, space, seed=0):
        self.space, self.centre = space, emb.mean(axis=0)
        self.base = self.base_factory().fit(self._t(emb), rewards, space, seed)
        return self

    def scores(self, emb):
        return self.base.scores(self._t(emb))

    def predict(self, emb):
        return self.base.predict(self._t(emb))

    def describe(self):
        return self.base.describe()


@dataclass
class PredictorOptions:
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    targets: str = "centre"


ADAPTIVE = ("similarity", "reward_model", "ensemble")
# Variants of the search for a default (docs/policy.md, "Search for a better default"): the
# adaptive predictors with other targets, gated or shortlisted towards best_fixed, or on centred
# Task2Vec.
VARIANTS = tuple([f"{b}_{t}" for t in ("zscore", "rank", "top") for b in ADAPTIVE]
                 + [f"{w}_{b}" for w in ("gated", "shortlist") for b in ADAPTIVE]
                 + [f"{b}_centred" for b in ADAPTIVE]
                 # round 2, added after round 1's numbers (docs/policy.md)
                 + ["reward_model_main", "gated_reward_model_main", "similarity_knn"])
# The fixed rules: one configuration for every task, chosen from the training tasks' rewards.
FIXED_RULES = ("best_fixed", "best_fixed_z")
PREDICTORS = ("task2sim",) + ADAPTIVE + VARIANTS + FIXED_RULES + ("all_on", "all_off", "random", "oracle")


def _adaptive(base: str, targets: str) -> Predictor:
    if base == "similarity":
        return SimilarityTransfer(targets=targets)
    if base == "reward_model":
        return RewardModel(targets=targets)
    return Ensemble([SimilarityTransfer(targets=targets), RewardModel(targets=targets)])


def _named(p: Predictor, name: str) -> Predictor:
    p.name = name
    return p


def make_predictor(name: str, options: PredictorOptions | None = None) -> Predictor:
    options = options or PredictorOptions()
    factories: dict[str, Callable[[], Predictor]] = {
        "task2sim": lambda: Task2SimPredictor(options.controller),
        "best_fixed": BestFixed, "best_fixed_z": BestFixedZ,
        "all_on": AllOn, "all_off": AllOff, "random": RandomConfig, "oracle": Oracle,
    }
    for b in ADAPTIVE:
        factories[b] = lambda b=b: _adaptive(b, options.targets)
        for t in ("zscore", "rank", "top"):
            factories[f"{b}_{t}"] = lambda b=b, t=t: _named(_adaptive(b, t), f"{b}_{t}")
        factories[f"gated_{b}"] = lambda b=b: Gated(lambda: _adaptive(b, options.targets), f"gated_{b}")
        factories[f"shortlist_{b}"] = lambda b=b: Shortlist(lambda: _adaptive(b, options.targets), f"shortlist_{b}")
        factories[f"{b}_centred"] = lambda b=b: CentredEmbedding(lambda: _adaptive(b, options.targets),
                                                                 f"{b}_centred")
    factories["reward_model_main"] = lambda: _named(RewardModel(targets=options.targets, interactions=False),
                                                    "reward_model_main")
    factories["gated_reward_model_main"] = lambda: Gated(
        lambda: RewardModel(targets=options.targets, interactions=False), "gated_reward_model_main")
    factories["similarity_knn"] = lambda: KnnTransfer(targets=options.targets)
    if name not in factories:
        raise ValueError(f"unknown predictor {name!r} (known: {', '.join(PREDICTORS)})")
    return factories[name]()
