"""Input normalisation of a backbone: the ImageNet statistics (the one place they are written)
and a network's own, read from its timm ``pretrained_cfg``."""

from __future__ import annotations

from typing import Any

# ImageNet-1k channel mean and std (RGB, images in [0, 1]): the normalisation of our own backbones
# (their pretrained_cfg records it) and the fallback for a network that names none.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalisation(model: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of ``model``'s ``pretrained_cfg``, the ImageNet statistics where it has none."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
