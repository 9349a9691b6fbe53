"""Downstream evaluation of a backbone on a task: linear probe, full fine-tune, or from scratch.

Paper protocol (docs/algorithms.md, "Downstream evaluation"): SGD with momentum 0.9, learning
rate x0.1 at 50% and 75% of the epochs (torch ``MultiStepLR``); a grid over learning rate, weight
decay, batch size and (where several are listed) epochs is scored on a validation split carved
from the training set (seeded, stratified where the class count allows; never the test split);
the best point is retrained on the full training set and its test top-1 is reported. A one-point
grid has nothing to choose, so its validation run is skipped (``grid`` is then empty in the
result).

- ``linear``: the backbone is frozen; its pooled features (evaluation transform) are computed once
  and a linear classifier is trained on them.
- ``finetune``: all weights train from the pre-trained checkpoint, with a new head; training images
  get random-resized-crop + flip.
- ``scratch``: as finetune, from a random initialisation (the lower reference).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..backbones.features import features, load_source
from ..backbones.images import EvalImages, H5ImageDataset, normalize_batch, train_transform
from ..backbones.models import create_backbone, load_backbone
from ..backbones.runtime import (autocast_for, derive_seed, grad_scaler, resolve_device, seed_everything,
                                 seed_worker, to_device)
from ..tasks.prepare import stratified_split
from .common import train_one_epoch

log = logging.getLogger(__name__)
METHODS = ("linear", "finetune", "scratch")


@dataclass
class EvalConfig:
    """``evaluate.<method>`` plus ``evaluate.val_fraction``; defaults live in the schema."""

    epochs: int | Sequence[int]         # one value, or a list: part of the grid
    lrs: Sequence[float]
    weight_decays: Sequence[float]
    batch_sizes: Sequence[int]
    val_fraction: float
    method: str                         # not config keys: the job's method, the backbone's input
    image_size: int                     # size, seed and device
    seed: int
    device: str
    momentum: float = 0.9               # the paper's SGD; not configurable
    crop_scale: tuple[float, float] = (0.35, 1.0)  # fine-tune augmentation, as in pre-training
    num_workers: int = 0
    amp: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"evaluate: method must be one of {METHODS}, got {self.method!r}")
        if not (0 < self.val_fraction < 1):
            raise ValueError("evaluate: val_fraction must lie in (0, 1)")
        if not self.lrs or not self.weight_decays or not self.batch_sizes:
            raise ValueError("evaluate: lrs, weight_decays and batch_sizes need at least one value")
        if not self.epoch_grid() or min(self.epoch_grid()) < 1:
            raise ValueError("evaluate: epochs must be at least 1")
        self.lrs, self.weight_decays = list(self.lrs), list(self.weight_decays)
        self.batch_sizes = [int(b) for b in self.batch_sizes]
        self.crop_scale = tuple(float(v) for v in self.crop_scale)

    def epoch_grid(self) -> list[int]:
        """``epochs`` as a list (one number: a one-value list)."""
        return [int(e) for e in np.atleast_1d(self.epochs)]

    def grid(self) -> list[dict[str, float]]:
        return [{"epochs": ep, "lr": lr, "weight_decay": wd, "batch_size": bs}
                for ep, lr, wd, bs in itertools.product(self.epoch_grid(), self.lrs, self.weight_decays,
                                                        self.batch_sizes)]


def validation_split(labels: np.ndarray, fraction: float, seed: int,
                     where: str = "training set") -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of training indices into (fit, validation): per class (the task preparation's
    ``stratified_split``, every class on both sides) when every class has two images, else one
    seeded permutation of all of them."""
    labels = np.asarray(labels)
    if len(labels) < 2:
        raise ValueError(f"evaluate: {where} has {len(labels)} training image(s); "
                         "a validation split needs at least 2")
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    if counts.min() >= 2:
        fit, val = stratified_split(labels, len(counts), fraction, rng, [str(c) for c in range(len(counts))])
    else:
        log.warning("%s: a class has fewer than 2 training images: unstratified validation split", where)
        perm = rng.permutation(len(labels))
        n_val = min(max(1, round(fraction * len(labels))), len(labels) - 1)
        fit, val = perm[n_val:], perm[:n_val]
    return np.sort(fit), np.sort(val)


def _schedule(optimizer, epochs: int):
    # x0.1 at 50% and 75% of the epochs (paper: 25 and 37 of 50).
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, [max(1, epochs // 2), max(1, (3 * epochs) // 4)], 0.1)


class FeatureBatches:
    """The shuffled mini-batches of ``DataLoader(TensorDataset(f, y), batch_size, shuffle=True,
    generator=g)``, drawn from ``g`` exactly as it draws them (its base seed, then the permutation,
    then the sampler's empty second permutation), so training on them is bit-identical; but one
    index per batch instead of one per sample and a collate: the linear probe twice as fast."""

    def __init__(self, f: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator):
        self.f, self.y, self.batch_size, self.g = f, y, int(batch_size), generator

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self):
        n = len(self.y)
        torch.empty((), dtype=torch.int64).random_(generator=self.g)
        perm = torch.randperm(n, generator=self.g)
        torch.randperm(n, generator=self.g)
        for idx in perm.split(self.batch_size):
            yield self.f[idx], self.y[idx]


def _train_linear(f: torch.Tensor, y: torch.Tensor, n_classes: int, hp: dict, cfg: EvalConfig,
                  seed: int, device) -> nn.Module:
    seed_everything(seed)
    head = nn.Linear(f.shape[1], n_classes).to(device)
    opt = torch.optim.SGD(head.parameters(), lr=hp["lr"], momentum=cfg.momentum, weight_decay=hp["weight_decay"])
    sched = _schedule(opt, hp["epochs"])
    g = torch.Generator().manual_seed(seed)
    loader = FeatureBatches(f, y, int(hp["batch_size"]), g)
    loss_fn = nn.CrossEntropyLoss()
    scaler = grad_scaler(device, cfg.amp)
    for _ in range(hp["epochs"]):
        train_one_epoch(head, loader, opt, loss_fn, device, cfg.amp, scaler, progress=False)
        sched.step()
    return head


@torch.no_grad()
def _accuracy_linear(head: nn.Module, f: torch.Tensor, y: torch.Tensor, device) -> float:
    pred = head(f.to(device)).argmax(1).cpu()
    return float(100.0 * (pred == y).double().mean())


class _Backbone:
    """Builds a fresh network for each grid point: pre-trained weights + new head, or random init."""

    def __init__(self, model_name: str | None, checkpoint: Path | None, n_classes: int):
        self.model_name, self.checkpoint, self.n_classes = model_name, checkpoint, n_classes

    def build(self, seed: int) -> nn.Module:
        seed_everything(seed)  # the new head (or the whole net for scratch) starts the same each time
        if self.checkpoint is None:
            return create_backbone(self.model_name, num_classes=self.n_classes)
        model, _ = load_backbone(self.checkpoint)
        model.reset_classifier(self.n_classes)
        return model


def _train_full(model: nn.Module, ds, hp: dict, cfg: EvalConfig, seed: int, device,
                progress: bool) -> nn.Module:
    model = to_device(model, device)
    opt = torch.optim.SGD(model.parameters(), lr=hp["lr"], momentum=cfg.momentum, weight_decay=hp["weight_decay"])
    sched = _schedule(opt, hp["epochs"])
    loss_fn = nn.CrossEntropyLoss()
    scaler = grad_scaler(device, cfg.amp)
    for epoch in range(hp["epochs"]):
        seed_everything(derive_seed(seed, epoch))
        g = torch.Generator().manual_seed(derive_seed(seed, epoch, 1))
        loader = DataLoader(ds, batch_size=int(hp["batch_size"]), shuffle=True, generator=g,
                            drop_last=len(ds) > int(hp["batch_size"]), num_workers=cfg.num_workers,
                            worker_init_fn=seed_worker)
        train_one_epoch(model, loader, opt, loss_fn, device, cfg.amp, scaler, progress=progress,
                        desc=f"epoch {epoch + 1}/{hp['epochs']}")
        sched.step()
    return model


@torch.no_grad()
def _accuracy_full(model: nn.Module, ds: EvalImages, device, amp: bool) -> float:
    model.eval()
    correct = n = 0
    for x, y in ds.batches(256):
        with autocast_for(device, amp):
            correct += int((model(normalize_batch(x.to(device))).argmax(1).cpu() == y).sum())
        n += len(y)
    return 100.0 * correct / max(n, 1)


def _choose(grid: list[dict], scores: list[dict]) -> dict:
    if len(grid) == 1:
        return dict(grid[0])
    best = max(scores, key=lambda r: r["val_top1"])  # first of equals: grid order breaks ties
    return {k: best[k] for k in grid[0]}


def linear_probe(f_train, y_train, f_test, y_test, n_classes: int, cfg: EvalConfig,
                 split: tuple[np.ndarray, np.ndarray], device) -> dict[str, Any]:
    """The linear probe on already computed pooled features (raw, not normalised): each grid point
    trained on the fit part of ``split`` and scored on its validation part, the best retrained on
    all training features, test top-1 (%) reported. ``split`` comes from ``validation_split``."""
    f_train, f_test = torch.as_tensor(f_train), torch.as_tensor(f_test)
    y_train, y_test = torch.as_tensor(y_train), torch.as_tensor(y_test)
    fit_t, val_t = torch.as_tensor(split[0]), torch.as_tensor(split[1])
    grid, grid_scores = cfg.grid(), []
    for hp in grid if len(grid) > 1 else ():
        head = _train_linear(f_train[fit_t], y_train[fit_t], n_classes, hp, cfg, derive_seed(cfg.seed, 2), device)
        grid_scores.append({**hp, "val_top1": _accuracy_linear(head, f_train[val_t], y_train[val_t], device)})
    hp = _choose(grid, grid_scores)
    head = _train_linear(f_train, y_train, n_classes, hp, cfg, derive_seed(cfg.seed, 3), device)
    return {"test_top1": _accuracy_linear(head, f_test, y_test, device), "chosen": hp, "grid": grid_scores}


def evaluate(model_name: str | None, checkpoint: str | os.PathLike | None, task_h5: str | os.PathLike,
             cfg: EvalConfig, progress: bool = True, feature_amp: bool = True,
             feature_batch_size: int = 256) -> dict[str, Any]:
    """Select hyper-parameters on validation, retrain on all training images, report test top-1.
    ``model_name`` builds the random-init network of ``scratch``; other methods load ``checkpoint``.
    ``linear`` probes features computed at ``feature_amp`` and ``feature_batch_size`` (the final
    stage's reward.amp and reward.batch_size)."""
    if cfg.method == "scratch":
        checkpoint = None
    elif checkpoint is None:
        raise ValueError(f"evaluate: method {cfg.method!r} needs a backbone checkpoint")
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    grid = cfg.grid()
    grid_scores: list[dict[str, Any]] = []  # stays empty for a one-point grid: nothing to choose

    def split(labels):
        return validation_split(labels, cfg.val_fraction, derive_seed(cfg.seed, 7), where=str(task_h5))

    if cfg.method == "linear":
        # the backbone's raw pooled features, as every stage gets them (its own normalisation; bf16
        # where native under feature_amp): the same probe as the final stage's linear column; the
        # task is read once, by them
        fs = features(load_source("evaluate", checkpoint), task_h5, batch_size=feature_batch_size, device=device,
                      progress=progress, write_cache=False, amp=feature_amp)
        n_classes, n_train, n_test = fs.n_classes, len(fs.train_labels), len(fs.test_labels)
        fit_idx, val_idx = split(fs.train_labels)
        probe = linear_probe(fs.train, fs.train_labels, fs.test, fs.test_labels, n_classes, cfg, (fit_idx, val_idx),
                             device)
        test_top1, hp, grid_scores = probe["test_top1"], probe["chosen"], probe["grid"]
    else:
        train_eval = EvalImages(task_h5, "train", cfg.image_size)
        test = EvalImages(task_h5, "test", cfg.image_size)
        n_classes, n_train, n_test = train_eval.n_classes, len(train_eval), len(test)
        fit_idx, val_idx = split(train_eval.labels)
        backbone = _Backbone(model_name, checkpoint, n_classes)
        aug = train_transform(cfg.image_size, cfg.crop_scale)
        fit_ds = H5ImageDataset(task_h5, "train", aug, indices=fit_idx)
        val_ds = EvalImages(task_h5, "train", cfg.image_size, indices=val_idx)
        for hp in grid if len(grid) > 1 else ():
            model = _train_full(backbone.build(derive_seed(cfg.seed, 1)), fit_ds, hp, cfg,
                                derive_seed(cfg.seed, 2), device, progress)
            grid_scores.append({**hp, "val_top1": _accuracy_full(model, val_ds, device, cfg.amp)})
            log.info("grid %s -> val %.2f", hp, grid_scores[-1]["val_top1"])
        hp = _choose(grid, grid_scores)
        full_ds = H5ImageDataset(task_h5, "train", aug)
        model = _train_full(backbone.build(derive_seed(cfg.seed, 1)), full_ds, hp, cfg,
                            derive_seed(cfg.seed, 3), device, progress)
        test_top1 = _accuracy_full(model, test, device, cfg.amp)

    return {"method": cfg.method, "test_top1": test_top1, "chosen": hp, "grid": grid_scores,
            "n_fit": int(len(fit_idx)), "n_val": int(len(val_idx)), "n_train": int(n_train),
            "n_test": int(n_test), "n_classes": int(n_classes), "epochs": hp["epochs"],
            "seconds": round(time.perf_counter() - t0, 3), "device": str(device)}
