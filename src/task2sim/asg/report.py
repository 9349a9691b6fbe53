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

from ..io import atomic_path, save_torch
from ..figures import save_figure

COLUMNS = ("epoch", "step", "train_ce", "train_kl", "train_loss", "source_val_acc", "target_acc",
           "target_mean_class_acc", "imagenet_agreement", "seconds")


def metrics_rows(history: list[dict], target: str) -> list[dict]:
    """One target's view of a run's history (columns COLUMNS)."""
    out = []
    for r in history:
        out.append({**{k: r[k] for k in COLUMNS if k in r}, "target_acc": r[f"{target}_acc"],
                    "target_mean_class_acc": r[f"{target}_mean_class_acc"]})
    return out


def write_metrics_tsv(history: list[dict], path: str | os.PathLike, target: str) -> None:
    rows = metrics_rows(history, target)
    with atomic_path(path, suffix=".tsv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([r[k] if isinstance(r[k], int) else f"{r[k]:.6g}" for k in COLUMNS])


def read_metrics_tsv(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: (int(v) if k in ("epoch", "step") else float(v)) for k, v in r.items()}
                for r in csv.DictReader(fh, delimiter="\t")]


def write_schedule_tsv(schedule: list[dict], group_names: list[str], path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".tsv") as tmp, open(tmp, "w") as fh:
        fh.write("\t".join(["step", *group_names]) + "\n")
        fh.writelines("\t".join([str(s["step"]), *(f"{s[g]:.1f}" for g in group_names)]) + "\n" for s in schedule)


def save_asg_model(path: str | os.PathLike, net, cfg, method: str, class_names: list[str],
                   base_lrs: list[float], group_names: list[str]) -> dict:
    """model.pt: the student (timm ``state_dict``, its 1000-class ImageNet classifier included and
    unchanged), ``new_head`` (Linear weights for ``class_names``) and a ``pretrained_cfg`` saying
    what they are."""
    student = net.student
    pcfg = {**dict(getattr(student, "pretrained_cfg", None) or {}),
            "architecture": cfg.model, "input_size": (3, cfg.input_size, cfg.input_size),
            "num_classes": 1000, "num_features": int(student.num_features),
            "new_head": {"num_classes": len(class_names), "class_names": list(class_names)},
            "what": (f"ASG fine-tuned {cfg.model} (method {method}): student weights with the frozen "
                     f"ImageNet classifier, plus new_head Linear({int(student.num_features)}, "
                     f"{len(class_names)}) for the synthetic classes; BatchNorm statistics frozen"),
            "method": method, "layer_groups": list(group_names), "base_lrs": list(base_lrs),
            "asg_config": dataclasses.asdict(cfg)}
    state = {k: v.detach().cpu() for k, v in student.state_dict().items()}
    head = {k: v.detach().cpu() for k, v in net.new_head.state_dict().items()}
    save_torch(path, {"state_dict": state, "new_head": head, "pretrained_cfg": pcfg})
    return pcfg


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


def summary_markdown(runs: dict[tuple[str, str, str], list[dict]], title: str = "ASG summary") -> str:
    """Final-epoch table per (run label, target): methods as rows; plus, across run labels that
    look like seeds, the mean ± sd and the paired differences c-b, d-b, d-c."""
    from .train import METHODS
    intro = ("Final epoch; the real target is only evaluated (never used to train, stop or select). "
             "best = best target top-1 over epochs, shown only to judge whether the final epoch "
             "is close to it.")
    lines = [f"# {title}", "", intro, ""]
    by = {}
    for (label, target, method), rows in runs.items():
        by.setdefault((label, target), {})[method] = rows
    order = {m: i for i, m in enumerate(METHODS)}
    for (label, target) in sorted(by):
        lines += [f"## {label}: {target}", "",
                  ("| method | target top-1 | mean per-class | best top-1 (epoch) | synthetic held-out "
                   "| ImageNet agreement |"),
                  "|---|---|---|---|---|---|"]
        for m in sorted(by[(label, target)], key=lambda m: order.get(m, 99)):
            rows = by[(label, target)][m]
            f = rows[-1]
            best = max(rows, key=lambda r: r["target_acc"])
            lines.append(f"| {_label(m)} | {f['target_acc']:.1f} | {f['target_mean_class_acc']:.1f} | "
                         f"{best['target_acc']:.1f} ({best['epoch']}) | {f['source_val_acc']:.1f} | "
                         f"{f['imagenet_agreement']:.1f} |")
        lines.append("")
    targets = sorted({t for _, t in by})
    labels = sorted({lab for lab, _ in by})
    if len(labels) > 1:
        lines += ["## Across runs (final epoch, mean ± sd over runs)", ""]
        for t in targets:
            labs = [lab for lab in labels if (lab, t) in by]
            methods = sorted({m for lab in labs for m in by[(lab, t)]}, key=lambda m: order.get(m, 99))
            lines += [f"### {t} ({len(labs)} runs: {', '.join(labs)})", "",
                      "| method | target top-1 | mean per-class |", "|---|---|---|"]
            final = {m: [by[(lab, t)][m][-1] for lab in labs if m in by[(lab, t)]] for m in methods}
            for m in methods:
                lines.append(f"| {_label(m)} | {_mean_sd([r['target_acc'] for r in final[m]])} | "
                             f"{_mean_sd([r['target_mean_class_acc'] for r in final[m]])} |")
            lines.append("")
            for a, b in (("proxy", "split_lr"), ("asg", "split_lr"), ("asg", "proxy")):
                pairs = [(by[(lab, t)][a][-1]["target_acc"], by[(lab, t)][b][-1]["target_acc"]) for lab in labs
                         if a in by[(lab, t)] and b in by[(lab, t)]]
                if pairs:
                    d = [x - y for x, y in pairs]
                    wins = sum(x > 0 for x in d)
                    lines.append(f"- {a} − {b}: {_mean_sd(d)} points top-1 (ahead in {wins}/{len(d)} runs; "
                                 f"per run {', '.join(f'{x:+.1f}' for x in d)})")
            lines.append("")
    return "\n".join(lines) + "\n"
