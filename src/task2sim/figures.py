"""Small shared figure helpers (matplotlib's object API: no pyplot state, works headless)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .io import atomic_path


def save_figure(fig, path: str | os.PathLike, dpi: int = 130, tight: dict | None = None) -> Path:
    """Lay out ``fig`` (``tight_layout(**tight)``; None skips it), write it as a PNG atomically and
    release it (pyplot figures are closed, object-API figures just dropped)."""
    if tight is not None:
        fig.tight_layout(**tight)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def finish_axes(fig, ax, xlabel: str, ylabel: str, title: str, path: str | os.PathLike) -> Path:
    """Label, grid and legend one line plot's axes the project's way, then ``save_figure`` it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path, tight={})


def image_grid(rows: Sequence[tuple[str, np.ndarray]], path: str | os.PathLike, title: str = "",
               tile_inches: float = 0.9, dpi: int = 110) -> Path:
    """Write a PNG: one labelled row per ``(label, images (K, H, W[, C]) uint8)`` entry."""
    from matplotlib.figure import Figure

    n_cols = max(len(imgs) for _, imgs in rows)
    fig = Figure(figsize=(tile_inches * n_cols + 1.8, tile_inches * len(rows) + (0.5 if title else 0.1)))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(imgs):
                img = imgs[c]
                ax.imshow(img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img,
                          cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=1.7 / (tile_inches * n_cols + 1.8), right=0.99, wspace=0.05, hspace=0.08,
                        top=0.92 if title else 0.99, bottom=0.01)
    return save_figure(fig, path, dpi=dpi)
