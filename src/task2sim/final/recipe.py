"""The fine-tune recipe (docs/study.md, "The fine-tune recipe"): one training recipe for every
pre-trained row and one for Scratch, each the grid point of best mean validation top-1 over a few
seen tasks, at a seed the comparison is never scored on.

The scoring jobs (``final score`` with a grid under ``evaluate.finetune`` or ``evaluate.scratch``)
record each task's validation top-1 at every grid point in their provenance record
(``extra.rows[].grid``); this module reads those records, averages each grid point over the tasks
and takes the best. Only validation scores enter: the test top-1 of the score files is never read
here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import FinalError

# A grid point's keys as train.evaluate records them, and the config keys of evaluate.{finetune,scratch}.
POINT_KEYS = ("epochs", "lr", "weight_decay", "batch_size")
CONFIG_KEYS = {"epochs": "epochs", "lr": "lrs", "weight_decay": "weight_decays", "batch_size": "batch_sizes"}
GRID_COLUMNS = ("section", "source", "task", *POINT_KEYS, "val_top1")


def section_of(source: str) -> str:
    """The evaluate section a backbone's fine-tune recipe lives in: Scratch's, or every pre-trained row's."""
    return "scratch" if source == "scratch" else "finetune"


def grid_rows(records: Sequence[Mapping[str, Any]], where: Sequence[str | os.PathLike] = ()) -> list[dict[str, Any]]:
    """One row per (backbone, task, grid point) of the fine-tunes in score provenance records:
    section, source, task, epochs, lr, weight_decay, batch_size, val_top1."""
    rows: list[dict[str, Any]] = []
    for i, rec in enumerate(records):
        name = str(where[i]) if i < len(where) else f"record {i}"
        tunes = [r for r in (rec.get("extra") or {}).get("rows", []) if r.get("evaluation") == "finetune"]
        if not tunes:
            raise FinalError(f"{name}: no fine-tune rows (a recipe needs final score with evaluations [finetune])")
        for r in tunes:
            if not r.get("grid"):
                raise FinalError(f"{name}: {r['source']} on {r['task']}: a one-point grid, nothing was chosen on "
                                 "validation (give evaluate.recipe.grid several points)")
            for g in r["grid"]:
                rows.append({"section": section_of(r["source"]), "source": r["source"], "task": r["task"],
                             **{k: g[k] for k in POINT_KEYS}, "val_top1": round(float(g["val_top1"]), 4)})
    return rows


def _point(row: Mapping[str, Any]) -> tuple:
    return tuple(row[k] for k in POINT_KEYS)


def recipe_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """{section: [grid point + mean val_top1 over the tasks + n_tasks], in grid order}. Every
    point of a section must be scored on the same tasks (else the means would not compare)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for section in dict.fromkeys(r["section"] for r in rows):
        sec = [r for r in rows if r["section"] == section]
        by_point: dict[tuple, dict[str, float]] = {}
        for r in sec:
            tasks = by_point.setdefault(_point(r), {})
            if r["task"] in tasks:
                raise FinalError(f"{section}: task {r['task']!r} scored twice at grid point {_point(r)}")
            tasks[r["task"]] = r["val_top1"]
        task_sets = {frozenset(t) for t in by_point.values()}
        if len(task_sets) > 1:
            raise FinalError(f"{section}: the grid points are not scored on the same tasks")
        # fsum and rounding: a mean that does not depend on the order of its tasks, so that equal
        # means are equal and the grid's order breaks the tie
        out[section] = [{**dict(zip(POINT_KEYS, p)), "val_top1": round(math.fsum(t.values()) / len(t), 6),
                         "n_tasks": len(t)} for p, t in by_point.items()]
    return out


def choose_recipe(means: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The best point of one section's ``recipe_means`` (the first of equals, in grid order: list
    epochs shortest first), and ``edges``: each key of three or more values whose chosen value is
    the grid's largest or smallest, a sign that the grid may be too narrow (60 epochs winning over
    15 and 30 says that 60 is the longest tried, not that training has converged; with two
    values every choice is an end, which says nothing)."""
    best = max(means, key=lambda m: m["val_top1"])
    edges = []
    for k in POINT_KEYS:
        values = sorted({m[k] for m in means})
        if len(values) > 2 and best[k] in (values[0], values[-1]):
            edges.append(f"{k} {best[k]} is the grid's {'largest' if best[k] == values[-1] else 'smallest'}")
    return {"point": {k: best[k] for k in POINT_KEYS}, "val_top1": best["val_top1"], "n_tasks": best["n_tasks"],
            "edges": edges}


def recipe_config(chosen: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The chosen recipes as the config's evaluate section ({section: one-point grid})."""
    return {"evaluate": {s: {CONFIG_KEYS[k]: (c["point"][k] if k == "epochs" else [c["point"][k]])
                             for k in POINT_KEYS} for s, c in chosen.items()}}


def _fmt_point(p: Mapping[str, Any], full: bool = True) -> str:
    return f"{p['epochs']} ep, lr {p['lr']:g}" + (f", wd {p['weight_decay']:g}, bs {p['batch_size']}" if full else "")


def recipe_markdown(rows: Sequence[Mapping[str, Any]], means: Mapping[str, Sequence[Mapping[str, Any]]],
                    chosen: Mapping[str, Mapping[str, Any]], seed: int | str, yaml_text: str) -> str:
    """summary.md: every task's validation top-1 at every grid point, the means, the choice."""
    names = {"finetune": "pre-trained rows (evaluate.finetune)", "scratch": "Scratch (evaluate.scratch)"}
    lines = ["# The fine-tune recipe", "",
             f"Validation top-1 (held out from each task's training split) of every grid point, at seed {seed}; "
             "the test split is not read. Each section's recipe is the point of best mean over its tasks "
             "(docs/study.md, \"The fine-tune recipe\").", ""]
    for section, ms in means.items():
        points = [_point(m) for m in ms]
        sources = sorted({r["source"] for r in rows if r["section"] == section})
        full = len({(m["weight_decay"], m["batch_size"]) for m in ms}) > 1
        lines += [f"## {names[section]}: backbone {', '.join(sources)}", "",
                  "| task | " + " | ".join(_fmt_point(m, full) for m in ms) + " |",
                  "|---|" + "---|" * len(ms)]
        tasks = list(dict.fromkeys(r["task"] for r in rows if r["section"] == section))
        val = {(r["task"], _point(r)): r["val_top1"] for r in rows if r["section"] == section}
        best_row = {t: max(points, key=lambda p: val[(t, p)]) for t in tasks}
        for t in tasks:
            lines.append(f"| {t} | " + " | ".join(
                (f"**{val[(t, p)]:.2f}**" if p == best_row[t] else f"{val[(t, p)]:.2f}") for p in points) + " |")
        c = chosen[section]
        lines.append(f"| mean of {c['n_tasks']} | " + " | ".join(
            (f"**{m['val_top1']:.2f}**" if _point(m) == _point(c["point"]) else f"{m['val_top1']:.2f}")
            for m in ms) + " |")
        lines += ["", f"Chosen: **{_fmt_point(c['point'])}** (mean validation top-1 {c['val_top1']:.2f}); "
                  f"it wins on {sum(best_row[t] == _point(c['point']) for t in tasks)} of {len(tasks)} tasks.", ""]
        if c["edges"]:
            lines += [f"At the edge of the grid: {'; '.join(c['edges'])}. A wider grid may do better.", ""]
    lines += ["## As config", "", "Merged over a study's config (`--configfile ... results/final/recipe/recipe.yaml`)"
              " it fine-tunes with these recipes:", "", "```yaml", yaml_text.rstrip(), "```", ""]
    return "\n".join(lines)


def plot_recipe(means: Mapping[str, Sequence[Mapping[str, Any]]], chosen: Mapping[str, Mapping[str, Any]],
                path: str | os.PathLike, title: str) -> Path:
    """Mean validation top-1 against epochs, one line per (section, learning rate); the chosen
    points ringed."""
    from matplotlib.figure import Figure

    from ..figures import finish_axes

    fig = Figure(figsize=(5.8, 3.8))
    ax = fig.subplots()
    styles = {"finetune": ("-", "o", "pre-trained"), "scratch": ("--", "s", "Scratch")}
    for section, ms in means.items():
        line, marker, label = styles[section]
        others = sorted({(m["weight_decay"], m["batch_size"]) for m in ms})
        for lr in sorted({m["lr"] for m in ms}):
            for wd, bs in others:
                pts = sorted((m["epochs"], m["val_top1"]) for m in ms
                             if (m["lr"], m["weight_decay"], m["batch_size"]) == (lr, wd, bs))
                extra = f", wd {wd:g}, bs {bs}" if len(others) > 1 else ""
                x, y = zip(*pts)
                ax.plot(x, y, line, marker=marker, label=f"{label}, lr {lr:g}{extra}")
        c = chosen[section]
        ax.plot([c["point"]["epochs"]], [c["val_top1"]], "o", ms=14, mfc="none", mec="black")
    ax.set_xticks(sorted({m["epochs"] for ms in means.values() for m in ms}))
    return finish_axes(fig, ax, "fine-tuning epochs", "validation top-1 (%), mean over tasks", title, path)
