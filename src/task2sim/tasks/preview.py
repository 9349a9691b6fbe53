"""Labelled contact sheet of a task: one row per class, a few train and test images each."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..figures import save_figure
from .data import TaskData

MAX_ROWS = 12


def write_preview(task: TaskData, path: str | os.PathLike, per_class: int = 8, seed: int = 0) -> Path:
    """Write ``path`` (PNG): rows = classes (named), columns = train images then test images."""
    # A bare Figure (no pyplot): no global backend or figure state, works headless.
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    n_tr = max(1, per_class * 2 // 3)
    n_te = per_class - n_tr
    rows = list(range(min(task.n_classes, MAX_ROWS)))
    cols = n_tr + n_te
    fig = Figure(figsize=(1.0 * cols + 1.6, 1.0 * len(rows) + 0.9))
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, c in enumerate(rows):
        for split, images, labels, n, off in (("train", task.train_images, task.train_labels, n_tr, 0),
                                              ("test", task.test_images, task.test_labels, n_te, n_tr)):
            idx = np.flatnonzero(labels == c)
            idx = rng.choice(idx, size=min(n, len(idx)), replace=False) if len(idx) else idx
            for j in range(n):
                ax = axes[r, off + j]
                ax.set_xticks([])
                ax.set_yticks([])
                for s in ax.spines.values():
                    s.set_visible(False)
                if j < len(idx):
                    img = images[idx[j]]
                    if img.shape[-1] == 1:
                        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                    else:
                        ax.imshow(img, interpolation="nearest")
                if r == 0 and j == 0:
                    ax.set_title(split, fontsize=9, loc="left")
        axes[r, 0].set_ylabel(task.class_names[c], rotation=0, ha="right", va="center", fontsize=10)
    h, w, ch = task.image_shape
    more = f", first {MAX_ROWS} of {task.n_classes} classes" if task.n_classes > MAX_ROWS else ""
    fig.suptitle(f"{task.attrs.get('task', '?')}: {task.n_classes} classes, {w}x{h}x{ch}, "
                 f"train {len(task.train_labels)} / test {len(task.test_labels)}{more}", fontsize=10)
    return save_figure(fig, path, dpi=80, tight={"rect": (0, 0, 1, 0.97)})
