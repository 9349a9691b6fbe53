"""Tiny HDF5 files in the exact layouts of docs/FORMATS.md, for tests of the training stages.

Images are learnable on purpose: each class has its own mean colour and stripe frequency, plus
noise, so a few epochs visibly lower the loss and 5-NN beats chance.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def class_images(labels: np.ndarray, size: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    n = len(labels)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, channels), np.uint8)
    for i, c in enumerate(labels):
        freq = 1 + (c % 4)
        phase = rng.uniform(0, 2 * np.pi)
        stripes = np.sin(2 * np.pi * freq * (xx if (c // 4) % 2 else yy) + phase)
        base = np.array([(37 * c) % 200 + 30, (91 * c) % 200 + 30, (53 * c) % 200 + 30])[:channels]
        img = base[None, None, :] + 50 * stripes[..., None] + rng.normal(0, 20, (size, size, channels))
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def write_render_h5(path: str | Path, n_classes: int = 16, per_class: int = 8, size: int = 32,
                    seed: int = 0, bits: str = "00000000", complete: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class).astype(np.int64)
    images = class_images(labels, size, 3, rng)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(min(len(labels), 64), size, size, 3))
        f.create_dataset("labels", data=labels)
        f.create_dataset("class_names", data=[f"class{i}" for i in range(n_classes)],
                         dtype=h5py.string_dtype())
        f.create_dataset("mesh_ids", data=np.arange(len(labels), dtype=np.int64))
        f.create_dataset("scene/distance_factor", data=np.ones(len(labels)))
        f.attrs.update({"bits": bits, "backend": "fixture", "backend_version": "0", "seed": seed,
                        "image_size": size, "n_classes": n_classes, "images_per_class": per_class,
                        "format_version": 1, "complete": complete})
    return path


def write_task_h5(path: str | Path, n_classes: int = 4, n_train: int = 80, n_test: int = 40,
                  size: int = 28, channels: int = 1, seed: int = 1, task: str = "fixture") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for split, n in (("train", n_train), ("test", n_test)):
            labels = (np.arange(n) % n_classes).astype(np.int64)
            rng.shuffle(labels)
            f.create_dataset(f"{split}/images", data=class_images(labels, size, channels, rng))
            f.create_dataset(f"{split}/labels", data=labels)
        f.create_dataset("class_names", data=[f"c{i}" for i in range(n_classes)],
                         dtype=h5py.string_dtype())
        f.attrs.update({"task": task, "source": "fixture", "licence": "CC0", "split": "fixture",
                        "kind": "synthetic stripes", "seed": seed, "n_classes": n_classes,
                        "format_version": 1})
    return path
