"""A reward table as a dense matrix over the varied bits, and Task2Vec embeddings by task.

The controller samples any of the 2^M configurations of the varied bits, so every task it trains
on needs a reward for all of them: ``RewardMatrix.from_table`` checks that and says which task
misses which configuration.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bits import BIT_NAMES, N_BITS, configs_for
from ..errors import Task2SimError


class PolicyInputError(Task2SimError, ValueError):
    """A reward table or Task2Vec file cannot feed the policy stage; the message names it."""


@dataclass(frozen=True)
class ConfigSpace:
    """The 2^M configurations of ``vary_bits`` in binary counting order (first varied bit most
    significant), so head actions a_0..a_{M-1} index column sum_h a_h 2^(M-1-h)."""

    vary_bits: tuple[int, ...]

    @property
    def n_heads(self) -> int:
        return len(self.vary_bits)

    @property
    def configs(self) -> list[str]:
        return configs_for(self.vary_bits)

    @property
    def bit_names(self) -> list[str]:
        return [BIT_NAMES[b] for b in self.vary_bits]

    def actions(self) -> np.ndarray:
        """[C, M] int: the head actions (bit values) of every configuration."""
        m = self.n_heads
        idx = np.arange(2 ** m)
        return ((idx[:, None] >> (m - 1 - np.arange(m))[None, :]) & 1).astype(np.int64)

    def index_of(self, actions: np.ndarray) -> np.ndarray:
        """[..., M] bit values -> [...] configuration index."""
        weights = 2 ** (self.n_heads - 1 - np.arange(self.n_heads))
        return (np.asarray(actions) * weights).sum(-1)

    def p_bits(self, probs: np.ndarray) -> np.ndarray:
        """A distribution over configurations [..., C] -> marginal P(bit = 1) [..., M]."""
        return np.asarray(probs) @ self.actions().astype(float)

    @classmethod
    def from_configs(cls, configs: Iterable[str]) -> ConfigSpace:
        configs = sorted(set(configs))
        vary = tuple(b for b in range(N_BITS) if len({c[b] for c in configs}) > 1)
        if not vary:
            raise PolicyInputError("the reward table has a single configuration: nothing to choose")
        return cls(vary)


@dataclass
class RewardMatrix:
    """``values[i, j]``: reward (%) of configuration ``space.configs[j]`` on task ``tasks[i]``."""

    tasks: list[str]
    space: ConfigSpace
    values: np.ndarray

    @classmethod
    def from_table(cls, table: Mapping[str, Mapping[str, float]], source: str = "reward table") -> RewardMatrix:
        if not table:
            raise PolicyInputError(f"{source}: no tasks")
        space = ConfigSpace.from_configs(b for row in table.values() for b in row)
        configs = space.configs
        values = np.empty((len(table), len(configs)))
        for i, (task, row) in enumerate(table.items()):
            missing = [c for c in configs if c not in row]
            if missing:
                raise PolicyInputError(f"{source}: task {task!r} has no reward for configuration {missing[0]}"
                                       f" ({len(missing)} of {len(configs)} missing)")
            values[i] = [row[c] for c in configs]
        if not np.isfinite(values).all():
            i, j = np.argwhere(~np.isfinite(values))[0]
            raise PolicyInputError(f"{source}: non-finite reward {values[i, j]} for task {list(table)[i]!r}, "
                                   f"configuration {configs[j]}")
        return cls(list(table), space, values)

    def rows(self, tasks: Sequence[str]) -> np.ndarray:
        pos = {t: i for i, t in enumerate(self.tasks)}
        return self.values[[pos[t] for t in tasks]]


def centre_rows(values: np.ndarray) -> np.ndarray:
    """Per-task deviations from the task's mean over configurations, in reward units: tasks
    differ in difficulty, and a flat task's differences (mostly noise) stay small."""
    return values - values.mean(axis=1, keepdims=True)


def standardise_rows(values: np.ndarray) -> np.ndarray:
    """Per-task z-scores across configurations: tasks differ in difficulty and spread, and only
    the ranking within a task says which configuration to pick."""
    sd = values.std(axis=1, keepdims=True)
    return (values - values.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def load_task2vec(paths: Sequence[str | os.PathLike]) -> dict[str, np.ndarray]:
    """Raw (not normalised) Task2Vec embeddings by task from ``.npz`` files.

    Two layouts: ours, ``results/task2vec/{task}.npz`` with ``embedding`` (the task is the file
    stem); and the published one, several tasks per file as ``<task>/hessian`` and
    ``<task>/scale`` (embedding = hessian / scale). All embeddings must have one dimension.
    """
    out: dict[str, np.ndarray] = {}
    where: dict[str, str] = {}
    for p in paths:
        p = Path(p)
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k]) for k in z.files}
        except (OSError, ValueError) as e:
            raise PolicyInputError(f"{p}: cannot read Task2Vec npz ({e})") from None
        found: dict[str, np.ndarray] = {}
        if "embedding" in arrays:
            found[p.stem] = arrays["embedding"]
        else:
            for key, arr in arrays.items():
                task, _, kind = key.rpartition("/")
                if kind == "hessian":
                    scale = arrays.get(f"{task}/scale", np.ones_like(arr))
                    found[task] = arr / scale
        if not found:
            raise PolicyInputError(f"{p}: no 'embedding' array and no '<task>/hessian' arrays")
        for task, emb in found.items():
            emb = np.asarray(emb, dtype=np.float64).reshape(-1)
            if not np.isfinite(emb).all():
                raise PolicyInputError(f"{p}: Task2Vec of {task!r} is not finite")
            if task in out:
                raise PolicyInputError(f"{p}: task {task!r} already read from {where[task]}")
            if out:
                first = next(iter(out))
                if emb.shape != out[first].shape:
                    raise PolicyInputError(f"{p}: Task2Vec of {task!r} has dimension {emb.size}, but {first!r}"
                                           f" ({where[first]}) has {out[first].size}")
            out[task] = emb
            where[task] = str(p)
    return out
