"""Heatmap of a reward table: tasks (rows) x configurations (columns), every cell annotated."""

from __future__ import annotations

import os
from typing import Mapping

import matplotlib

matplotlib.use("Agg")  # headless: the workflow runs without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..bits import describe  # noqa: E402
from ..figures import save_figure  # noqa: E402


def plot_reward_heatmap(table: Mapping[str, Mapping[str, float]], path: str | os.PathLike,
                        title: str = "5-NN top-1 (%) per task and simulator configuration",
                        noise: Mapping[str, Mapping[str, float]] | None = None) -> None:
    """``noise`` (``reward.noise.reward_noise``): each row label gets the seed sd of the task's
    cells and spread/sd, and cells within 2 sd of the task's best (ties, as far as the table can tell) get
    a frame."""
    from .noise import ties as tied_configs

    tasks = list(table)
    configs = sorted({b for row in table.values() for b in row})
    grid = np.full((len(tasks), len(configs)), np.nan)
    for i, t in enumerate(tasks):
        for j, b in enumerate(configs):
            if b in table[t]:
                grid[i, j] = table[t][b]
    # Colour each row relative to its own range: tasks differ in difficulty, configs within a task matter.
    lo = np.nanmin(grid, axis=1, keepdims=True)
    hi = np.nanmax(grid, axis=1, keepdims=True)
    rel = (grid - lo) / np.where(hi > lo, hi - lo, 1.0)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.62 * len(configs) + 2.5), max(3.0, 0.5 * len(tasks) + 3.2)))
    ax.imshow(rel, cmap="viridis", aspect="auto", vmin=0, vmax=1)
    tie = tied_configs(table, noise) if noise else {}
    for i in range(len(tasks)):
        best = np.nanargmax(grid[i]) if np.isfinite(grid[i]).any() else -1
        for j in range(len(configs)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=7,
                        color="black" if rel[i, j] > 0.6 else "white",
                        fontweight="bold" if j == best else "normal")
                if configs[j] in tie.get(tasks[i], ()):
                    ax.add_patch(plt.Rectangle((j - 0.46, i - 0.44), 0.92, 0.88, fill=False, lw=1.2,
                                               edgecolor="red"))
    labels = [f"{t}\nsd {noise[t]['cell_sd']:.1f}, spread/sd {noise[t]['ratio']:.1f}, p {noise[t]['p_value']:.2g}"
              if noise and t in noise
              else t for t in tasks]
    ax.set_yticks(range(len(tasks)), labels, fontsize=7 if noise else None)
    ax.set_xticks(range(len(configs)), [f"{b}\n{describe(b)}".replace("+", "+\n") for b in configs],
                  rotation=90, fontsize=6.5)
    legend = "colour: position within the task's own range, worst to best; bold: best per task"
    if noise:
        legend += ";\nred frame: within 2 sd of the best (not distinguishable from it)"
    ax.set_title(f"{title}\n({legend})", fontsize=9)
    save_figure(fig, path, dpi=130, tight={})
