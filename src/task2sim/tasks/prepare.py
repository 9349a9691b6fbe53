"""Turn a configured task into its train/test arrays: load the source, split, cap, resize.

Usage::

    settings = task_settings({"source": "digits8", "max_train": 500})
    task = prepare_task("digits8", settings, seed=0)    # -> TaskData, ready for write_task_h5

The same post-processing applies to every source: a seeded stratified split (``test_fraction``)
when the source has none, a seeded class-balanced subsample to ``max_train``/``max_test``, and an
optional resize to ``image_size`` squared. Grey sources stay C=1, colour ones C=3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..config import ConfigError, config_from_dict, section_defaults
from .common import SourceData, SourceRequest, decode_image, resize_array, stack_images
from .data import TaskData, TaskDataError, validate_arrays
from .sources import get_loader


@dataclass(frozen=True)
class TaskSettings:
    """One task's resolved settings (config.yaml tasks.items.<id> over the tasks-level defaults);
    build it with ``task_settings``, which takes the defaults from the schema."""
    source: str
    max_train: int
    max_test: int
    test_fraction: float
    path: str | None = None          # absent unless the source reads files
    image_size: int | None = None    # absent: the source's own size

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise TaskDataError(f"task setting 'test_fraction' must be in (0, 1), got {self.test_fraction}")


def task_settings(d: dict[str, Any]) -> TaskSettings:
    """``TaskSettings`` from one task's keys; the tasks-level defaults (caps, test fraction) and
    the item defaults come from the schema. Unknown keys and bad values fail in one line."""
    shared = {k: v for k, v in section_defaults("tasks").items() if k != "items"}
    try:
        return config_from_dict(TaskSettings, {**shared, **d}, "$defs.task", where="task settings")
    except ConfigError as e:  # the tasks stage reports every bad input as a TaskDataError
        raise TaskDataError(str(e)) from None


def balanced_quota(counts: np.ndarray, cap: int) -> np.ndarray:
    """Per-class take counts: as equal as possible, never more than a class has, summing to
    min(cap, total). Classes short of the fair share give their slack to the others."""
    counts = np.asarray(counts, dtype=np.int64)
    take = np.zeros_like(counts)
    left = min(int(cap), int(counts.sum()))
    open_ = counts > 0
    while left > 0 and open_.any():
        share = max(1, left // int(open_.sum()))
        for c in np.flatnonzero(open_):
            add = min(share, counts[c] - take[c], left)
            take[c] += add
            left -= add
            if take[c] == counts[c]:
                open_[c] = False
            if left == 0:
                break
    return take


def balanced_subsample(labels: np.ndarray, n_classes: int, cap: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Indices of a seeded class-balanced subsample of at most ``cap`` items, sorted by class
    then by draw order (stable across runs with the same seed)."""
    counts = np.bincount(labels, minlength=n_classes)
    take = balanced_quota(counts, cap)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:take[c]] for c in range(n_classes)]
    return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)


def stratified_split(labels: np.ndarray, n_classes: int, test_fraction: float,
                     rng: np.random.Generator, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split; every class keeps at least one image on each side."""
    train, test = [], []
    for c in range(n_classes):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) < 2:
            raise TaskDataError(f"class '{class_names[c]}' has {len(idx)} image(s); at least 2 are "
                                f"needed to put it in both the train and the test split")
        n_test = min(max(1, round(test_fraction * len(idx))), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.concatenate(train), np.concatenate(test)


def _check_classes(where: str, labels: np.ndarray, class_names: list[str]) -> None:
    if len(class_names) < 2:
        raise TaskDataError(f"{where}: a task needs at least 2 classes, found {len(class_names)} "
                            f"({', '.join(class_names) or 'none'})")
    counts = np.bincount(labels, minlength=len(class_names))
    for c in np.flatnonzero(counts == 0):
        raise TaskDataError(f"{where}: class '{class_names[c]}' has no images")


def _materialise(raw: SourceData, which: str, idx: np.ndarray, image_size: int | None,
                 task: str) -> tuple[np.ndarray | list[np.ndarray], list[Path]]:
    images = raw.images if which == "train" else raw.test_images
    files = raw.files if which == "train" else raw.test_files
    if images is not None:
        return images[idx], []
    assert files is not None
    chosen = [files[i] for i in idx]
    decoded = [decode_image(p, image_size)
               for p in tqdm(chosen, desc=f"{task} {which}: decode", unit="img", mininterval=2)]
    return decoded, chosen


def prepare_task(task: str, settings: TaskSettings, seed: int) -> tuple[TaskData, list[str]]:
    """Load, split, cap and resize one task. Returns the data and the input files it read
    (for provenance hashes)."""
    loader = get_loader(settings.source, task)
    where = f"task '{task}' (source {settings.source}" + (f", path {settings.path})" if settings.path else ")")
    req = SourceRequest(task=task, seed=seed, max_train=settings.max_train,
                        max_test=settings.max_test, test_fraction=settings.test_fraction,
                        image_size=settings.image_size, path=settings.path)
    raw = loader(req)
    n_classes = len(raw.class_names)
    raw.labels = np.asarray(raw.labels, dtype=np.int64)
    _check_classes(where, raw.labels, raw.class_names)
    # Separate streams: changing the split does not change which images the cap keeps, and v.v.
    split_rng, train_rng, test_rng = (np.random.default_rng([seed, k]) for k in (1, 2, 3))
    if raw.has_split:
        raw.test_labels = np.asarray(raw.test_labels, dtype=np.int64)
        _check_classes(f"{where} test split", raw.test_labels, raw.class_names)
        tr_pool = np.arange(len(raw.labels))
        te_pool = np.arange(len(raw.test_labels))
        te_labels_all = raw.test_labels
        split = raw.split
    else:
        tr_pool, te_pool = stratified_split(raw.labels, n_classes, settings.test_fraction,
                                            split_rng, raw.class_names)
        te_labels_all = raw.labels
        # Same array serves both sides; the pools are disjoint index sets into it.
        raw.test_images, raw.test_files = raw.images, raw.files
        split = (f"seeded stratified split, test_fraction={settings.test_fraction}"
                 + (f" ({raw.split})" if raw.split else ""))
    if settings.max_train < n_classes or settings.max_test < n_classes:
        key = "max_train" if settings.max_train < n_classes else "max_test"
        raise TaskDataError(f"{where}: {key}={getattr(settings, key)} is below the number of "
                            f"classes ({n_classes}); every class needs an image in each split")
    tr_idx = tr_pool[balanced_subsample(raw.labels[tr_pool], n_classes, settings.max_train, train_rng)]
    te_idx = te_pool[balanced_subsample(te_labels_all[te_pool], n_classes, settings.max_test, test_rng)]

    image_size = settings.image_size or raw.default_image_size
    xtr, ftr = _materialise(raw, "train", tr_idx, image_size, task)
    xte, fte = _materialise(raw, "test", te_idx, image_size, task)
    if isinstance(xtr, list):  # decoded files: unify sizes and channels over both splits
        both = stack_images(xtr + xte, ftr + fte, f"'image_size' for task '{task}'")
        xtr, xte = both[:len(xtr)], both[len(xtr):]
    elif image_size is not None:
        xtr = resize_array(xtr, image_size)
        xte = resize_array(xte, image_size)
    ytr, yte = raw.labels[tr_idx], te_labels_all[te_idx]
    validate_arrays(where, xtr, ytr, xte, yte, raw.class_names)
    attrs = {"task": task, "source": raw.source, "licence": raw.licence, "split": split,
             "kind": raw.kind, "seed": int(seed)}
    inputs = list(raw.inputs) + [str(p) for p in ftr + fte]
    return TaskData(xtr, ytr, xte, yte, list(raw.class_names), attrs), inputs
