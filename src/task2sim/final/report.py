"""The comparison's tables and figures: per-method means over seeds and tasks, margins with their
intervals, per-task bars, the scaling curve."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import ALL_ON, CONFIG_METHODS, LABELS, METHODS, parse_budget
from .choose import picks

log = logging.getLogger(__name__)


def method_scores(choices: Sequence[Mapping[str, str]], scores: Mapping[tuple, float], budgets: Mapping[str, str],
                  evaluations: Sequence[str], ref_budget: str = "ref",
                  final_methods: Sequence[str] | None = None,
                  all_configs: Sequence[str] = ()) -> dict[tuple[str, str, str], dict[str, float]]:
    """{(budget label, evaluation, method): {task: top1}} for the tasks of the reward table.
    ``budgets``: label -> budget wildcard (e.g. {"reward": "reward", "final": "c32_i180"});
    scratch and imagenet are budget-free (scored once, under ``ref_budget``). A method with
    several configurations on a task (Random's draws) scores their mean, only where all are scored.
    ``final_methods``: the configuration methods pre-trained at a budget other than the reward
    one (final.final_budget_methods); any other method is left out there, even on the tasks where
    its pick happens to be another method's backbone (a partial, unplanned row). ``all_configs``:
    at the reward budget Random is the mean over all of them (the exact mean of a uniform draw)
    instead of over its draws."""
    rows = [c for c in choices if c["split"] != "new"]
    pick = picks(rows)
    tasks = list(dict.fromkeys(c["task"] for c in rows))
    out: dict[tuple[str, str, str], dict[str, float]] = {}
    for label, budget in budgets.items():
        for ev in evaluations:
            for m in METHODS:
                if budget != "reward" and final_methods is not None and m in CONFIG_METHODS \
                        and m not in final_methods:
                    continue
                per = {}
                for t in tasks:
                    if m in ("scratch", "imagenet"):
                        keys = [(ref_budget, m, t, ev)]
                    else:
                        exact = m == "random" and budget == "reward" and all_configs
                        keys = [(budget, b, t, ev) for b in (all_configs if exact else pick[(t, m)])]
                    if all(k in scores for k in keys):
                        per[t] = float(np.mean([scores[k] for k in keys]))
                if per:
                    out[(label, ev, m)] = per
    return out


def summary_rows(ms_by_seed: Mapping[Any, Mapping[tuple[str, str, str], Mapping[str, float]]],
                 splits: Mapping[str, str]) -> list[dict]:
    """One row per (budget, evaluation, method): seen and unseen means over the split's tasks, as
    the mean and sd over seeds (``ms_by_seed``: method_scores per evaluation seed), with the task
    and seed counts. A task counts where every seed has it."""
    runs = list(ms_by_seed.values())
    rows = []
    for key in runs[0]:
        if not all(key in ms for ms in runs):
            continue
        label, ev, m = key
        row = {"budget": label, "evaluation": ev, "method": m, "seeds": str(len(runs))}
        for split in ("seen", "unseen"):
            tasks = [t for t, sp in splits.items() if sp == split and all(t in ms[key] for ms in runs)]
            means = [float(np.mean([ms[key][t] for t in tasks])) for ms in runs] if tasks else []
            row[f"{split}_mean"] = f"{np.mean(means):.2f}" if means else ""
            row[f"{split}_sd"] = f"{np.std(means, ddof=1):.2f}" if len(means) > 1 else ""
            row[f"{split}_n"] = str(len(tasks))
        rows.append(row)
    return rows


SUMMARY_COLUMNS = ("budget", "evaluation", "method", "seeds", "seen_mean", "seen_sd", "seen_n", "unseen_mean",
                   "unseen_sd", "unseen_n")

# The headline margins: each configuration-choosing method of ours or the paper's against the
# fixed baselines and against Scratch (no pre-training: by 5-NN and linear probe random features,
# by fine-tune the network trained end to end; does synthetic pre-training pay at all?).
MARGIN_PAIRS = tuple((m, b) for m in ("task2sim", "measured")
                     for b in ("best_fixed", "best_fixed_z", "random", "domain_randomisation",
                               "domain_randomisation_all", "scratch"))


def margin_rows(ms_by_seed: Mapping[Any, Mapping[tuple[str, str, str], Mapping[str, float]]],
                splits: Mapping[str, str], pairs: Sequence[tuple[str, str]] = MARGIN_PAIRS,
                level: float = 0.95) -> list[dict[str, str]]:
    """Paired margins method - baseline per (budget, evaluation, split): d[seed, task] = the
    per-task difference on that seed's backbones, its mean with the ``level`` interval of
    ``task2sim.stats.crossed_interval`` (over seeds x tasks: a seed's backbones are shared by all
    its tasks; with one seed, Student's t over the tasks). Only where both methods have every task
    of the split on every seed. ``verdict``: ahead / behind when the interval excludes 0, else
    "not shown"."""
    from ..stats import crossed_interval

    runs = list(ms_by_seed.values())
    n_split = {k: sum(v == k for v in splits.values()) for k in ("seen", "unseen")}
    rows = []
    for label, ev in dict.fromkeys((lb, e) for lb, e, _ in runs[0]):
        for split in ("seen", "unseen"):
            for m, b in pairs:
                per = [(ms.get((label, ev, m), {}), ms.get((label, ev, b), {})) for ms in runs]
                tasks = [t for t, s in splits.items() if s == split and all(t in pm and t in pb for pm, pb in per)]
                if not tasks or len(tasks) < n_split[split]:
                    continue
                iv = crossed_interval([[pm[t] - pb[t] for t in tasks] for pm, pb in per], level)
                verdict = ("ahead" if iv.low > 0 else "behind" if iv.high < 0 else "not shown") if iv.n > 1 else \
                    "no interval (one task)"
                rows.append({"budget": label, "evaluation": ev, "split": split, "method": m, "baseline": b,
                             "mean": f"{iv.mean:+.2f}", "low": f"{iv.low:+.2f}", "high": f"{iv.high:+.2f}",
                             "seeds": str(len(runs)), "tasks": str(len(tasks)), "verdict": verdict})
    return rows


def mean_over_seeds(ms_by_seed: Mapping[Any, Mapping[tuple[str, str, str], Mapping[str, float]]]
                    ) -> dict[tuple[str, str, str], dict[str, float]]:
    """{(budget, evaluation, method): {task: mean over the seeds that all have it}} (the figures)."""
    runs = list(ms_by_seed.values())
    return {key: {t: float(np.mean([ms[key][t] for ms in runs])) for t in per if all(t in ms.get(key, {})
                                                                                   for ms in runs)}
            for key, per in runs[0].items()}


def _bold_best(values: dict[str, str], keys: Sequence[str], texts: Mapping[str, str] | None = None) -> dict[str, str]:
    """Cells with the best value (config methods and scratch; the ImageNet reference stands apart)
    in bold, where at least two compete (a column where only Scratch is scored has no best);
    ``texts``: what a cell shows (its value by default)."""
    texts = texts or values
    nums = {k: float(values[k]) for k in keys if values.get(k)}
    best = max(nums.values()) if len(nums) > 1 else None
    return {k: (f"**{texts[k]}**" if best is not None and k in nums and nums[k] == best else texts.get(k, ""))
            for k in values}


def _complete(row: Mapping[str, str], split: str, info: Mapping[str, Any]) -> str:
    """A split's mean only when every task of the split has a score (else no number: a mean over
    fewer tasks would not compare)."""
    return row.get(f"{split}_mean", "") if row.get(f"{split}_n") == str(info[f"n_{split}"]) else ""


def _with_sd(row: Mapping[str, str], split: str, info: Mapping[str, Any]) -> str:
    """The cell's text: its mean, and ± the sd over seeds when there are several."""
    mean = _complete(row, split, info)
    return f"{mean} ± {row[f'{split}_sd']}" if mean and row.get(f"{split}_sd") else mean


def summary_markdown(rows: Sequence[Mapping[str, str]], budgets: Mapping[str, str], evaluations: Sequence[str],
                     choices: Sequence[Mapping[str, str]], info: Mapping[str, Any]) -> str:
    """summary.md: one table per budget in the layout of the paper's Tables 2/3, the configurations
    chosen, and every place where Task2Sim loses to a baseline, by how much."""
    by = {(r["budget"], r["evaluation"], r["method"]): r for r in rows}
    lines = ["# Final comparison: Task2Sim against the baselines", "",
             (f"Top-1 accuracy (%) on the downstream test sets, averaged over the {info['n_seen']} seen and "
              f"{info['n_unseen']} unseen tasks of the reward table. Task2Sim = the configurations of the policy "
              f"stage's predictor (`{info['predictor']}`; the default, `task2sim`, is the paper's controller), "
              "a seen task's from the predictor fitted on the other seen tasks (held out). "
              "Measured selection (ours; neither paper has it): per task, the reward-budget configuration "
              "whose backbone scores best by 5-NN left-one-out on the task's own training split (no test "
              "image read). "
              f"Random: at the reward budget the exact mean over all {info['n_configs']} configurations (every "
              "reward-budget backbone is scored on every task); at another budget the mean over "
              f"{info['random_draws']} distinct configurations, drawn "
              f"with seed {info['random_seed']} and shared by every task{info['random_exact']}. "
              f"Domain Randomisation (varied bits): every varied bit on ({info['dr_bits']}); "
              f"(all 8 bits): every simulation parameter on ({ALL_ON}), the paper's, rendered for it alone "
              "(n/a at the reward budget unless all 8 bits vary). Best single "
              "config: the best mean reward over the seen tasks, a seen task's from the other seen tasks "
              f"(held out, as Task2Sim's) ({info['fixed_bits']['best_fixed']}); by z-score: the best mean "
              f"per-task z-score, likewise ({info['fixed_bits']['best_fixed_z']}). Scratch: the same "
              "architecture at random initialisation, no pre-training (the same number at both budgets): "
              "in the 5-NN and linear columns a probe of its random features (a floor, not the paper's "
              "Scratch); in a fine-tune column trained end to end from random init, its grid chosen on "
              "validation (the paper's Scratch). "
              + _seeds_text(info) + " Best per column in bold, the ImageNet reference excluded from the ranking."),
             "",
             (f"The ImageNet row is a labelled reference, not a competitor: timm's EfficientNet-Lite0 with real "
              f"ImageNet-1k weights (1.28M real images, a different architecture), fed {info['imagenet_size']} px "
              "images; the other rows pre-train "
              f"`{info['model']}` on our renders."), ""]
    for label, budget in budgets.items():
        lines += [f"## {info['budget_titles'][label]}", "",
                  "| method | " + " | ".join(f"{ev} seen | {ev} unseen" for ev in evaluations) + " |",
                  "|---|" + "---|---|" * len(evaluations)]
        cells = {m: {} for m in METHODS}
        for ev in evaluations:
            for split in ("seen", "unseen"):
                col = {m: _complete(by.get((label, ev, m), {}), split, info) for m in METHODS}
                texts = {m: _with_sd(by.get((label, ev, m), {}), split, info) for m in METHODS}
                bolded = _bold_best(col, [m for m in METHODS if m != "imagenet"], texts)
                for m in METHODS:
                    cells[m][(ev, split)] = bolded[m]
        for m in METHODS:
            if any(cells[m].values()):
                lines.append(f"| {LABELS[m]} | " + " | ".join(cells[m][(ev, s)] or "n/a" for ev in evaluations
                                                            for s in ("seen", "unseen")) + " |")
        lines.append("")
    margins = info.get("margins", [])
    if margins:
        how = ("over seeds x tasks: d[seed, task] under the crossed random-effects model (a task effect, a "
               "seed effect shared by every task of a seed's backbones, a residual; Satterthwaite's degrees of "
               "freedom; task2sim.stats.crossed_interval), so it holds both the spread over tasks and the "
               "seed-to-seed noise of the backbones" if len(info["seeds"]) > 1 else
               "Student's t over the per-task differences. Computed on one seed: the unit is the task, and "
               "tasks are not independent (tasks that get the same configuration share one backbone, and every "
               "task shares the renderer and the seed), so these intervals are narrower than a repeat of the "
               "whole run would show; the study's seeds (final.seeds) widen them")
        lines += ["## Paired margins, with 95 % intervals", "",
                  (f"Each method minus a baseline, task by task, averaged over the split's tasks; the interval "
                   f"is {how}. \"ahead\" / \"behind\": the interval excludes 0; \"not shown\": it does not."), "",
                  "| budget | evaluation | split | method - baseline | mean [95 % interval] | seeds x tasks "
                  "| verdict |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['budget']} | {r['evaluation']} | {r['split']} | {LABELS[r['method']]} - "
                  f"{LABELS[r['baseline']]} | {r['mean']} [{r['low']}, {r['high']}] | {r['seeds']} x {r['tasks']} "
                  f"| {r['verdict']} |" for r in margins]
        lines.append("")
    lines += ["## Where Task2Sim loses", ""]
    losses = []
    for label in budgets:
        for ev in evaluations:
            for split in ("seen", "unseen"):
                t2s = _complete(by.get((label, ev, "task2sim"), {}), split, info)
                for m in METHODS:
                    if m in ("task2sim", "imagenet"):
                        continue
                    other = _complete(by.get((label, ev, m), {}), split, info)
                    if t2s and other and float(other) > float(t2s):
                        losses.append(f"- {label} budget, {ev}, {split} tasks: {LABELS[m]} beats Task2Sim by "
                                      f"{float(other) - float(t2s):.2f} points ({other} vs {t2s}).")
    lines += losses or ["- Nowhere: Task2Sim's average is at least as high as every baseline's in every column."]
    lines += ["", "## Configurations chosen", "", "| task | split | " + " | ".join(LABELS[m] for m in CONFIG_METHODS)
              + " |", "|---|---|" + "---|" * len(CONFIG_METHODS)]
    pick = picks(choices)
    for t in dict.fromkeys(c["task"] for c in choices):
        split = next(c["split"] for c in choices if c["task"] == t)
        lines.append(f"| {t} | {split} | " + " | ".join(", ".join(pick[(t, m)]) for m in CONFIG_METHODS) + " |")
    return "\n".join(lines) + "\n"


def _seeds_text(info: Mapping[str, Any]) -> str:
    """What the numbers rest on: the evaluation seeds (final.seeds) or the run's one seed."""
    seeds = info["seeds"]
    if len(seeds) > 1 or seeds != [str(info["seed"])]:
        return (f"Seeds: every backbone of this comparison (the 2^M reward-budget ones, the final-budget ones, "
                f"Scratch's initialisation) was rendered, pre-trained and probed again at seeds "
                f"{', '.join(seeds)} (final.seeds), none of which fitted or chose anything (the choices come from "
                f"the reward table of seed {info['seed']} and reward.seeds); a cell is the mean over them ± their "
                f"sd (n = {len(seeds)} seeds).")
    return (f"Seeds: run seed {info['seed']} for rendering, pre-training and every probe; one run per cell, no "
            "repeats (see the measured seed noise in results/rewards/noise.tsv). At the reward budget the 5-NN "
            "columns are the reward table's own cells, the values the predictors were fitted on and chose from "
            "(in-sample, each the maximum of noisy values for the methods that pick the best); final.seeds "
            "scores every backbone again at seeds that chose nothing.")


def plot_per_task(ms: Mapping[tuple[str, str, str], Mapping[str, float]], splits: Mapping[str, str], split: str,
                  budgets: Sequence[str], evaluations: Sequence[str], path: str | os.PathLike, title: str) -> Path:
    """Grouped bars, one panel per (budget, evaluation): each task's accuracy per method (Figs. 3/4)."""
    from matplotlib.figure import Figure

    from ..figures import save_figure

    tasks = [t for t, s in splits.items() if s == split]
    panels = [(b, ev) for b in budgets for ev in evaluations]
    fig_width = max(6.0, 1.3 * len(tasks) + 2.5)
    fig = Figure(figsize=(fig_width, 2.8 * len(panels) + 0.6))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    colours = {"task2sim": "#d62728", "measured": "#ff7f0e", "random": "#7f7f7f", "domain_randomisation": "#1f77b4",
               "domain_randomisation_all": "#17becf",
               "best_fixed": "#2ca02c", "best_fixed_z": "#98df8a", "scratch": "#bcbd22", "imagenet": "#9467bd"}
    legend = {}
    for ax, (b, ev) in zip(axes, panels):
        # a panel's bars: the methods with a number on one of its tasks (a method not pre-trained at
        # this budget leaves no empty slot); colours stay the method's in every panel
        methods = [m for m in METHODS if any(np.isfinite(ms.get((b, ev, m), {}).get(t, np.nan)) for t in tasks)]
        width = 0.8 / max(len(methods), 1)
        for i, m in enumerate(methods):
            per = ms.get((b, ev, m), {})
            ys = [per.get(t, np.nan) for t in tasks]
            legend[m] = ax.bar(np.arange(len(tasks)) + (i - (len(methods) - 1) / 2) * width, ys, width,
                               label=LABELS[m], color=colours[m], hatch="//" if m == "imagenet" else None,
                               edgecolor="white", linewidth=0.3)
        ax.set_xticks(np.arange(len(tasks)))
        ax.set_xticklabels(tasks)
        ax.set_ylabel("top-1 (%)")
        ax.set_title(f"{b} budget, {ev}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    order = [m for m in METHODS if m in legend]
    # three columns of labels need about 8 inches; a figure of few tasks gets two
    axes[0].legend([legend[m] for m in order], [LABELS[m] for m in order], fontsize=7, ncol=3 if fig_width >= 8 else 2,
                   loc="lower left", bbox_to_anchor=(0, 1.15))
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path, tight={})


def scaling_rows(choices: Sequence[Mapping[str, str]], scores: Mapping[tuple, float], budgets: Sequence[str],
                 evaluation: str = "linear") -> list[dict[str, str]]:
    """Task2Sim and Domain Randomisation at each image budget: the mean over the seen tasks."""
    pick = picks(choices)
    seen = list(dict.fromkeys(c["task"] for c in choices if c["split"] == "seen"))
    rows = []
    for b in budgets:
        classes, ipc = parse_budget(b)
        for m in ("task2sim", "domain_randomisation"):
            v = [scores[k] for t in seen if (k := (b, pick[(t, m)][0], t, evaluation)) in scores]
            rows.append({"budget": b, "classes": str(classes), "images": str(classes * ipc), "method": m,
                         "seen_mean": f"{np.mean(v):.2f}" if v else "", "n_tasks": str(len(v))})
    return rows


def plot_scaling(rows: Sequence[Mapping[str, str]], path: str | os.PathLike, title: str) -> Path:
    from matplotlib.figure import Figure

    from ..figures import finish_axes

    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    for m, colour in (("task2sim", "#d62728"), ("domain_randomisation", "#1f77b4")):
        pts = [(int(r["images"]), float(r["seen_mean"])) for r in rows if r["method"] == m and r["seen_mean"]]
        if pts:
            x, y = zip(*sorted(pts))
            ax.plot(x, y, "o-", color=colour, label=LABELS[m])
    ax.set_xscale("log")
    return finish_axes(fig, ax, "pre-training images", "linear probe top-1 (%), seen-task mean", title, path)
