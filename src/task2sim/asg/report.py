"""ASG outputs: metrics tables, checkpoints that say what they hold, the curves and schedule
figures, and the markdown summary (docs/asg.md).

Usage::

    write_metrics_tsv(history, "results/asg/mnist5k/proxy/metrics.tsv", target="mnist5k")
    save_asg_model("model.pt", net, cfg, method="proxy", class_names=names)
    plot_curves({method: rows}, "mnist5k", "curves.png")
    plot_schedule(schedule, group_names, "schedule.png")
    text = summary_markdown(runs)     # runs: {(run label, target, method): rows}
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import numpy as np

from ..figures import save_figure
from ..io import write_tsv

COLUMNS = ("epoch", "step", "train_ce", "train_kl", "train_loss", "source_val_acc", "target_acc",
           "target_mean_class_acc", "imagenet_agreement")


def metrics_rows(history: list[dict], target: str) -> list[dict]:
    """One target's view of a run's history (columns COLUMNS)."""
    out = []
    for r in history:
        out.append({**{k: r[k] for k in COLUMNS if k in r}, "target_acc": r[f"{target}_acc"],
                    "target_mean_class_acc": r[f"{target}_mean_class_acc"]})
    return out


def write_metrics_tsv(history: list[dict], path: str | os.PathLike, target: str) -> None:
    write_tsv(path, COLUMNS, [{k: r[k] if isinstance(r[k], int) else f"{r[k]:.6g}" for k in COLUMNS}
                              for r in metrics_rows(history, target)])


def read_metrics_tsv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: (int(v) if k in ("epoch", "step") else float(v)) for k, v in r.items()}
                for r in csv.DictReader(fh, delimiter="\t")]


def write_schedule_tsv(schedule: list[dict], group_names: list[str], path: str | os.PathLike) -> None:
    write_tsv(path, ["step", *group_names], [{"step": s["step"], **{g: f"{s[g]:.1f}" for g in group_names}}
                                             for s in schedule])


def save_asg_model(path: str | os.PathLike, net, cfg, method: str, class_names: list[str],
                   base_lrs: list[float], group_names: list[str]) -> dict:
    """model.pt (``backbones.models.save_backbone``): the student (its 1000-class ImageNet
    classifier included and unchanged), ``new_head`` (Linear weights for ``class_names``) and a
    ``pretrained_cfg`` saying what they are; ``load_backbone`` rebuilds the student."""
    from ..backbones.models import save_backbone
    from ..backbones.preprocess import normalisation

    student = net.student
    mean, std = normalisation(student)
    what = (f"ASG fine-tuned {cfg.model} (method {method}): student weights with the frozen ImageNet classifier, "
            f"plus new_head Linear({int(student.num_features)}, {len(class_names)}) for the synthetic classes; "
            "BatchNorm statistics frozen")
    return save_backbone(path, student, cfg.model, cfg.input_size, mean, std, extra={"new_head": net.new_head},
                         new_head={"num_classes": len(class_names), "class_names": list(class_names)}, what=what,
                         method=method, layer_groups=list(group_names), base_lrs=list(base_lrs),
                         asg_config=dataclasses.asdict(cfg))


def _label(method: str) -> str:
    from .train import METHOD_LABELS
    return METHOD_LABELS.get(method, method)


def plot_curves(runs: dict[str, list[dict]], target: str, path: str | os.PathLike) -> Path:
    """Target top-1 and mean per-class accuracy, synthetic held-out accuracy and ImageNet
    agreement against epochs, one line per method (the paper's Figs 1/5/6)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("target_acc", f"{target}: top-1 (%)"),
              ("target_mean_class_acc", f"{target}: mean per-class (%)"),
              ("source_val_acc", "synthetic held-out top-1 (%)"),
              ("imagenet_agreement", "ImageNet agreement with teacher (%)")]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ax, (key, title) in zip(axes, panels):
        for method, rows in runs.items():
            ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], marker="o", ms=3, label=_label(method))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"ASG: fine-tuning on rendered digits, evaluated on {target} (never used for training or selection)")
    return save_figure(fig, path, dpi=100, tight={})


def plot_schedule(schedules: list[tuple[str, list[dict]]], group_names: list[str], path: str | os.PathLike,
                  title: str) -> Path:
    """Chosen scale per layer group against training step, one panel per schedule."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(schedules)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 3.6), squeeze=False)
    for ax, (name, sched) in zip(axes[0], schedules):
        steps = [s["step"] for s in sched]
        for i, g in enumerate(group_names):
            ax.step(steps, [s[g] + 0.012 * (i - len(group_names) / 2) for s in sched], where="post", label=g)
        ax.set_ylim(-0.08, 1.08)
        ax.set_xlabel("training step")
        ax.set_ylabel("lr scale")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    return save_figure(fig, path, dpi=100, tight={})


def run_key(path: str | os.PathLike, root: str | os.PathLike) -> tuple[str, str, str]:
    """(run label, target, method) of ``<root>/<label...>/<target>/<method>/metrics.tsv``."""
    rel = Path(path).resolve().relative_to(Path(root).resolve()).parts
    return "/".join(rel[:-3]) or "default", rel[-3], rel[-2]


def _mean_sd(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:.1f}"
    return f"{np.mean(xs):.1f} ± {np.std(xs, ddof=1):.1f}"


# The paired differences the paper's two claims rest on: proxy guidance helps (c - b), the learned
# policy helps beyond guidance (d - c) and beyond a random policy over the same actions (d - d0).
CLAIMS = (("proxy", "split_lr", "proxy guidance"), ("asg", "proxy", "learned policy over (c)"),
          ("asg", "random_lr", "learned over random policy"))


def _by_run(runs: dict[tuple[str, str, str], list[dict]]) -> dict[tuple[str, str], dict[str, list[dict]]]:
    by: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for (label, target, method), rows in runs.items():
        by.setdefault((label, target), {})[method] = rows
    return by


def _method_order(methods) -> list[str]:
    from .train import METHODS
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(methods, key=lambda m: order.get(m, 99))


def summary_markdown(runs: dict[tuple[str, str, str], list[dict]], title: str = "ASG summary",
                     pool: bool = True) -> str:
    """Per target: over the runs (seeds), each method's final-epoch mean ± sd and the paired
    differences of CLAIMS with 95 % t intervals; then each run's own table. ``pool=False``: the
    runs are different settings (a sweep), not seeds: only each run's own table."""
    from ..stats import paired_interval

    by = _by_run(runs)
    targets = sorted({t for _, t in by})
    labels = sorted({lab for lab, _ in by})
    what = ("a run is one seed (fine-tuning, policy training and head initialisation; the rendered source "
            "is shared)" if pool else "each run is a different setting, so runs are not pooled")
    lines = [f"# {title}", "",
             f"**{len(labels)} run{'s' if len(labels) != 1 else ''}** ({', '.join(labels)}); {what}. "
             "Final epoch; the real target is only evaluated (never used to train, stop or select). "
             "best = best target top-1 over epochs, shown only to judge whether the final epoch is close to it.", ""]
    for t in targets if pool else ():
        labs = [lab for lab in labels if (lab, t) in by]
        methods = _method_order({m for lab in labs for m in by[(lab, t)]})
        final = {m: [by[(lab, t)][m][-1] for lab in labs if m in by[(lab, t)]] for m in methods}
        best = {m: [max(r["target_acc"] for r in by[(lab, t)][m]) for lab in labs if m in by[(lab, t)]]
                for m in methods}
        lines += [f"## {t}: final epoch over {len(labs)} run{'s' if len(labs) != 1 else ''} (mean ± sd)", "",
                  ("| method | n | target top-1 | mean per-class | best top-1 | synthetic held-out "
                   "| ImageNet agreement |"),
                  "|---|---|---|---|---|---|---|"]
        for m in methods:
            f = final[m]
            lines.append(f"| {_label(m)} | {len(f)} | {_mean_sd([r['target_acc'] for r in f])} | "
                         f"{_mean_sd([r['target_mean_class_acc'] for r in f])} | {_mean_sd(best[m])} | "
                         f"{_mean_sd([r['source_val_acc'] for r in f])} | "
                         f"{_mean_sd([r['imagenet_agreement'] for r in f])} |")
        lines += ["", "Paired differences, final-epoch target top-1 (points; mean [95 % t interval over runs]):", ""]
        for a, b, what in CLAIMS:
            d = [by[(lab, t)][a][-1]["target_acc"] - by[(lab, t)][b][-1]["target_acc"]
                 for lab in labs if a in by[(lab, t)] and b in by[(lab, t)]]
            if not d:
                continue
            iv = paired_interval(d)
            verdict = ("" if iv.n < 2 else "holds; " if iv.low > 0 else
                       "reversed; " if iv.high < 0 else "not shown (interval covers 0); ")
            lines.append(f"- {_label(a)} − {_label(b)} ({what}): {iv.text(1)}; {verdict}"
                         f"ahead in {sum(x > 0 for x in d)}/{len(d)} (per run {', '.join(f'{x:+.1f}' for x in d)})")
        lines.append("")
    lines += ["## Each run", ""]
    for (label, target) in sorted(by):
        lines += [f"### {label}: {target}", "",
                  ("| method | target top-1 | mean per-class | best top-1 (epoch) | synthetic held-out "
                   "| ImageNet agreement |"),
                  "|---|---|---|---|---|---|"]
        for m in _method_order(by[(label, target)]):
            rows = by[(label, target)][m]
            f = rows[-1]
            b = max(rows, key=lambda r: r["target_acc"])
            lines.append(f"| {_label(m)} | {f['target_acc']:.1f} | {f['target_mean_class_acc']:.1f} | "
                         f"{b['target_acc']:.1f} ({b['epoch']}) | {f['source_val_acc']:.1f} | "
                         f"{f['imagenet_agreement']:.1f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_seed_curves(runs: dict[tuple[str, str, str], list[dict]], path: str | os.PathLike) -> Path:
    """Target top-1 against training step, one panel per target: each method's mean over runs
    with a band of ± 1 sd (min-max when there are two runs)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = _by_run(runs)
    targets = sorted({t for _, t in by})
    fig, axes = plt.subplots(1, len(targets), figsize=(7 * len(targets), 4.6), squeeze=False)
    for ax, t in zip(axes[0], targets):
        labs = [lab for lab, tt in sorted(by) if tt == t]
        for m in _method_order({m for lab in labs for m in by[(lab, t)]}):
            curves = [by[(lab, t)][m] for lab in labs if m in by[(lab, t)]]
            n = min(len(c) for c in curves)
            steps = np.array([r["step"] for r in curves[0][:n]])
            acc = np.array([[r["target_acc"] for r in c[:n]] for c in curves])
            mean = acc.mean(0)
            line, = ax.plot(steps, mean, label=f"{_label(m)} (n {len(curves)})")
            if len(curves) > 1:
                lo, hi = ((acc.min(0), acc.max(0)) if len(curves) == 2 else
                          (mean - acc.std(0, ddof=1), mean + acc.std(0, ddof=1)))
                ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15)
        band = "min-max" if len(labs) == 2 else "± 1 sd"
        ax.set_title(f"{t}: top-1 (%), mean over {len(labs)} runs" + (f", band {band}" if len(labs) > 1 else ""))
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("ASG: target accuracy while fine-tuning on renders\n(the target is never used to train or select)")
    return save_figure(fig, path, dpi=100, tight={})
