"""Backbone features of a task's images: global-pooled network output (timm ``forward_features``
then ``forward_head(pre_logits=True)``), both splits through the evaluation transform (resize to the
backbone's training size, normalise by its ``pretrained_cfg``; grayscale becomes 3 channels), cached
raw per (backbone, task). The reward's k-NN, the final comparison's probes and measured selection
all read them from here."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..io import save_npz
from ..provenance import sha256_file
from .images import EvalImages, H5ImageDataset, normalize_batch
from .models import create_backbone, load_backbone
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, normalisation
from .runtime import amp_dtype, autocast_for, resolve_device, to_device

log = logging.getLogger(__name__)


@torch.no_grad()
def extract_features(model: nn.Module, dataset: H5ImageDataset, batch_size: int = 256,
                     device: torch.device | str = "cpu", num_workers: int = 0,
                     progress: bool = True, desc: str = "features", normalize: bool = True,
                     amp: bool = False, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features (float32, N x D; L2-normalised unless ``normalize=False``) and labels of
    ``dataset`` (uint8 images, read by its ``batches``, normalised by ``mean`` and ``std`` per
    batch), in order. ``amp``: autocast (``amp_dtype``: bf16 on a GPU or a CPU that computes it
    natively, else fp32; ``reward.amp``, BENCHMARKS.md: precision). The model runs channels-last
    (``to_device``): same neighbours, a third faster on CPU."""
    device = torch.device(device)
    model = to_device(model, device).eval()
    loader = dataset.batches(batch_size, num_workers)
    feats, labels = [], []
    total = -(-len(dataset) // batch_size)
    for x, y in tqdm(loader, desc=desc, total=total, disable=not progress, mininterval=5.0, leave=False):
        with autocast_for(device, amp):
            x = normalize_batch(x.to(device), mean, std).contiguous(memory_format=torch.channels_last)
            f = model.forward_head(model.forward_features(x), pre_logits=True)
        f = f.float().flatten(1)
        feats.append((F.normalize(f, dim=1) if normalize else f).cpu())
        labels.append(y)
    return torch.cat(feats).numpy(), torch.cat(labels).numpy().astype(np.int64)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as ``extract_features`` does per batch (bit-identical)."""
    return F.normalize(torch.from_numpy(np.ascontiguousarray(x)), dim=1).numpy()


@dataclass
class FeatureSet:
    """Raw (un-normalised) pooled features of both splits of a task, and their labels: the 5-NN
    reads them L2-normalised (``l2_normalise``), the linear probe as they are."""

    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    n_classes: int


def cache_key(model_name: str, checkpoint: str | os.PathLike | None, task_h5: str | os.PathLike, image_size: int,
              mean=IMAGENET_MEAN, std=IMAGENET_STD, seed: int = 0, dtype: torch.dtype | None = None) -> str:
    """The key of a feature cache: what the features are of and how they were made (``dtype``: the
    autocast dtype of the extraction, None for fp32)."""
    # A random-init backbone is identified by its init seed (a trained one by its weights).
    # "raw": the cache holds un-normalised features (a cache of L2-normalised ones is stale).
    # fp32 keys stay what they were before autocast existed (their caches stay valid).
    parts = [model_name, sha256_file(checkpoint) if checkpoint else f"random-init:{int(seed)}",
             sha256_file(task_h5), str(image_size), [float(v) for v in mean], [float(v) for v in std], "raw"]
    if dtype is not None:
        parts.append(str(dtype))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def task_features(model: nn.Module, task_h5: str | os.PathLike, image_size: int,
                  cache: str | os.PathLike | None = None, cache_key: str = "",
                  batch_size: int = 256, device: str = "auto", progress: bool = True,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, write_cache: bool = True, amp: bool = False) -> FeatureSet:
    """Raw features of both splits of a task (resized to ``image_size``, normalised by ``mean``
    and ``std``), read from ``cache`` (npz) when its key matches (``cache_key``), else computed
    (and written there unless ``write_cache`` is False).

    The cache holds ``train``, ``train_labels``, ``test``, ``test_labels``, ``n_classes`` and
    ``key``. The reward stage writes one per (backbone, task); the final stage's scoring of the
    same backbone reads it instead of running the network again.
    """
    cache = Path(cache) if cache else None
    if cache and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == cache_key:
                log.info("features from cache %s", cache)
                return FeatureSet(z["train"], z["train_labels"], z["test"], z["test_labels"],
                                  int(z["n_classes"]))
    dev = resolve_device(device)
    train = EvalImages(task_h5, "train", image_size)
    test = EvalImages(task_h5, "test", image_size)
    kw = {"progress": progress, "normalize": False, "mean": mean, "std": std, "amp": amp}
    ftr, ytr = extract_features(model, train, batch_size, dev, desc="train features", **kw)
    fte, yte = extract_features(model, test, batch_size, dev, desc="test features", **kw)
    fs = FeatureSet(ftr, ytr, fte, yte, int(train.n_classes))
    if cache and write_cache:
        save_npz(cache, train=ftr, train_labels=ytr, test=fte, test_labels=yte,
                 n_classes=fs.n_classes, key=np.array(cache_key))
    return fs


def backbone_features_model(model: nn.Module) -> nn.Module:
    """The model with its classifier dropped (``reset_classifier(0)``): outputs pooled features."""
    model.reset_classifier(0)
    return model


@dataclass
class Backbone:
    """A feature network and how to feed it: ``source`` (a configuration's bits, ``scratch`` or
    ``imagenet``), the network with its classifier dropped, its timm name, input size and
    normalisation, the checkpoint it came from (None: random init or the ImageNet reference) with
    its ``pretrained_cfg``, and the random-init seed (what identifies an untrained network)."""

    source: str
    model: nn.Module
    name: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    checkpoint: str | None
    seed: int = 0
    cfg: dict[str, Any] = field(default_factory=dict)


class SourceError(ValueError):
    """A backbone source that names no network."""


def load_source(source: str, checkpoint: str | os.PathLike | None = None, model_name: str | None = None,
                image_size: int | None = None, seed: int = 0) -> Backbone:
    """The network behind ``source``, the one way every stage that takes features loads one:

    - a pre-trained ``checkpoint`` (``model.pt``, any source name): its own architecture, input
      size and normalisation, read from the checkpoint once;
    - ``scratch``: ``model_name`` at random init from ``seed``, fed ``image_size`` pixels;
    - ``imagenet``: the packaged EfficientNet-Lite0 with real ImageNet weights, fed ``image_size``.
    """
    if source == "imagenet":
        from .imagenet import PACKAGED, imagenet_model

        model = backbone_features_model(imagenet_model())
        mean, std = normalisation(model)
        return Backbone(source, model, PACKAGED, _size(source, image_size), mean, std, None)
    if source == "scratch":
        if not model_name:
            raise SourceError("source scratch: a random-init backbone needs a model name")
        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG stream
            torch.manual_seed(int(seed))
            model = create_backbone(model_name, num_classes=0)
        return Backbone(source, backbone_features_model(model), model_name, _size(source, image_size), IMAGENET_MEAN,
                        IMAGENET_STD, None, int(seed))
    if checkpoint is None:
        raise SourceError(f"source {source}: a pre-trained source needs its model.pt")
    return checkpoint_backbone(source, *load_backbone(checkpoint), checkpoint)


def checkpoint_backbone(source: str, model: nn.Module, cfg: dict[str, Any],
                        checkpoint: str | os.PathLike) -> Backbone:
    """The ``Backbone`` of a network already read from ``checkpoint`` by ``load_backbone`` (for a
    caller that also needs the whole network): its classifier is dropped, in place."""
    mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
    return Backbone(source, backbone_features_model(model), cfg["architecture"], int(cfg["input_size"][-1]),
                    mean, std, str(checkpoint), cfg=cfg)


def _size(source: str, image_size: int | None) -> int:
    if not image_size:
        raise SourceError(f"source {source}: give the image size to feed it")
    return int(image_size)


def features(bb: Backbone, task_h5: str | os.PathLike, cache: str | os.PathLike | None = None,
             batch_size: int = 256, device: str | torch.device = "auto", progress: bool = True,
             write_cache: bool = True, amp: bool = False) -> FeatureSet:
    """Raw features of both splits of a task from ``bb`` (``task_features``), read from ``cache``
    when it holds this backbone's features of this task at this precision, else computed (and
    written there unless ``write_cache`` is False)."""
    key = cache_key(bb.name, bb.checkpoint, task_h5, bb.image_size, bb.mean, bb.std, bb.seed,
                    amp_dtype(resolve_device(device), amp)) if cache else ""
    return task_features(bb.model, task_h5, bb.image_size, cache, key, batch_size, device, progress,
                         bb.mean, bb.std, write_cache, amp)
