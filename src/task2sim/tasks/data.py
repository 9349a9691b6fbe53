"""The downstream-task file ``data.h5`` (layout in docs/FORMATS.md, "Downstream task").

Usage::

    write_task_h5(path, xtr, ytr, xte, yte, ["cat", "dog"], {"task": "pets", "source": ..., ...})
    task = load_task_h5(path)          # validated; raises TaskDataError naming the path and field
    task.train_images.shape            # (N, H, W, C) uint8
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from ..errors import Task2SimError
from ..io import atomic_path

FORMAT_VERSION = 1
STR_ATTRS = ("task", "source", "licence", "split", "kind")
INT_ATTRS = ("seed", "n_classes", "format_version")
SPLITS = ("train", "test")


class TaskDataError(Task2SimError):
    """Bad task input (missing path, empty class, unreadable image, bad file layout).

    The message is one line naming the offending path or key; the CLI prints it as ``error: ...``.
    """


@dataclass
class TaskData:
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

    def summary(self) -> dict[str, Any]:
        h, w, c = self.image_shape
        return {"n_classes": self.n_classes, "n_train": len(self.train_labels),
                "n_test": len(self.test_labels), "height": h, "width": w, "channels": c}


def validate_arrays(where: str, train_images: np.ndarray, train_labels: np.ndarray,
                    test_images: np.ndarray, test_labels: np.ndarray,
                    class_names: Sequence[str]) -> None:
    """Check the array contract of the layout; raise TaskDataError naming ``where`` and the field."""
    n_classes = len(class_names)
    if n_classes < 2:
        raise TaskDataError(f"{where}: a task needs at least 2 classes, got {n_classes} ({list(class_names)})")
    if len(set(class_names)) != n_classes:
        raise TaskDataError(f"{where}: class_names are not unique: {list(class_names)}")
    shapes = {}
    for split, images, labels in (("train", train_images, train_labels),
                                  ("test", test_images, test_labels)):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise TaskDataError(f"{where}: {split}/images must be uint8 (N, H, W, C) with C in {{1, 3}}, "
                                f"got {images.dtype} {images.shape}")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise TaskDataError(f"{where}: {split}/labels must be integer (N,), got {labels.dtype} {labels.shape}")
        if len(labels) != len(images):
            raise TaskDataError(f"{where}: {split}/labels has {len(labels)} entries but "
                                f"{split}/images has {len(images)}")
        if len(labels) == 0:
            raise TaskDataError(f"{where}: {split} split is empty")
        if labels.min() < 0 or labels.max() >= n_classes:
            raise TaskDataError(f"{where}: {split}/labels outside [0, {n_classes}): "
                                f"min {labels.min()}, max {labels.max()}")
        shapes[split] = images.shape[1:]
    if shapes["train"] != shapes["test"]:
        raise TaskDataError(f"{where}: train images are {shapes['train']} but test images are {shapes['test']}")


def write_task_h5(path: str | os.PathLike, train_images: np.ndarray, train_labels: np.ndarray,
                  test_images: np.ndarray, test_labels: np.ndarray, class_names: Sequence[str],
                  attrs: dict[str, Any]) -> Path:
    """Write a task file atomically; ``attrs`` needs task, source, licence, split, kind, seed."""
    path = Path(path)
    train_labels = np.asarray(train_labels, dtype=np.int64)
    test_labels = np.asarray(test_labels, dtype=np.int64)
    validate_arrays(str(path), train_images, train_labels, test_images, test_labels, class_names)
    missing = [k for k in STR_ATTRS + ("seed",) if k not in attrs]
    if missing:
        raise TaskDataError(f"{path}: attrs lack {', '.join(missing)}")
    with atomic_path(path, suffix=".h5.part") as tmp:
        with h5py.File(tmp, "w") as f:
            for split, images, labels in (("train", train_images, train_labels),
                                          ("test", test_images, test_labels)):
                g = f.create_group(split)
                # Chunks of whole images so a reader can slice mini-batches cheaply.
                chunk = (min(len(images), 256),) + images.shape[1:]
                g.create_dataset("images", data=images, chunks=chunk, compression="gzip",
                                 compression_opts=4)
                g.create_dataset("labels", data=labels)
            f.create_dataset("class_names", data=list(class_names),
                             dtype=h5py.string_dtype(encoding="utf-8"))
            for k in STR_ATTRS:
                f.attrs[k] = str(attrs[k])
            f.attrs["seed"] = int(attrs["seed"])
            f.attrs["n_classes"] = len(class_names)
            f.attrs["format_version"] = FORMAT_VERSION
            for k, v in attrs.items():  # extra attrs (e.g. native size) pass through
                if k not in f.attrs:
                    f.attrs[k] = v
    return path


def load_task_h5(path: str | os.PathLike) -> TaskData:
    """Read and validate a task file; any deviation from the layout raises TaskDataError."""
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"task file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise TaskDataError(f"not a readable HDF5 file: {path} ({e})") from None
    with f:
        for name in ("train/images", "train/labels", "test/images", "test/labels", "class_names"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise TaskDataError(f"{path}: missing dataset '{name}' (layout: docs/FORMATS.md, Downstream task)")
        for k in STR_ATTRS + INT_ATTRS:
            if k not in f.attrs:
                raise TaskDataError(f"{path}: missing attribute '{k}'")
        if int(f.attrs["format_version"]) != FORMAT_VERSION:
            raise TaskDataError(f"{path}: format_version {f.attrs['format_version']} is not {FORMAT_VERSION}")
        class_names = [s.decode() if isinstance(s, bytes) else str(s) for s in f["class_names"][()]]
        data = TaskData(
            train_images=f["train/images"][()], train_labels=f["train/labels"][()],
            test_images=f["test/images"][()], test_labels=f["test/labels"][()],
            class_names=class_names,
            attrs={k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()},
        )
    validate_arrays(str(path), data.train_images, data.train_labels, data.test_images,
                    data.test_labels, data.class_names)
    if data.attrs["n_classes"] != data.n_classes:
        raise TaskDataError(f"{path}: attribute n_classes={data.attrs['n_classes']} but "
                            f"class_names has {data.n_classes} entries")
    data.train_labels = data.train_labels.astype(np.int64)
    data.test_labels = data.test_labels.astype(np.int64)
    return data
