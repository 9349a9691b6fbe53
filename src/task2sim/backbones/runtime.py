"""Where a network runs: seeding, device selection, mixed precision and memory layout, shared by
every stage that runs one (pre-training, rewards, Task2Vec, ASG, evaluation)."""

from __future__ import annotations

import functools
import logging
import random
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def derive_seed(*keys: int) -> int:
    """A 32-bit seed from integer keys, e.g. (master seed, epoch); stable across runs."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: numpy and random follow the worker's torch seed (set by the loader)."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name`` (auto: CUDA where torch sees it). Logs ``device: ...`` once a
    process, the line the GPU check (tools/gpu_check.sh) reads in every job's log."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device")
    device = torch.device(name)
    _log_device(str(device))
    return device


@functools.lru_cache(maxsize=None)
def _log_device(name: str) -> None:
    detail = ""
    if name.startswith("cuda"):
        try:
            detail = f" ({torch.cuda.get_device_name()})"
        except (RuntimeError, AssertionError):  # CUDA reported but not usable: the name is no matter
            pass
    log.info("device: %s%s", name, detail)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX, Linux's /proc/cpuinfo flags).

    oneDNN then runs bf16 convolutions and matmuls about twice as fast as fp32 (BENCHMARKS.md:
    precision); without these instructions bf16 is emulated and slower than fp32.
    """
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype of a run with ``amp`` on: on GPU bf16 (fp16 where bf16 is missing), on a
    CPU with native bf16 bf16, otherwise None (fp32)."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast_for(device: torch.device, enabled: bool = True):
    """Autocast to ``amp_dtype`` (weights, optimizer state and losses stay fp32); a no-op context
    where that is None."""
    dtype = amp_dtype(device, enabled)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def to_device(model: nn.Module, device: torch.device) -> nn.Module:
    """Move a convolutional network to ``device`` in channels-last layout: oneDNN's and cuDNN's
    fast convolution kernels work on NHWC, so NCHW would be converted at every layer (BENCHMARKS.md:
    precision). ``train_one_epoch`` hands it its batches in the same layout."""
    return model.to(device, memory_format=torch.channels_last)


def grad_scaler(device: torch.device, enabled: bool = True) -> torch.amp.GradScaler:
    """Loss scaling is needed only for fp16 autocast (bf16 has fp32's range); disabled otherwise."""
    return torch.amp.GradScaler("cuda", enabled=amp_dtype(device, enabled) == torch.float16)
