"""The training epoch shared by pre-training and evaluation (its device and precision helpers live
in ``task2sim.backbones.runtime``)."""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from ..backbones.images import normalize_batch
from ..backbones.runtime import autocast_for, grad_scaler


def train_one_epoch(model: nn.Module, loader, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                    device: torch.device, amp: bool = True,
                    scaler: torch.amp.GradScaler | None = None, mixup: Callable | None = None,
                    scheduler=None, step_offset: int = 0, progress: bool = True,
                    desc: str = "epoch") -> dict[str, float]:
    """One pass over ``loader``: normalise on the device, optional mixup, autocast, scaled step.

    ``scheduler`` (timm, per-step) gets ``step_update(step_offset + step + 1)`` after each step.
    Returns mean loss, accuracy against the hard labels, images seen and seconds.
    """
    if scaler is None:
        scaler = grad_scaler(device, amp)
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    t0 = time.perf_counter()
    bar = tqdm(loader, desc=desc, disable=not progress, mininterval=5.0, leave=False)
    for step, (x, y) in enumerate(bar):
        x, y = normalize_batch(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        if x.dim() == 4:  # images (not pooled features): the layout of ``to_device``
            x = x.contiguous(memory_format=torch.channels_last)
        target = y
        if mixup is not None:
            x, target = mixup(x, y)
        with autocast_for(device, amp):
            logits = model(x)
            loss = criterion(logits, target)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step_update(num_updates=step_offset + step + 1)
        loss_sum += float(loss.detach()) * len(y)
        correct += int((logits.detach().argmax(1) == y).sum())
        seen += len(y)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}",
                        img_s=f"{seen / (time.perf_counter() - t0):.0f}")
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1), "seen": seen,
            "seconds": time.perf_counter() - t0}
