"""The tasks x bits heatmap of P(bit = 1) (the Task2Sim paper's Fig. 5)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: the workflow runs without a display
import matplotlib.pyplot as plt
import numpy as np

from ..figures import save_figure


def plot_bit_heatmap(tasks: Sequence[str], splits: Sequence[str], bit_names: Sequence[str], p_bits: np.ndarray,
                     path: str | os.PathLike, title: str) -> None:
    fig, ax = plt.subplots(figsize=(max(4.5, 0.75 * len(bit_names) + 2.5), max(3.0, 0.33 * len(tasks) + 1.8)))
    im = ax.imshow(p_bits, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(len(tasks)):
        for j in range(len(bit_names)):
            ax.text(j, i, f"{p_bits[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                    color="black" if p_bits[i, j] > 0.6 else "white")
    ax.set_yticks(range(len(tasks)), [f"{t} ({s})" for t, s in zip(tasks, splits)], fontsize=7)
    ax.set_xticks(range(len(bit_names)), bit_names, rotation=45, ha="right", fontsize=7)
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, label="P(bit = 1)")
    save_figure(fig, path, dpi=130, tight={})
