"""Pre-train a timm backbone on one rendered dataset (``results/renders/{bits}/images.h5``).

    from task2sim.config import config_from_dict
    from task2sim.train.pretrain import PretrainConfig, pretrain
    cfg = config_from_dict(PretrainConfig, {"epochs": 5}, "pretrain", seed=0, device="auto")
    pretrain(cfg, "images.h5", "out/")

AdamW (timm's optimizer factory: no weight decay on biases and norm parameters), linear warm-up
then cosine decay (timm ``CosineLRScheduler``, updated every step), label smoothing, optional
RandAugment and mixup/cutmix (timm). Writes ``model.pt`` (weights + the timm-style
``pretrained_cfg`` that says what they are, ``models.save_backbone``) and ``history.tsv``; the CLI
adds the provenance record. After every epoch a resumable ``checkpoint.pt`` is saved atomically; a rerun
resumes from it when its fingerprint (config, resolved device, AMP dtype, input checksum)
matches. Every epoch reseeds all generators from (seed, epoch), so an interrupted and resumed CPU
run ends with exactly the weights of an uninterrupted one (no RNG state needs storing).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch import nn
from torch.utils.data import DataLoader

from ..backbones.images import H5ImageDataset, read_meta, train_transform
from ..backbones.models import create_backbone, save_backbone
from ..backbones.preprocess import IMAGENET_MEAN, IMAGENET_STD
from ..backbones.runtime import (amp_dtype, derive_seed, grad_scaler, resolve_device, seed_everything,
                                 seed_worker, to_device)
from ..checkpoint import fingerprint, load_checkpoint, remove_checkpoint, save_checkpoint
from ..io import write_tsv
from ..provenance import sha256_file
from .common import train_one_epoch

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "lr", "images_per_s")


@dataclass
class PretrainConfig:
    """The ``pretrain`` config section plus the run's seed and device; defaults live in the schema
    (build it with ``config_from_dict(PretrainConfig, d, "pretrain", seed=.., device=..)``)."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    min_lr: float
    weight_decay: float
    warmup_epochs: int
    label_smoothing: float
    crop_scale: tuple[float, float]
    hflip: float
    randaugment: str                    # timm spec, e.g. "rand-m9-mstd0.5-inc1"; "" = off
    color_jitter: float
    mixup: float                        # mixup alpha; 0 = off
    cutmix: float                       # cutmix alpha; 0 = off
    num_workers: int                    # runtime only
    in_memory: bool                     # runtime only
    amp: bool                           # autocast where the device has a fast reduced precision
    seed: int
    device: str
    image_size: int | None = None       # not a config key: None = the render's own size

    def __post_init__(self) -> None:
        self.crop_scale = tuple(float(v) for v in self.crop_scale)
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("pretrain: epochs and batch_size must be >= 1")
        if self.warmup_epochs >= self.epochs and self.warmup_epochs > 0:
            raise ValueError(f"pretrain: warmup_epochs ({self.warmup_epochs}) must be below "
                             f"epochs ({self.epochs})")
        if (self.mixup > 0 or self.cutmix > 0) and self.batch_size % 2:
            # timm's Mixup pairs each image with its mirror in the batch and asserts an even size.
            raise ValueError(f"pretrain: mixup/cutmix need an even batch_size, got {self.batch_size}")

    @property
    def uses_mixup(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def fingerprint(self, input_sha: str, device: str = "cpu", amp: str = "none") -> str:
        """``device``/``amp``: the resolved device and autocast dtype (``device="auto"`` says
        nothing), so a checkpoint is never silently continued on other hardware or precision.
        The requested ``device``/``amp`` are replaced by those; settings that cannot change the
        result (loader plumbing) stay out."""
        skip = ("num_workers", "in_memory", "device", "amp")
        d = {k: v for k, v in asdict(self).items() if k not in skip}
        return fingerprint(d, input_sha, device, amp)


def _loader(ds, cfg: PretrainConfig, epoch: int, pin: bool = False) -> DataLoader:
    g = torch.Generator()
    g.manual_seed(derive_seed(cfg.seed, epoch, 1))
    # Mixup needs even batches: drop the incomplete last one (which may be odd) when it is on.
    drop = cfg.uses_mixup or len(ds) >= cfg.batch_size
    return DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=g, drop_last=drop,
                      num_workers=cfg.num_workers,
                      worker_init_fn=seed_worker, pin_memory=pin,
                      persistent_workers=False)


@dataclass
class _Run:
    """Everything one pre-training run builds before its first step."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: CosineLRScheduler
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    mixup: Mixup | None
    dataset: H5ImageDataset
    device: torch.device
    image_size: int
    n_classes: int
    steps_per_epoch: int
    fingerprint: str


def _set_up(cfg: PretrainConfig, images_h5: Path) -> _Run:
    device = resolve_device(cfg.device)
    meta = read_meta(images_h5)
    size = cfg.image_size or int(meta["shape"][0])
    n_classes = meta["n_classes"]
    dtype = amp_dtype(device, cfg.amp)
    amp_name = str(dtype).removeprefix("torch.") if dtype is not None else "none"
    fingerprint = cfg.fingerprint(sha256_file(images_h5), str(device), amp_name)
    ds = H5ImageDataset(images_h5, None, train_transform(size, cfg.crop_scale, cfg.hflip,
                                                         cfg.randaugment, cfg.color_jitter),
                        in_memory=cfg.in_memory)
    seed_everything(derive_seed(cfg.seed, 0xB0D1))
    model = to_device(create_backbone(cfg.model, num_classes=n_classes), device)
    # timm's factory (as the paper's timm train.py): weight decay spares biases and norm weights.
    optimizer = create_optimizer_v2(model, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(_loader(ds, cfg, 0))
    if steps_per_epoch == 0:
        raise ValueError(f"pretrain: {images_h5} has {len(ds)} images, fewer than one mixup batch "
                         f"of {cfg.batch_size}")
    total = steps_per_epoch * cfg.epochs
    warmup = steps_per_epoch * cfg.warmup_epochs
    # warmup_prefix: the cosine starts after the warm-up and spans the remaining steps exactly.
    scheduler = CosineLRScheduler(optimizer, t_initial=max(1, total - warmup), lr_min=cfg.min_lr,
                                  warmup_t=warmup,
                                  warmup_lr_init=cfg.lr * 0.01, warmup_prefix=True,
                                  t_in_epochs=False)
    mixup = None
    if cfg.uses_mixup:
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix,
                      label_smoothing=cfg.label_smoothing, num_classes=n_classes)
        criterion: nn.Module = SoftTargetCrossEntropy()
    else:
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    return _Run(model, optimizer, scheduler, grad_scaler(device, cfg.amp), criterion, mixup, ds, device,
                size, n_classes, steps_per_epoch, fingerprint)


def _resume(run: _Run, ckpt_path: Path) -> tuple[int, list[dict[str, float]]]:
    """(epochs done, history) from a checkpoint of the same run; (0, []) otherwise."""
    ckpt = load_checkpoint(ckpt_path, run.fingerprint)
    if ckpt is None:
        return 0, []
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    log.info("resuming %s from epoch %d", ckpt_path, int(ckpt["epoch"]))
    return int(ckpt["epoch"]), ckpt["history"]


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    write_tsv(path, HISTORY_COLUMNS,
              [{k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in HISTORY_COLUMNS} for r in history])


def pretrain(cfg: PretrainConfig, images_h5: str | os.PathLike, out_dir: str | os.PathLike,
             stop_after_epoch: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Train, checkpointing every epoch; writes model.pt and history.tsv, returns a summary.

    ``stop_after_epoch``: return after that many epochs in total, leaving only the checkpoint (a
    time-limited job, or the interruption in the resume test); the next call resumes.
    """
    images_h5, out_dir = Path(images_h5), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _set_up(cfg, images_h5)
    ckpt_path = out_dir / CHECKPOINT
    start_epoch, history = _resume(run, ckpt_path)

    t_all = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        # Everything random in this epoch follows from (seed, epoch): resuming needs no RNG state.
        seed_everything(derive_seed(cfg.seed, epoch, 2))
        loader = _loader(run.dataset, cfg, epoch, pin=run.device.type == "cuda")
        ep = train_one_epoch(run.model, loader, run.optimizer, run.criterion, run.device, cfg.amp, run.scaler,
                             run.mixup, run.scheduler, step_offset=epoch * run.steps_per_epoch,
                             progress=progress, desc=f"epoch {epoch + 1}/{cfg.epochs}")
        dt = ep["seconds"]
        row = {"epoch": epoch + 1, "loss": ep["loss"], "accuracy": ep["accuracy"],
               "lr": run.optimizer.param_groups[0]["lr"], "images_per_s": ep["seen"] / dt if dt > 0 else 0.0}
        history.append(row)
        log.info("epoch %d/%d loss %.4f acc %.3f lr %.2e %.0f img/s", row["epoch"], cfg.epochs,
                 row["loss"], row["accuracy"], row["lr"], row["images_per_s"])
        save_checkpoint(ckpt_path, run.fingerprint, {
            "epoch": epoch + 1, "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(), "history": history})
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < cfg.epochs:
            return {"finished": False, "epoch": epoch + 1, "history": history}

    model_path, hist_path = out_dir / "model.pt", out_dir / "history.tsv"
    save_backbone(model_path, run.model, cfg.model, run.image_size, IMAGENET_MEAN, IMAGENET_STD,
                  render_bits=read_meta(images_h5).get("bits"))
    _write_history(hist_path, history)
    remove_checkpoint(ckpt_path)  # finished: model.pt is the artifact, the checkpoint only served resuming
    return {"finished": True, "model": cfg.model, "n_classes": run.n_classes, "n_images": len(run.dataset),
            "image_size": run.image_size, "device": str(run.device), "feature_dim": int(run.model.num_features),
            "final_loss": history[-1]["loss"], "final_accuracy": history[-1]["accuracy"],
            "mean_images_per_s": float(np.mean([r["images_per_s"] for r in history])),
            "seconds_this_run": time.perf_counter() - t_all, "resumed_from_epoch": start_epoch,
            "outputs": [os.fspath(model_path), os.fspath(hist_path)], "history": history}
