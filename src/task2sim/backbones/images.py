"""Image datasets read from the project's HDF5 files, and their timm transforms.

Two layouts (docs/FORMATS.md): a render (``images.h5``: ``images``/``labels`` at the root, attr
``complete``) and a task (``data.h5``: ``train/...`` and ``test/...``). ``H5ImageDataset`` reads
either, as ``(tensor, label)`` pairs. A task file is read and validated by the tasks package's own
reader (``task2sim.tasks.data.load_task_h5``), so the layout has one validator.

Loading: with ``in_memory=True`` the whole uint8 array is read once (CPU-sized data: 2880 renders of
64 px are 35 MB) and DataLoader workers share it copy-on-write; otherwise each worker opens the file
lazily on first access (an h5py handle must not cross a fork). BENCHMARKS.md compares the two.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import h5py
import numpy as np
import torch
from PIL import Image, ImageOps
from timm.data import auto_augment, create_transform
from torch.utils.data import DataLoader, Dataset

from .preprocess import IMAGENET_MEAN, IMAGENET_STD
from ..tasks.data import TaskData, TaskDataError, load_task_h5


class DataError(ValueError):
    """An input HDF5 file is missing, incomplete or not in the documented layout."""


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as e:  # truncated or not HDF5 at all: name the file
        raise DataError(f"{path}: not a readable HDF5 file ({str(e).splitlines()[0]})") from None


def _render(f: h5py.File, path: str | os.PathLike) -> h5py.Group:
    """The root of a render file, checked against its layout."""
    if "complete" in f.attrs and not bool(f.attrs["complete"]):
        raise DataError(f"{path}: render is incomplete (attr complete is False)")
    for key in ("images", "labels"):
        if key not in f:
            raise DataError(f"{path}: missing dataset {key!r}")
    if f["images"].ndim != 4 or f["images"].shape[-1] not in (1, 3) or f["images"].dtype != np.uint8:
        raise DataError(f"{path}: images must be uint8 (N, H, W, C) with C in {{1, 3}}, "
                        f"got {f['images'].dtype} {f['images'].shape}")
    if f["labels"].shape[0] != f["images"].shape[0]:
        raise DataError(f"{path}: {f['labels'].shape[0]} labels for {f['images'].shape[0]} images")
    return f


def _task_split(path: Path, split: str) -> tuple[TaskData, np.ndarray, np.ndarray]:
    """A task file, validated by ``load_task_h5``, and one split's images and labels."""
    if split not in ("train", "test"):
        raise DataError(f"{path}: no split {split!r} (a task has 'train' and 'test')")
    try:
        task = load_task_h5(path)
    except TaskDataError as e:  # one exception type (DataError) for the training CLIs
        raise DataError(str(e)) from None
    return task, getattr(task, f"{split}_images"), getattr(task, f"{split}_labels")


def _read(path: str | os.PathLike, split: str | None,
          pixels: bool = True) -> tuple[dict, np.ndarray | None, np.ndarray]:
    """(meta, images or None, int64 labels). A task split is always read whole: validating it is
    ``load_task_h5``'s job, and task files are small; ``pixels=False`` only spares a render's."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if split is not None:
        task, images, labels = _task_split(path, split)
        meta = {"n": int(images.shape[0]), "shape": tuple(images.shape[1:]), "n_classes": task.n_classes,
                "class_names": list(task.class_names)}
        return meta, images, labels
    with _open_h5(path) as f:
        g = _render(f, path)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["class_names"][()]] \
            if "class_names" in f else None
        labels = g["labels"][()].astype(np.int64)
        n_classes = int(f.attrs.get("n_classes", len(names) if names else int(labels.max()) + 1))
        meta = {"n": int(g["images"].shape[0]), "shape": tuple(g["images"].shape[1:]),
                "n_classes": n_classes, "class_names": names, "bits": _attr_str(f.attrs.get("bits"))}
        return meta, (g["images"][()] if pixels else None), labels


def _attr_str(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))


def read_meta(path: str | os.PathLike, split: str | None = None) -> dict:
    """Number of images and classes, image shape, class names (a render's pixels stay on disk)."""
    return _read(path, split, pixels=False)[0]


def read_arrays(path: str | os.PathLike, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All images (uint8 NHWC) and labels (int64) of one split, in memory."""
    _, images, labels = _read(path, split)
    return images, labels


class H5ImageDataset(Dataset):
    """``(transform(image), label)`` from a render (``split=None``) or a task split."""

    def __init__(self, path: str | os.PathLike, split: str | None = None,
                 transform: Callable | None = None, in_memory: bool = True,
                 indices: Sequence[int] | None = None):
        self.path = Path(path)
        self.split = split
        self.transform = transform
        self.in_memory = in_memory
        # One read validates the file and gives the labels (and the pixels, when kept in memory).
        meta, images, self._labels = _read(self.path, split, pixels=in_memory)
        self.n_classes = meta["n_classes"]
        self.class_names = meta["class_names"]
        self._images = images if in_memory else None
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

    def batches(self, batch_size: int, num_workers: int = 0):
        """``(images, labels)`` batches in dataset order (a DataLoader over the per-image transform)."""
        return iter(DataLoader(self, batch_size=batch_size, shuffle=False, num_workers=num_workers))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_h5"] = None  # never pickle an open handle into a worker
        return state


class EvalImages(H5ImageDataset):
    """A task split (or a render) under ``eval_transform(size)``, read in order a batch at a time
    (``batches``): what feature extraction and evaluation read.

    Square in-memory images (every task's) are resized a batch at a time by the same Pillow call
    the transform makes per image, on the single channel of a grayscale image before it becomes
    three: the same bytes (tests/test_train.py) at 0.2-0.4x the time of per-image conversion,
    transform and collation for grayscale tasks, 0.9x for RGB ones (BENCHMARKS.md, "Feature
    extraction"). Other images go through the transform one by one.
    """

    def __init__(self, path: str | os.PathLike, split: str | None, size: int,
                 indices: Sequence[int] | None = None):
        super().__init__(path, split, eval_transform(size), indices=indices)
        self.size = int(size)

    def batches(self, batch_size: int, num_workers: int = 0):
        """``(uint8 (B, 3, size, size), int64 labels)`` batches in dataset order."""
        if self._images is None or self._images.shape[1] != self._images.shape[2] or num_workers:
            yield from super().batches(batch_size, num_workers)
            return
        for start in range(0, len(self.indices), batch_size):
            idx = self.indices[start:start + batch_size]
            x = torch.from_numpy(np.stack([self._resized(i) for i in idx]))
            # (B, H, W, C) -> (B, C, H, W); one channel -> three, as convert("RGB") does
            x = x.permute(0, 3, 1, 2)
            yield (x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x).contiguous(), \
                torch.from_numpy(self._labels[idx])

    def _resized(self, i: int) -> np.ndarray:
        arr = self._images[i]
        if arr.shape[0] == self.size:
            return arr
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        out = np.asarray(img.resize((self.size, self.size), Image.BILINEAR))
        return out[..., None] if out.ndim == 2 else out


def train_transform(size: int, scale: tuple[float, float] = (0.35, 1.0), hflip: float = 0.5,
                    randaugment: str | None = None, color_jitter: float = 0.0,
                    uint8: bool = True) -> Callable:
    """timm's training pipeline: random-resized crop, flip, optional RandAugment.

    With ``uint8`` (default) it stops at a uint8 CHW tensor (timm's ``use_prefetcher`` layout) and
    the training loop normalises whole batches with ``normalize_batch``: half the per-image cost of
    per-image float conversion + Normalize (BENCHMARKS.md).
    """
    if randaugment:
        _posterize_keeps_zero_bits()
    return create_transform(input_size=size, is_training=True, scale=tuple(scale), hflip=hflip,
                            auto_augment=randaugment or None,
                            color_jitter=color_jitter if color_jitter > 0 else None,
                            interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                            use_prefetcher=uint8)


def _posterize(img: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """timm's posterize op, where keeping 0 bits gives a black image as Pillow < 13 did. Pillow 13
    raises for 0 bits, which the paper's ``rand-m9-mstd0.5-inc1`` reaches (increasing posterize at
    magnitude 10 keeps 4 - 4 = 0 bits; m9 with std 0.5 is clipped to [0, 10])."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


def _posterize_keeps_zero_bits() -> None:
    """Point timm's posterize ops at ``_posterize`` (ops look their function up when built)."""
    for name, fn in auto_augment.NAME_TO_OP.items():
        if fn is auto_augment.posterize:
            auto_augment.NAME_TO_OP[name] = _posterize


def normalize_batch(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """uint8 (N, C, H, W) batch -> float, normalised by ``mean`` and ``std`` (per channel, on the
    0-1 scale; ImageNet's by default). A float batch passes through."""
    if x.dtype != torch.uint8:
        return x
    mean = torch.tensor(mean, device=x.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(std, device=x.device).view(1, -1, 1, 1) * 255
    return x.float().sub_(mean).div_(std)


def eval_transform(size: int) -> Callable:
    """Resize to ``size`` x ``size`` (crop_pct 1: nothing is cut away) and stop at a uint8 CHW
    tensor, as ``train_transform`` does: the consumer normalises whole batches with
    ``normalize_batch`` (half the data-loading time of per-image Normalize, BENCHMARKS.md)."""
    return create_transform(input_size=size, is_training=False, crop_pct=1.0,
                            interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                            use_prefetcher=True)
