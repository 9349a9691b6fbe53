"""Image datasets read from the project's HDF5 files, and their timm transforms.

Two layouts (docs/FORMATS.md): a render (``images.h5``: ``images``/``labels`` at the root, attr
``complete``) and a task (``data.h5``: ``train/...`` and ``test/...``). ``H5ImageDataset`` reads
either, as ``(tensor, label)`` pairs.

Loading: with ``in_memory=True`` the whole uint8 array is read once (CPU-sized data: 2880 renders of
64 px are 35 MB) and DataLoader workers share it copy-on-write; otherwise each worker opens the file
lazily on first access (an h5py handle must not cross a fork). BENCHMARKS.md compares the two.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import h5py
import numpy as np
import torch
from PIL import Image
from timm.data import create_transform
from torch.utils.data import Dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DataError(ValueError):
    """An input HDF5 file is missing, incomplete or not in the documented layout."""


def _group(f: h5py.File, path: str | os.PathLike, split: str | None) -> h5py.Group:
    if split is None:
        if "complete" in f.attrs and not bool(f.attrs["complete"]):
            raise DataError(f"{path}: render is incomplete (attr complete is False)")
        g = f
    else:
        if split not in f:
            raise DataError(f"{path}: no split {split!r} (has {sorted(f.keys())})")
        g = f[split]
    for key in ("images", "labels"):
        if key not in g:
            raise DataError(f"{path}: missing dataset {(split + '/' if split else '') + key!r}")
    if g["images"].ndim != 4 or g["images"].shape[-1] not in (1, 3) or g["images"].dtype != np.uint8:
        raise DataError(f"{path}: images must be uint8 (N, H, W, C) with C in {{1, 3}}, "
                        f"got {g['images'].dtype} {g['images'].shape}")
    if g["labels"].shape[0] != g["images"].shape[0]:
        raise DataError(f"{path}: {g['labels'].shape[0]} labels for {g['images'].shape[0]} images")
    return g


def read_meta(path: str | os.PathLike, split: str | None = None) -> dict:
    """Number of images and classes, image shape, class names, without reading the pixels."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with h5py.File(path, "r") as f:
        g = _group(f, path, split)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["class_names"][()]] \
            if "class_names" in f else None
        labels = g["labels"][()]
        n_classes = int(f.attrs.get("n_classes", len(names) if names else int(labels.max()) + 1))
        return {"n": int(g["images"].shape[0]), "shape": tuple(g["images"].shape[1:]),
                "n_classes": n_classes, "class_names": names}


def read_arrays(path: str | os.PathLike, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All images (uint8 NHWC) and labels (int64) of one split, in memory."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with h5py.File(path, "r") as f:
        g = _group(f, path, split)
        return g["images"][()], g["labels"][()].astype(np.int64)


class H5ImageDataset(Dataset):
    """``(transform(image), label)`` from a render (``split=None``) or a task split."""

    def __init__(self, path: str | os.PathLike, split: str | None = None,
                 transform: Callable | None = None, in_memory: bool = True,
                 indices: Sequence[int] | None = None):
        self.path = Path(path)
        self.split = split
        self.transform = transform
        self.in_memory = in_memory
        meta = read_meta(self.path, split)
        self.n_classes = meta["n_classes"]
        self.class_names = meta["class_names"]
        if in_memory:
            self._images, self._labels = read_arrays(self.path, split)
        else:
            self._images = None
            with h5py.File(self.path, "r") as f:
                self._labels = _group(f, self.path, split)["labels"][()].astype(np.int64)
        self._h5: h5py.File | None = None
        self.indices = np.arange(meta["n"]) if indices is None else np.asarray(indices, dtype=np.int64)

    @property
    def labels(self) -> np.ndarray:
        return self._labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def _raw(self, i: int) -> np.ndarray:
        if self._images is not None:
            return self._images[i]
        if self._h5 is None:  # opened on first use, i.e. inside the worker that reads it
            self._h5 = h5py.File(self.path, "r")
        g = self._h5 if self.split is None else self._h5[self.split]
        return g["images"][i]

    def __getitem__(self, idx: int):
        i = int(self.indices[idx])
        arr = self._raw(i)
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        if img.mode != "RGB":  # grayscale tasks feed 3-channel backbones
            img = img.convert("RGB")
        x = self.transform(img) if self.transform is not None else torch.from_numpy(np.asarray(img))
        return x, int(self._labels[i])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_h5"] = None  # never pickle an open handle into a worker
        return state


def train_transform(size: int, scale: tuple[float, float] = (0.35, 1.0), hflip: float = 0.5,
                    randaugment: str | None = None, color_jitter: float = 0.0,
                    uint8: bool = True) -> Callable:
    """timm's training pipeline: random-resized crop, flip, optional RandAugment.

    With ``uint8`` (default) it stops at a uint8 CHW tensor (timm's ``use_prefetcher`` layout) and
    the training loop normalises whole batches with ``normalize_batch``: half the per-image cost of
    per-image float conversion + Normalize (BENCHMARKS.md).
    """
    return create_transform(input_size=size, is_training=True, scale=tuple(scale), hflip=hflip,
                            auto_augment=randaugment or None,
                            color_jitter=color_jitter if color_jitter > 0 else None,
                            interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                            use_prefetcher=uint8)


def normalize_batch(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) batch -> float, ImageNet-normalised (a float batch passes through)."""
    if x.dtype != torch.uint8:
        return x
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, -1, 1, 1) * 255
    return x.float().sub_(mean).div_(std)


def eval_transform(size: int) -> Callable:
    """Resize to ``size`` x ``size`` and normalise only (crop_pct 1: nothing is cut away)."""
    return create_transform(input_size=size, is_training=False, crop_pct=1.0,
                            interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD)
