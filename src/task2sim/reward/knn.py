"""The weighted k-NN reward (docs/algorithms.md, "Reward") on backbone features
(``task2sim.backbones.features``: raw per (backbone, task), L2-normalised here).

Reward: for each test image, cosine similarity to every training image, the top-k neighbours vote
for their class with weight exp(sim / T); the class with the largest summed vote is the prediction;
the reward is top-1 accuracy in percent. Computed in torch over chunks of test images so that
60k x 10k similarities never sit in memory at once.

Beside it, the same 5-NN left-one-out within the training split (``knn5_train_loo``): a score that
reads no test image, from which measured selection picks a task's configuration (docs/final.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..backbones.features import Backbone, extract_features, features, l2_normalise
from ..backbones.images import EvalImages
from ..backbones.runtime import resolve_device

log = logging.getLogger(__name__)


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


def train_loo_score(bb: Backbone, task_h5: str | os.PathLike, k: int, temperature: float,
                    batch_size: int = 256, device: str = "auto", progress: bool = True,
                    amp: bool = False) -> tuple[float, int]:
    """(5-NN left-one-out accuracy %, number of images) of backbone ``bb`` within the training split
    of ``task_h5``: the features of that split only (the test split is never opened). Measured
    selection for a task outside the reward table (``task2sim.cli.final measure``)."""
    dev = resolve_device(device)
    train = EvalImages(task_h5, "train", bb.image_size)
    f, y = extract_features(bb.model, train, batch_size, dev, progress=progress, desc="train features",
                            mean=bb.mean, std=bb.std, amp=amp)
    return knn_loo_accuracy(f, y, n_classes=int(train.n_classes), k=k, temperature=temperature, device=dev), len(y)


@dataclass
class RewardConfig:
    """The ``reward`` config section; defaults live in the schema."""

    k: int
    temperature: float
    amp: bool            # features in bf16 where the device computes it natively (amp_dtype)
    batch_size: int      # runtime only: feature extraction batch


def compute_reward(bb: Backbone, task_h5: str | os.PathLike, k: int, temperature: float,
                   cache: str | os.PathLike | None = None, batch_size: int = 256,
                   device: str = "auto", chunk: int = 1024, progress: bool = True,
                   amp: bool = False) -> dict[str, Any]:
    """k-NN top-1 (%) of backbone ``bb`` (``load_source``) on one task, and the same vote left-one-out
    within the training split; the features are read from or written to ``cache``."""
    fs = features(bb, task_h5, cache, batch_size, device, progress, amp=amp)
    train, test = l2_normalise(fs.train), l2_normalise(fs.test)
    dev = resolve_device(device)
    acc = knn_accuracy(train, fs.train_labels, test, fs.test_labels, n_classes=fs.n_classes,
                       k=k, temperature=temperature, chunk=chunk, device=dev)
    loo = knn_loo_accuracy(train, fs.train_labels, n_classes=fs.n_classes, k=k, temperature=temperature,
                           chunk=chunk, device=dev)
    return {"knn5_top1": acc, "knn5_train_loo": loo, "k": k, "temperature": temperature,
            "feature_dim": int(fs.train.shape[1]),
            "n_train": int(len(fs.train)), "n_test": int(len(fs.test)), "image_size": bb.image_size}
