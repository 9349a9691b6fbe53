"""ASG data: the rendered 3-D digit source, real targets matched by class name, and the real
photos that measure how much ImageNet knowledge survives fine-tuning (docs/asg.md).

Usage::

    render_digits(render_cfg, "01000100", "images.h5", "preview.png", seed=0, style="silhouette")
    src = load_renders("images.h5", size=64, val_fraction=0.2, seed=0)   # train / val tensors
    tgt = load_target("results/tasks/mnist5k/data.h5", src.class_names, size=64)
    photos = probe_photos(224)

Images are kept as uint8 (N, 3, S, S) tensors resized once to the network's input size; batches
are normalised with the model's own mean and std.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones.images import read_arrays, read_meta
from ..errors import Task2SimError
from ..tasks.prepare import stratified_split

# The digit source: the extruded-glyph procedural classes '0'..'9' (DejaVu fonts, several faces
# each), renamed to the digit itself so they match the real digit tasks' class names.
DIGIT_CLASSES = {f"glyph_{d}": str(d) for d in range(10)}

# Real photos shipped inside scikit-image (no download): the ImageNet-knowledge probe.
PROBE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "clock", "moon",
                "hubble_deep_field", "immunohistochemistry")


class ClassMismatch(Task2SimError):
    """Source and target do not have the same class names."""


def render_digits(cfg, bits: str, out_h5: str | os.PathLike, preview_png: str | os.PathLike,
                  seed: int = 0, style: str = "silhouette") -> dict:
    """Render the 10 digit classes with our renderer (``cfg``: a RenderConfig with classes=10) in
    ``style`` (``silhouette``: the glyph white on black, like ink strokes; ``shaded``: lit 3-D
    objects on an environment)."""
    from ..render.dataset import RenderSession, render_dataset

    session = RenderSession(cfg, classes=DIGIT_CLASSES, style=style)
    try:
        return render_dataset(cfg, bits, out_h5, preview_png, seed=seed, session=session)
    finally:
        session.close()


def to_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 NHWC (C 1 or 3) -> uint8 (N, 3, size, size), bilinear (antialiased when shrinking)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > size)
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x.contiguous()


@dataclass
class Split:
    images: torch.Tensor   # uint8 (N, 3, S, S)
    labels: torch.Tensor   # int64 (N,)


@dataclass
class Source:
    class_names: list[str]
    train: Split
    val: Split             # held-out synthetic images: the only data any selection may use


def load_renders(path: str | os.PathLike, size: int, val_fraction: float, seed: int) -> Source:
    """ASG's rendered source (``asg render``'s images.h5) as tensors of ``size`` pixels, split
    per class into training and held-out synthetic images (the backbone loader is
    ``backbones.features.load_source``)."""
    meta = read_meta(path)
    if not meta["class_names"]:
        raise ClassMismatch(f"{path}: the source has no class_names")
    images, labels = read_arrays(path)
    names = list(meta["class_names"])
    tr, va = stratified_split(labels, len(names), val_fraction, np.random.default_rng(seed), names)
    tr, va = np.sort(tr), np.sort(va)
    x = to_tensor(images, size)
    y = torch.from_numpy(labels)
    return Source(names, Split(x[tr], y[tr]), Split(x[va], y[va]))


def match_classes(source_names: list[str], target_names: list[str], where: str) -> np.ndarray:
    """Target label -> source label, by class name; ClassMismatch (one line) unless the two sets
    of names are equal."""
    if sorted(source_names) != sorted(target_names) or len(set(target_names)) != len(target_names):
        only_s = sorted(set(source_names) - set(target_names))
        only_t = sorted(set(target_names) - set(source_names))
        raise ClassMismatch(f"{where}: class names differ from the source's (only in source: {only_s[:5]}, "
                            f"only in target: {only_t[:5]})")
    pos = {n: i for i, n in enumerate(source_names)}
    return np.array([pos[n] for n in target_names], dtype=np.int64)


def load_target(path: str | os.PathLike, source_names: list[str], size: int, split: str = "test") -> Split:
    """A real task's split with labels mapped onto the source's class order."""
    meta = read_meta(path, split)
    mapping = match_classes(source_names, list(meta["class_names"]), str(path))
    images, labels = read_arrays(path, split)
    return Split(to_tensor(images, size), torch.from_numpy(mapping[labels]))


def probe_photos(size: int) -> torch.Tensor:
    """uint8 (N, 3, size, size): each probe photo as a whole, a centre crop, two corner crops,
    and the horizontal flips of all four."""
    import skimage.data

    views = []
    for name in PROBE_PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, 2)
        img = img[..., :3].astype(np.uint8)
        h, w = img.shape[:2]
        s = int(0.7 * min(h, w))
        crops = [img, img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s], img[:s, :s], img[-s:, -s:]]
        for c in crops:
            t = to_tensor(c[None], size)
            views += [t, t.flip(-1)]
    return torch.cat(views)
