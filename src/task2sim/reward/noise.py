"""How much of a reward table is signal: the seed-to-seed noise of a reward beside its spread.

A reward (5-NN accuracy of a backbone on a task) depends on the render and pre-training seed as
well as on the configuration. ``reward_noise`` takes the run's rewards (every configuration at the
run's seed), the table's other seeds (``table_repeats``: every configuration again, reward.seeds;
the table's cell is the mean over the run and these) and repeated runs of a few configurations at
other seeds (``repeats``, noise.seeds), and gives per task:

- ``seed_sd``: the pooled within-configuration standard deviation of one reward over seeds,
  sqrt(sum_c sum_s (r_cs - mean_c)^2 / sum_c (n_c - 1)) over the configurations c seen at two or
  more seeds;
- ``cell_sd``: the standard deviation of one table cell, seed_sd / sqrt(n) for a cell that is the
  mean of n seeds;
- ``spread``: max - min of the task's table cells over all configurations;
- ``ratio``: spread / cell_sd;
- ``dof``: the degrees of freedom of ``seed_sd`` (sum_c (n_c - 1));
- ``p_value``: the chance that pure noise (every configuration equally good) gives a ratio at least
  this large: the upper tail of the studentized range distribution for ``k`` = the task's number of
  configurations and ``dof`` (``scipy.stats.studentized_range``). A fixed bar on the ratio means
  little: for 16 configurations and 4 dof pure noise has a median ratio of 3.8 and a 95 % point
  of 8.8, so "ratio >= 4" passes about half of pure-noise tasks, while ``p_value < 0.05`` passes 5 %.
  (The table's value of a repeated configuration also enters ``seed_sd``, so spread and sd are not
  quite independent; with many configurations and few repeated ones the effect is small.)

``ties`` marks, per task, the configurations whose cell is within 2 cell_sd of the task's best:
the table cannot tell them apart from the best.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Mapping

from ..io import write_tsv
from .table import RewardTableError, Table

COLUMNS = ("task", "seed_sd", "cell_sd", "spread", "ratio", "dof", "p_value", "configs", "seeds", "cell_seeds")
SIGNAL_P = 0.05  # a task's spread is signal when pure noise would reach it less often than this


def reward_noise(table: Mapping[str, Mapping[str, float]],
                 repeats: Mapping[str, Mapping[str, Mapping[str, float]]],
                 table_repeats: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
                 ) -> dict[str, dict[str, float]]:
    """``table``: {task: {bits: reward}} at the run's seed; ``repeats``: {seed: {bits: {task:
    reward}}} of the repeated configurations at other seeds; ``table_repeats``: the same for the
    table's other seeds (every configuration of ``table``). Returns {task: {seed_sd, cell_sd,
    spread, ratio, dof, p_value, configs, seeds, cell_seeds}}."""
    table_repeats = table_repeats or {}
    runs = {**table_repeats, **repeats}
    if not runs:
        raise RewardTableError("reward noise needs at least one repeated run at another seed")
    out = {}
    for task, row in table.items():
        cells = {}
        for bits, v in row.items():
            try:
                cells[bits] = [v] + [rep[bits][task] for rep in table_repeats.values()]
            except KeyError:
                raise RewardTableError(f"task {task}: configuration {bits} is missing from a table seed") from None
        ss, dof, configs = 0.0, 0, set()
        for bits in sorted({b for rep in runs.values() for b in rep}):
            if bits not in row:
                raise RewardTableError(f"repeated configuration {bits} is not in the table for task {task}")
            values = [row[bits]] + [rep[bits][task] for rep in runs.values() if bits in rep and task in rep[bits]]
            if len(values) < 2:
                continue
            mean = sum(values) / len(values)
            ss += sum((v - mean) ** 2 for v in values)
            dof += len(values) - 1
            configs.add(bits)
        if dof == 0:
            raise RewardTableError(f"task {task}: no configuration was repeated at another seed")
        n = 1 + len(table_repeats)
        sd = math.sqrt(ss / dof)
        means = [sum(v) / n for v in cells.values()]
        spread = max(means) - min(means)
        ratio = spread / (sd / math.sqrt(n)) if sd > 0 else math.inf
        out[task] = {"seed_sd": sd, "cell_sd": sd / math.sqrt(n), "spread": spread, "ratio": ratio, "dof": dof,
                     "p_value": noise_p_value(ratio, len(row), dof),
                     "configs": len(configs), "seeds": len(runs) + 1, "cell_seeds": n}
    return out


def noise_p_value(ratio: float, k: int, dof: int) -> float:
    """P(range / s >= ratio) for ``k`` draws of pure noise, ``s`` an sd estimate with ``dof``
    degrees of freedom (the studentized range distribution)."""
    if k < 2:
        return 1.0
    if math.isinf(ratio):
        return 0.0
    from scipy.stats import studentized_range

    return float(studentized_range.sf(ratio, k, dof))


def ties(table: Mapping[str, Mapping[str, float]], noise: Mapping[str, Mapping[str, float]],
         within_sd: float = 2.0) -> dict[str, set[str]]:
    """Per task, the configurations within ``within_sd`` seed standard deviations of its best."""
    out = {}
    for task, row in table.items():
        best = max(row.values())
        margin = within_sd * noise[task]["cell_sd"] if task in noise else 0.0
        out[task] = {b for b, v in row.items() if best - v <= margin}
    return out


def write_noise_tsv(noise: Mapping[str, Mapping[str, float]], path: str | os.PathLike) -> None:
    write_tsv(path, COLUMNS, [{**r, "task": task, "seed_sd": f"{r['seed_sd']:.4f}",
                               "cell_sd": f"{r['cell_sd']:.4f}", "spread": f"{r['spread']:.4f}",
                               "ratio": f"{r['ratio']:.3f}", "p_value": f"{r['p_value']:.2e}"}
                              for task, r in noise.items()])


def read_noise_tsv(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        return {r["task"]: {"seed_sd": float(r["seed_sd"]), "cell_sd": float(r["cell_sd"]),
                            "spread": float(r["spread"]), "ratio": float(r["ratio"]), "dof": int(r["dof"]),
                            "p_value": float(r["p_value"]), "configs": int(r["configs"]), "seeds": int(r["seeds"]),
                            "cell_seeds": int(r["cell_seeds"])}
                for r in rows}
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise RewardTableError(f"{path}: not a noise table ({e})") from None


Noise = dict[str, dict[str, float]]
__all__ = ["COLUMNS", "SIGNAL_P", "Noise", "Table", "noise_p_value", "read_noise_tsv", "reward_noise", "ties",
           "write_noise_tsv"]
