"""Backbones: any timm model by name, plus small-image ResNet-18 variants for 32-64 px renders.

The variants are registered with timm, so ``timm.create_model("t2s_resnet18_w32", num_classes=24,
checkpoint_path="model.pt")`` rebuilds and loads a pre-trained backbone like any timm model (once
this module is imported; ``create_backbone`` imports it for you).

ImageNet ResNets downsample 4x before the first block (7x7 stride-2 conv + max-pool), which leaves
a 64 px render only 16x16 positions at layer1; the variants use a 3x3 stem of stride 1 or 2 and no
max-pool instead, and a reduced width to keep CPU training affordable (BENCHMARKS.md has the
measured trade-off).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet
from torch import nn

from .preprocess import IMAGENET_MEAN, IMAGENET_STD
from ..errors import Task2SimError
from ..io import save_torch


class CheckpointError(Task2SimError):
    """A model file that is missing, unreadable, or not the backbone it claims to be."""


_SMALL_CFG = {"input_size": (3, 64, 64), "classifier": "fc", "mean": IMAGENET_MEAN,
              "std": IMAGENET_STD, "interpolation": "bilinear", "crop_pct": 1.0,
              "first_conv": "conv1"}
_RESNET_ARGS = set(inspect.signature(ResNet.__init__).parameters) - {"self", "block", "layers"}


def _small_resnet18(width: int, stem_stride: int, **kwargs: Any) -> ResNet:
    # timm's factory passes loader-only keys (pretrained_cfg, cache_dir, ...): keep model args only.
    kwargs = {k: v for k, v in kwargs.items() if k in _RESNET_ARGS}
    channels = (width, width * 2, width * 4, width * 8)
    # A 'deep' stem of stem_width w/2 makes the stem output (and layer1's input) exactly `width`
    # channels; its three convs are then replaced by the single 3x3 conv below.
    model = ResNet(BasicBlock, (2, 2, 2, 2), channels=channels, stem_type="deep",
                   stem_width=width // 2, **kwargs)
    in_chans = kwargs.get("in_chans", 3)
    # Replace the ImageNet stem (7x7/2 conv + 3x3/2 max-pool) by one 3x3 conv of the given stride.
    model.conv1 = nn.Conv2d(in_chans, width, 3, stride=stem_stride, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.feature_info[0]["reduction"] = stem_stride
    model.pretrained_cfg = dict(_SMALL_CFG, num_classes=model.num_classes)
    model.default_cfg = model.pretrained_cfg
    return model


@register_model
def t2s_resnet18_w32(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """Half-width ResNet-18 (32-64-128-256), 3x3 stride-1 stem, no max-pool."""
    return _small_resnet18(32, 1, **kwargs)


@register_model
def t2s_resnet18_w32s2(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """Half-width ResNet-18, 3x3 stride-2 stem, no max-pool (4x cheaper than stride 1)."""
    return _small_resnet18(32, 2, **kwargs)


@register_model
def t2s_resnet18_w32s4(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """Half-width ResNet-18 with timm's ImageNet stem (7x7/2 conv to 64 channels + max-pool)."""
    kwargs = {k: v for k, v in kwargs.items() if k in _RESNET_ARGS}
    model = ResNet(BasicBlock, (2, 2, 2, 2), channels=(32, 64, 128, 256), **kwargs)
    model.pretrained_cfg = dict(_SMALL_CFG, num_classes=model.num_classes)
    model.default_cfg = model.pretrained_cfg
    return model


@register_model
def t2s_resnet18_w8(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """Eighth-width ResNet-18 (8-16-32-64), stride-2 stem: fast enough for unit tests."""
    return _small_resnet18(8, 2, **kwargs)


def create_backbone(name: str, num_classes: int, checkpoint_path: str | os.PathLike | None = None,
                    **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with our variants registered; loads ``checkpoint_path`` when given."""
    kw = dict(kwargs)
    if checkpoint_path is not None:
        kw["checkpoint_path"] = os.fspath(checkpoint_path)
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kw)


def save_backbone(path: str | os.PathLike, model: nn.Module, name: str, image_size: int,
                  mean: tuple[float, ...], std: tuple[float, ...], extra: dict[str, nn.Module] | None = None,
                  **info: Any) -> dict[str, Any]:
    """Write ``model.pt``: the weights plus a timm-style ``pretrained_cfg`` saying what they are
    (architecture, input size, classes, feature size, normalisation). ``timm.create_model(name,
    checkpoint_path=path)`` still loads it (timm reads the ``state_dict`` key), and so does
    ``load_backbone``. ``info``: more about the weights (``render_bits``: the configuration they
    were trained on); ``extra``: more modules stored beside them under their own keys (ASG's
    ``new_head``)."""
    cfg = {**dict(getattr(model, "pretrained_cfg", None) or {}), "architecture": name,
           "input_size": (3, int(image_size), int(image_size)), "num_classes": int(model.num_classes),
           "num_features": int(model.num_features), "mean": tuple(mean), "std": tuple(std), **info}
    # contiguous: a channels-last training layout (backbones.runtime.to_device) is not part of the weights
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    more = {k: {n: v.detach().cpu() for n, v in m.state_dict().items()} for k, m in (extra or {}).items()}
    save_torch(path, {"state_dict": state, **more, "pretrained_cfg": cfg})
    return cfg


def _read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        ckpt = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which, in one line
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or "pretrained_cfg" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a task2sim backbone (no pretrained_cfg beside the weights)")
    return ckpt


def backbone_cfg(path: str | os.PathLike) -> dict[str, Any]:
    """The ``pretrained_cfg`` stored in a backbone checkpoint (architecture, input_size, ...)."""
    return _read_checkpoint(path)["pretrained_cfg"]


def load_backbone(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a backbone from its checkpoint alone; returns (model, pretrained_cfg)."""
    ckpt = _read_checkpoint(path)
    cfg = ckpt["pretrained_cfg"]
    model = create_backbone(cfg["architecture"], num_classes=cfg["num_classes"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit {cfg['architecture']} "
                              f"({str(e).splitlines()[0]})") from None
    return model, cfg
