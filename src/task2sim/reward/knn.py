"""Backbone features and the weighted k-NN reward (docs/algorithms.md, "Reward").

Features: global-pooled backbone output (timm ``forward_features`` then
``forward_head(pre_logits=True)``), both splits through the evaluation transform (resize to the
backbone's training size, normalise; grayscale becomes 3 channels); cached raw per (backbone,
task), L2-normalised for the k-NN.

Reward: for each test image, cosine similarity to every training image, the top-k neighbours vote
for their class with weight exp(sim / T); the class with the largest summed vote is the prediction;
the reward is top-1 accuracy in percent. Computed in torch over chunks of test images so that
60k x 10k similarities never sit in memory at once.

Beside it, the same 5-NN left-one-out within the training split (``knn5_train_loo``): a score that
reads no test image, from which measured selection picks a task's configuration (docs/final.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..io import save_npz
from ..provenance import sha256_file
from ..train.common import autocast_for, resolve_device, to_device
from ..backbones.preprocess import IMAGENET_MEAN, IMAGENET_STD, normalisation
from ..train.data import EvalImages, H5ImageDataset, normalize_batch

log = logging.getLogger(__name__)


@torch.no_grad()
def extract_features(model: nn.Module, dataset: H5ImageDataset, batch_size: int = 256,
                     device: torch.device | str = "cpu", num_workers: int = 0,
                     progress: bool = True, desc: str = "features", normalize: bool = True,
                     amp: bool = False, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features (float32, N x D; L2-normalised unless ``normalize=False``) and labels of
    ``dataset`` (uint8 images, read by its ``batches``, normalised by ``mean`` and ``std`` per
    batch), in order. ``amp``:
    autocast (``amp_dtype``; off by default: rewards are fp32, and bf16 features changed 2-4 % of
    the 5 nearest neighbours, BENCHMARKS.md: precision). The model runs channels-last
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


@torch.no_grad()
def knn_predict(train_features, train_labels, test_features=None, n_classes: int | None = None,
                k: int = 5, temperature: float = 0.07, chunk: int = 1024,
                device: torch.device | str = "cpu") -> np.ndarray:
    """Weighted k-NN predictions; features must already be L2-normalised (cosine = dot).

    ``test_features`` None: leave-one-out over the training set itself (each training image is
    predicted from its k nearest *other* training images; its own similarity is masked)."""
    device = torch.device(device)
    tr = torch.as_tensor(np.asarray(train_features), dtype=torch.float32, device=device)
    loo = test_features is None
    te_all = tr.cpu() if loo else torch.as_tensor(np.asarray(test_features), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(train_labels), dtype=torch.int64, device=device)
    n_classes = int(n_classes if n_classes is not None else int(y.max()) + 1)
    k = min(k, tr.shape[0] - 1 if loo else tr.shape[0])
    preds = []
    for start in range(0, te_all.shape[0], chunk):
        te = te_all[start:start + chunk].to(device)
        sims = te @ tr.T
        if loo:  # a training image is not its own neighbour
            rows = torch.arange(te.shape[0], device=device)
            sims[rows, rows + start] = -float("inf")
        sim, idx = sims.topk(k, dim=1)                          # (c, k) cosine similarities
        votes = torch.zeros(te.shape[0], n_classes, device=device, dtype=torch.float64)
        votes.scatter_add_(1, y[idx], torch.exp(sim.double() / temperature))
        preds.append(votes.argmax(1).cpu())
    return torch.cat(preds).numpy() if preds else np.zeros(0, np.int64)


def knn_accuracy(train_features, train_labels, test_features, test_labels, **kw: Any) -> float:
    """Top-1 accuracy (%) of ``knn_predict``."""
    pred = knn_predict(train_features, train_labels, test_features, **kw)
    return float(100.0 * np.mean(pred == np.asarray(test_labels))) if len(pred) else float("nan")


def knn_loo_accuracy(features, labels, **kw: Any) -> float:
    """Leave-one-out top-1 accuracy (%) of ``knn_predict`` within one split: the 5-NN score that
    reads the training split only (measured selection, docs/final.md)."""
    return knn_accuracy(features, labels, None, labels, **kw)


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
              mean=IMAGENET_MEAN, std=IMAGENET_STD, seed: int = 0) -> str:
    """The key of a feature cache: what the features are of and how they were made."""
    # A random-init backbone is identified by its init seed (a trained one by its weights).
    # "raw": the cache holds un-normalised features (a cache of L2-normalised ones is stale).
    parts = [model_name, sha256_file(checkpoint) if checkpoint else f"random-init:{int(seed)}",
             sha256_file(task_h5), str(image_size), [float(v) for v in mean], [float(v) for v in std], "raw"]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def task_features(model: nn.Module, task_h5: str | os.PathLike, image_size: int,
                  cache: str | os.PathLike | None = None, cache_key: str = "",
                  batch_size: int = 256, device: str = "auto", progress: bool = True,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, write_cache: bool = True) -> FeatureSet:
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
    kw = {"progress": progress, "normalize": False, "mean": mean, "std": std}
    ftr, ytr = extract_features(model, train, batch_size, dev, desc="train features", **kw)
    fte, yte = extract_features(model, test, batch_size, dev, desc="test features", **kw)
    fs = FeatureSet(ftr, ytr, fte, yte, int(train.n_classes))
    if cache and write_cache:
        save_npz(cache, train=ftr, train_labels=ytr, test=fte, test_labels=yte,
                 n_classes=fs.n_classes, key=np.array(cache_key))
    return fs


def train_loo_score(model: nn.Module, task_h5: str | os.PathLike, image_size: int, k: int, temperature: float,
                    batch_size: int = 256, device: str = "auto", progress: bool = True) -> tuple[float, int]:
    """(5-NN left-one-out accuracy %, number of images) within the training split of ``task_h5``:
    the features of that split only (the test split is never opened). Measured selection for a
    task outside the reward table (``task2sim.cli.final measure``)."""
    dev = resolve_device(device)
    train = EvalImages(task_h5, "train", image_size)
    f, y = extract_features(model, train, batch_size, dev, progress=progress, desc="train features")
    return knn_loo_accuracy(f, y, n_classes=int(train.n_classes), k=k, temperature=temperature, device=dev), len(y)


def backbone_features_model(model: nn.Module) -> nn.Module:
    """The model with its classifier dropped (``reset_classifier(0)``): outputs pooled features."""
    model.reset_classifier(0)
    return model


def feature_model(checkpoint: str | os.PathLike | None, model_name: str | None = None,
                  seed: int = 0) -> tuple[nn.Module, str]:
    """(backbone with its classifier dropped, its timm name). ``checkpoint`` None: ``model_name``
    at random init from ``seed`` (the untrained floor)."""
    from ..train.models import create_backbone, load_backbone

    if checkpoint is not None:
        model, cfg = load_backbone(checkpoint)
        model_name = cfg["architecture"]
    else:
        if not model_name:
            raise ValueError("a random-init backbone needs a model name")
        # Seeded without touching the caller's global RNG stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = create_backbone(model_name, num_classes=0)
    return backbone_features_model(model), model_name


@dataclass
class RewardConfig:
    """The ``reward`` config section; defaults live in the schema."""

    k: int
    temperature: float
    batch_size: int      # runtime only: feature extraction batch


def compute_reward(model: nn.Module, model_name: str, checkpoint: str | os.PathLike | None,
                   task_h5: str | os.PathLike, image_size: int, k: int, temperature: float,
                   cache: str | os.PathLike | None = None, batch_size: int = 256,
                   device: str = "auto", chunk: int = 1024, progress: bool = True,
                   seed: int = 0) -> dict[str, Any]:
    """k-NN top-1 (%) on one task of ``model`` (from ``feature_model``: the backbone stored in
    ``checkpoint``, or ``model_name`` at random init from ``seed`` when it is None)."""
    checkpoint = Path(checkpoint) if checkpoint else None
    task_h5 = Path(task_h5)
    mean, std = normalisation(model)
    key = cache_key(model_name, checkpoint, task_h5, image_size, mean, std, seed)
    fs = task_features(model, task_h5, image_size, cache, key, batch_size, device, progress, mean, std)
    train, test = l2_normalise(fs.train), l2_normalise(fs.test)
    acc = knn_accuracy(train, fs.train_labels, test, fs.test_labels, n_classes=fs.n_classes,
                       k=k, temperature=temperature, chunk=chunk,
                       device=resolve_device(device))
    loo = knn_loo_accuracy(train, fs.train_labels, n_classes=fs.n_classes, k=k, temperature=temperature,
                           chunk=chunk, device=resolve_device(device))
    return {"knn5_top1": acc, "knn5_train_loo": loo, "k": k, "temperature": temperature,
            "feature_dim": int(fs.train.shape[1]),
            "n_train": int(len(fs.train)), "n_test": int(len(fs.test)), "image_size": image_size}
