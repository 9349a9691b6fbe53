"""Reward tables: our ``table.tsv`` and the published Task2Sim ``reward_db.json`` layout.

In memory a reward table is ``{task: {bits: reward_percent}}`` with our 8-character config strings
(``task2sim.bits``). The published file (released with the Task2Sim code) keys each config by 9
underscore-joined fields in alphabetical order of the original parameter names::

    backgr _ blur _ lighting_color _ lighting_dir _ lighting_intensity _ materials _ pose_cam _ pose_rot _ pose_scale

with ``materials`` 1 (natural) / 3 (random per part) for our bit 0 / 1 and ``pose_cam`` always 0.
Reading and writing it lets the controller train on the published 20 x 256 table, and lets our
tables be compared with it.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from ..bits import N_BITS, validate_bits
from ..io import atomic_path, write_tsv

PUBLISHED_FIELDS = ("backgr", "blur", "lighting_color", "lighting_dir", "lighting_intensity",
                    "materials", "pose_cam", "pose_rot", "pose_scale")
# Our bit index of each published field (pose_cam has none).
_FIELD_BIT = {"pose_rot": 0, "pose_scale": 1, "lighting_intensity": 2, "lighting_color": 3,
              "lighting_dir": 4, "blur": 5, "backgr": 6, "materials": 7}

Table = dict[str, dict[str, float]]


class RewardTableError(ValueError):
    """A reward table file is malformed; the message names the file and the offending entry."""


def bits_to_key(bits: str) -> str:
    """``'10000001'`` (rotation + materials) -> ``'0_0_0_0_0_3_0_1_0'``."""
    flags = [int(c) for c in validate_bits(bits)]
    out = []
    for name in PUBLISHED_FIELDS:
        if name == "pose_cam":
            out.append("0")
        elif name == "materials":
            out.append(str(2 * flags[_FIELD_BIT[name]] + 1))
        else:
            out.append(str(flags[_FIELD_BIT[name]]))
    return "_".join(out)


def key_to_bits(key: str) -> str:
    """Inverse of ``bits_to_key``; raises ValueError on anything else."""
    parts = key.split("_")
    if len(parts) != len(PUBLISHED_FIELDS):
        raise ValueError(f"config key {key!r} must have {len(PUBLISHED_FIELDS)} fields")
    flags = [0] * N_BITS
    for name, v in zip(PUBLISHED_FIELDS, parts):
        if name == "pose_cam":
            if v != "0":
                raise ValueError(f"config key {key!r}: pose_cam must be 0")
        elif name == "materials":
            if v not in ("1", "3"):
                raise ValueError(f"config key {key!r}: materials must be 1 or 3")
            flags[_FIELD_BIT[name]] = (int(v) - 1) // 2
        else:
            if v not in ("0", "1"):
                raise ValueError(f"config key {key!r}: {name} must be 0 or 1")
            flags[_FIELD_BIT[name]] = int(v)
    return "".join(map(str, flags))


def read_reward_db(path: str | os.PathLike) -> Table:
    """Published ``reward_db.json`` -> ``{task: {bits: reward}}``."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RewardTableError(f"{path}: cannot read reward db ({e})") from None
    if not isinstance(raw, dict):
        raise RewardTableError(f"{path}: top level must be an object task -> {{config: reward}}")
    out: Table = {}
    for task, row in raw.items():
        if not isinstance(row, dict):
            raise RewardTableError(f"{path}: task {task!r} must map configs to rewards")
        try:
            out[task] = {key_to_bits(k): float(v) for k, v in row.items()}
        except (ValueError, TypeError) as e:
            raise RewardTableError(f"{path}: task {task!r}: {e}") from None
    return out


def write_reward_db(table: Mapping[str, Mapping[str, float]], path: str | os.PathLike) -> None:
    """``{task: {bits: reward}}`` -> the published JSON layout, atomically."""
    raw = {task: {bits_to_key(b): float(v) for b, v in row.items()} for task, row in table.items()}
    with atomic_path(path, suffix=".json.part") as tmp:
        tmp.write_text(json.dumps(raw, indent=4) + "\n")


TSV_COLUMNS = ("task", "bits", "knn5")


def write_table_tsv(table: Mapping[str, Mapping[str, float]], path: str | os.PathLike) -> None:
    """One row per (task, bits): columns ``task  bits  knn5`` (docs/FORMATS.md)."""
    write_tsv(path, TSV_COLUMNS, [{"task": task, "bits": validate_bits(bits), "knn5": f"{float(row[bits]):.4f}"}
                                  for task, row in table.items() for bits in sorted(row)])


def mean_table(tables: Sequence[Mapping[str, Mapping[str, float]]], names: Sequence[str]) -> Table:
    """Each cell of ``tables[0]`` (the run's seed) averaged with the same cell of every other table
    (reward.seeds: each a whole table at another seed; ``names`` label them in errors)."""
    first, others = tables[0], list(zip(tables[1:], names[1:]))
    out: Table = {}
    for task, row in first.items():
        out[task] = {}
        for bits, v in row.items():
            vals = [v]
            for other, name in others:
                if bits not in other.get(task, {}):
                    raise RewardTableError(f"{name}: no reward of {bits} on {task} (a table seed needs every cell)")
                vals.append(other[task][bits])
            out[task][bits] = sum(vals) / len(vals)
    return out


def read_table_tsv(path: str | os.PathLike) -> Table:
    path = Path(path)
    if not path.is_file():
        raise RewardTableError(f"{path}: no such reward table")
    out: Table = {}
    with open(path, newline="") as f:
        r = csv.DictReader(f, delimiter="\t")
        if tuple(r.fieldnames or ()) != TSV_COLUMNS:
            raise RewardTableError(f"{path}: columns must be {' '.join(TSV_COLUMNS)}, got {r.fieldnames}")
        for n, rec in enumerate(r, start=2):
            try:
                out.setdefault(rec["task"], {})[validate_bits(rec["bits"])] = float(rec["knn5"])
            except (ValueError, TypeError) as e:
                raise RewardTableError(f"{path}: line {n}: {e}") from None
    return out
