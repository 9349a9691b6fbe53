"""Task2Vec: a task as the diagonal Fisher information of an ImageNet probe (docs/task2vec.md,
docs/algorithms.md "Task2Vec").

Usage::

    cfg = config_from_dict(Task2VecConfig, {"samples": 1024}, "task2vec", seed=0, device="cpu")
    res = embed_task_h5("results/tasks/digits8/data.h5", cfg)
    res.embedding            # float32 [D]: one value per conv / BatchNorm output filter
    write_embedding_npz("results/task2vec/digits8.npz", res)
    d = cosine_distance(a, b)                # what the controller uses
    d = normalized_cosine_distance(a, b)     # the reference implementation's "cosine"

Steps, all on the probe (any timm model; default the packaged ImageNet EfficientNet-Lite0):

1. pooled penultimate features of the task's training images, computed once (probe in eval mode);
   a new linear head is fitted on them alone (Adam, ground-truth labels);
2. Monte-Carlo Fisher: one pass over ``samples`` class-balanced draws (``WeightedRandomSampler``,
   with replacement) in batches; each batch's labels are *sampled from the model's own softmax*;
   the squared gradient of the batch's mean cross-entropy w.r.t. every conv and BatchNorm weight
   (no biases, no head) is accumulated and averaged over batches. BatchNorm runs in eval mode
   (running statistics), recorded as ``bn_mode``;
3. the embedding: per output filter, the mean of that squared gradient over the filter's weights,
   concatenated over layers in module order (timm ``resnet18``: 9600 values; EfficientNet-Lite0:
   42016).

Images are resized (bilinear, antialiased) to ``input_size`` and normalised with the probe's own
``pretrained_cfg`` mean/std; grey images are repeated to three channels. Every random choice (head
initialisation and shuffling, the sampler, the sampled labels) comes from seeded generators, so a
run on CPU is reproducible bit for bit.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.utils.data import WeightedRandomSampler

from .errors import Task2SimError
from .io import save_npz, write_tsv
from .figures import save_figure

log = logging.getLogger(__name__)

# BatchNorm uses its running statistics during the Fisher pass (see the module doc).
BN_MODE = "eval"


class Task2VecError(Task2SimError):
    """A Task2Vec input (task, probe, embedding file) that cannot be used."""


@dataclass(frozen=True)
class Task2VecConfig:
    """The ``task2vec`` config section plus the run's seed and device; defaults live in the schema
    (build it with ``config_from_dict(Task2VecConfig, d, "task2vec", seed=.., device=..)``)."""

    probe: str
    checkpoint: str | None
    input_size: int
    samples: int
    batch_size: int
    head_epochs: int
    head_lr: float
    head_weight_decay: float
    seed: int
    device: str

    def __post_init__(self) -> None:
        for key in ("input_size", "samples", "batch_size", "head_epochs"):
            if getattr(self, key) < 1:
                raise ValueError(f"task2vec.{key} must be >= 1, got {getattr(self, key)}")


@dataclass
class Task2VecResult:
    embedding: np.ndarray            # float32 [D], raw per-filter Fisher values
    layer_names: list[str]
    layer_sizes: list[int]
    probe: str
    bn_mode: str = BN_MODE
    info: dict[str, Any] = field(default_factory=dict)  # head accuracy, counts, timings


# --------------------------------------------------------------------------------- the probe


def load_probe(name: str, checkpoint: str | os.PathLike | None = None) -> nn.Module:
    """The ImageNet probe (``task2sim.backbones.imagenet.imagenet_model``), in eval mode."""
    from .backbones.imagenet import imagenet_model

    return imagenet_model(name, checkpoint)


def fisher_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every conv and BatchNorm module with a weight, in module order, the classifier excluded."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, (_ConvNd, _BatchNorm)) and m is not head
            and isinstance(getattr(m, "weight", None), torch.Tensor)]


def embedding_layout(model: nn.Module) -> tuple[list[str], list[int]]:
    """Layer names and output-filter counts of the embedding of ``model`` (sizes sum to D)."""
    layers = fisher_layers(model)
    return [n for n, _ in layers], [int(m.weight.shape[0]) for _, m in layers]


def _pooled(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The probe's penultimate (pooled) features: timm's ``forward_head(pre_logits=True)``."""
    return model.forward_head(model.forward_features(x), pre_logits=True).flatten(1)


class Preprocess:
    """uint8 NHWC batch -> float NCHW at ``size`` px, normalised with the probe's mean/std."""

    def __init__(self, model: nn.Module, size: int):
        from .backbones.preprocess import normalisation

        mean, std = normalisation(model)
        self.size = int(size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=True)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


def _check_images(images: np.ndarray, labels: np.ndarray, n_classes: int) -> None:
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
        raise Task2VecError(f"images must be uint8 (N, H, W, C) with C in {{1, 3}}, got "
                            f"{images.dtype} {images.shape}")
    if len(labels) != len(images) or len(images) == 0:
        raise Task2VecError(f"{len(labels)} labels for {len(images)} images")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise Task2VecError(f"labels must lie in [0, {n_classes}), got [{labels.min()}, {labels.max()}]")


# ------------------------------------------------------------------------- 1. the new head


@torch.no_grad()
def probe_features(model: nn.Module, images: np.ndarray, preprocess: Callable[[np.ndarray], torch.Tensor],
                   batch_size: int = 64, device: torch.device | str = "cpu") -> torch.Tensor:
    """Pooled features (float32 [N, F], on CPU) of ``images`` through the probe in eval mode."""
    model.eval()
    out = [_pooled(model, preprocess(images[i:i + batch_size]).to(device)).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def fit_head(features: torch.Tensor, labels: np.ndarray, n_classes: int, epochs: int, lr: float,
             weight_decay: float, batch_size: int, seed: int) -> tuple[nn.Linear, float]:
    """A new linear classifier on cached features (Adam, cross-entropy on the ground truth):
    the head and its final training accuracy (%)."""
    gen = torch.Generator().manual_seed(seed)
    head = nn.Linear(features.shape[1], n_classes)
    with torch.no_grad():  # nn.Linear's own init (uniform +-1/sqrt(fan_in)), from the seeded generator
        bound = 1.0 / float(np.sqrt(features.shape[1]))
        head.weight.uniform_(-bound, bound, generator=gen)
        head.bias.uniform_(-bound, bound, generator=gen)
    y = torch.as_tensor(labels, dtype=torch.int64)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(batch_size):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(head(features[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        acc = float((head(features).argmax(1) == y).float().mean()) * 100.0
    return head.eval(), acc


# ------------------------------------------------------------------ 2. Monte-Carlo Fisher


def balanced_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """Per-sample weights 1 / (size of its class): every class is drawn equally often."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return torch.as_tensor(1.0 / counts[labels], dtype=torch.float64)


class _WithHead(nn.Module):
    def __init__(self, probe: nn.Module, head: nn.Module):
        super().__init__()
        self.probe, self.head = probe, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(_pooled(self.probe, x))


def montecarlo_fisher(model: nn.Module, head: nn.Module, images: np.ndarray, labels: np.ndarray,
                      n_classes: int, preprocess: Callable[[np.ndarray], torch.Tensor], samples: int,
                      batch_size: int, seed: int, device: torch.device | str = "cpu",
                      progress: bool = False) -> tuple[np.ndarray, list[str], list[int]]:
    """Per-filter Monte-Carlo Fisher of ``model`` + ``head`` on class-balanced draws of
    ``images``: (embedding float32 [D], layer names, layer sizes).

    ``labels`` (ground truth) only decide the class balance of the draws; the loss uses labels
    drawn from the model's own softmax."""
    device = torch.device(device)
    net = _WithHead(model, head).to(device).eval()  # eval: BatchNorm uses running statistics
    layers = fisher_layers(model)
    if not layers:
        raise Task2VecError(f"{type(model).__name__}: no conv or BatchNorm layers to embed")
    wanted = {id(m.weight) for _, m in layers}
    saved = {p: p.requires_grad for p in net.parameters()}
    for p in net.parameters():  # gradients only where they are read: conv / BN weights
        p.requires_grad_(id(p) in wanted)
    sums = [torch.zeros(m.weight.shape[0], dtype=torch.float64, device=device) for _, m in layers]
    gen_draw = torch.Generator().manual_seed(seed)
    gen_label = torch.Generator().manual_seed(seed + 1)
    sampler = WeightedRandomSampler(balanced_weights(labels, n_classes), num_samples=samples,
                                    replacement=True, generator=gen_draw)
    order = torch.tensor(list(sampler), dtype=torch.int64)
    batches = order.split(batch_size)
    t0 = time.perf_counter()
    try:
        for b, idx in enumerate(batches):
            x = preprocess(images[idx.numpy()]).to(device)
            logits = net(x)
            with torch.no_grad():
                probs = F.softmax(logits.float(), dim=1).cpu()
                target = torch.multinomial(probs, 1, generator=gen_label).view(-1).to(device)
            net.zero_grad(set_to_none=True)
            F.cross_entropy(logits, target).backward()
            with torch.no_grad():
                for s, (_, m) in zip(sums, layers):
                    g = m.weight.grad
                    s += g.double().pow(2).reshape(g.shape[0], -1).mean(1)
            if progress and (b + 1) % max(1, len(batches) // 4) == 0:
                log.info("fisher: batch %d/%d (%.1f s)", b + 1, len(batches), time.perf_counter() - t0)
    finally:
        net.zero_grad(set_to_none=True)
        for p, flag in saved.items():
            p.requires_grad_(flag)
    emb = torch.cat(sums).div_(len(batches)).float().cpu().numpy()
    names, sizes = [n for n, _ in layers], [int(m.weight.shape[0]) for _, m in layers]
    return emb, names, sizes


# ------------------------------------------------------------------------ 3. the embedding


def task2vec(images: np.ndarray, labels: np.ndarray, n_classes: int, cfg: Task2VecConfig,
             model: nn.Module | None = None, progress: bool = False) -> Task2VecResult:
    """The Task2Vec embedding of one task's training set (uint8 NHWC images, int labels).

    ``model``: the probe (its weights and classifier are never changed, but it is moved to the
    device in channels-last layout); None loads ``cfg.probe`` with ``cfg.checkpoint``."""
    from .backbones.runtime import derive_seed, resolve_device

    labels = np.asarray(labels, dtype=np.int64)
    _check_images(images, labels, n_classes)
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    if model is None:
        model = load_probe(cfg.probe, cfg.checkpoint)
    # channels-last: about 30 % faster on CPU here (BENCHMARKS.md), same values up to float rounding
    model = model.to(device, memory_format=torch.channels_last).eval()
    prep = Preprocess(model, cfg.input_size)
    t1 = time.perf_counter()
    feats = probe_features(model, images, prep, cfg.batch_size, device)
    t2 = time.perf_counter()
    head, acc = fit_head(feats, labels, n_classes, cfg.head_epochs, cfg.head_lr, cfg.head_weight_decay,
                         cfg.batch_size, derive_seed(cfg.seed, 1))
    t3 = time.perf_counter()
    emb, names, sizes = montecarlo_fisher(model, head, images, labels, n_classes, prep, cfg.samples,
                                          cfg.batch_size, derive_seed(cfg.seed, 2), device, progress)
    t4 = time.perf_counter()
    if not np.all(np.isfinite(emb)):
        raise Task2VecError("the Fisher embedding has non-finite values")
    info = {"n_train": len(images), "n_classes": int(n_classes), "feature_dim": int(feats.shape[1]),
            "head_train_accuracy": round(acc, 3), "dim": int(emb.size), "device": str(device),
            "seconds_load": round(t1 - t0, 3), "seconds_features": round(t2 - t1, 3),
            "seconds_head": round(t3 - t2, 3), "seconds_fisher": round(t4 - t3, 3)}
    return Task2VecResult(embedding=emb, layer_names=names, layer_sizes=sizes, probe=cfg.probe, info=info)


def embed_task_h5(path: str | os.PathLike, cfg: Task2VecConfig, model: nn.Module | None = None,
                  progress: bool = False) -> Task2VecResult:
    """``task2vec`` of the training split of a task file (results/tasks/{task}/data.h5)."""
    from .tasks.data import load_task_h5

    path = Path(path)
    if not path.is_file():
        raise Task2VecError(f"{path}: no such task file")
    task = load_task_h5(path)
    return task2vec(task.train_images, task.train_labels, task.n_classes, cfg, model, progress)


# ----------------------------------------------------------------------------- npz files


def write_embedding_npz(path: str | os.PathLike, res: Task2VecResult) -> Path:
    """``embedding`` float32 [D], ``layer_names`` str [L], ``layer_sizes`` int64 [L] (summing to D),
    ``probe`` and ``bn_mode`` (0-d str)."""
    if sum(res.layer_sizes) != res.embedding.size:
        raise Task2VecError(f"layer sizes sum to {sum(res.layer_sizes)}, embedding has {res.embedding.size}")
    path = Path(path)
    save_npz(path, embedding=np.asarray(res.embedding, np.float32),
             layer_names=np.asarray(res.layer_names, dtype=str),
             layer_sizes=np.asarray(res.layer_sizes, np.int64),
             probe=np.asarray(res.probe, dtype=str), bn_mode=np.asarray(res.bn_mode, dtype=str))
    return path


def read_embedding_npz(path: str | os.PathLike) -> np.ndarray:
    """The raw embedding of a ``{task}.npz``, checked against its layout."""
    path = Path(path)
    if not path.is_file():
        raise Task2VecError(f"{path}: no such embedding file")
    try:
        with np.load(path, allow_pickle=False) as z:
            emb = np.asarray(z["embedding"], np.float32)
            sizes = np.asarray(z["layer_sizes"])
    except (OSError, ValueError, KeyError) as e:
        raise Task2VecError(f"{path}: not a Task2Vec embedding file ({e})") from None
    if emb.ndim != 1 or int(sizes.sum()) != emb.size:
        raise Task2VecError(f"{path}: embedding of shape {emb.shape} does not match layer_sizes "
                            f"(sum {int(sizes.sum())})")
    return emb


# ------------------------------------------------------------------------------ distances


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise Task2VecError(f"embeddings of different sizes: {a.shape} vs {b.shape}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise Task2VecError("cosine distance of an all-zero embedding")
    return float(1.0 - np.dot(a / na, b / nb))


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine similarity of the two embeddings (both L2-normalised first): the controller's."""
    return _cos(a, b)


def normalized_cosine_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> float:
    """The Task2Vec reference's default "cosine": each pair rescaled elementwise to
    a / (a + b), b / (a + b) before the cosine distance, so that every filter weighs about alike."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise Task2VecError(f"embeddings of different sizes: {a.shape} vs {b.shape}")
    s = a + b + eps
    return _cos(a / s, b / s)


DISTANCES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "cosine": cosine_distance, "normalized_cosine": normalized_cosine_distance}


def distance_matrix(embeddings: Sequence[np.ndarray], metric: str = "cosine") -> np.ndarray:
    """Symmetric [n, n] matrix of ``DISTANCES[metric]`` (zero diagonal)."""
    fn = DISTANCES[metric]
    n = len(embeddings)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = fn(embeddings[i], embeddings[j])
    return out


def cluster_order(dist: np.ndarray) -> list[int]:
    """Leaf order of average-linkage hierarchical clustering of a distance matrix."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if len(dist) < 3:
        return list(range(len(dist)))
    condensed = squareform(np.clip((dist + dist.T) / 2.0, 0.0, None), checks=False)
    return [int(i) for i in leaves_list(linkage(condensed, method="average"))]


def task_distances(embeddings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Both distance matrices of the tasks (in ``embeddings``' order), keyed by metric name."""
    sizes = {e.size for e in embeddings.values()}
    if len(sizes) > 1:
        first = next(iter(embeddings.values())).size
        odd = next(t for t, e in embeddings.items() if e.size != first)
        raise Task2VecError(f"embeddings of different sizes {sorted(sizes)}: {odd!r} has {embeddings[odd].size}, "
                            f"{next(iter(embeddings))!r} {first} (computed with different probes?)")
    values = list(embeddings.values())
    return {name: distance_matrix(values, name) for name in DISTANCES}


def write_distances_tsv(path: str | os.PathLike, tasks: Sequence[str], mats: dict[str, np.ndarray]) -> Path:
    """One row per ordered pair of tasks (diagonal included): ``task_a task_b <metric>...``."""
    names = list(mats)
    rows = [{"task_a": a, "task_b": b, **{m: f"{mats[m][i, j]:.6g}" for m in names}}
            for i, a in enumerate(tasks) for j, b in enumerate(tasks)]
    write_tsv(path, ["task_a", "task_b", *names], rows)
    return Path(path)


def plot_distances(tasks: Sequence[str], mats: dict[str, np.ndarray], path: str | os.PathLike,
                   seen: Sequence[str] = (), unseen: Sequence[str] = ()) -> Path:
    """The distance matrices side by side, each in its own clustering order, every cell annotated;
    seen tasks in black, unseen ones in red italics (when given)."""
    from matplotlib.figure import Figure

    n = len(tasks)
    side = max(3.2, 0.55 * n + 1.8)
    fig = Figure(figsize=(side * len(mats) + 0.6, side + 0.9))
    axes = fig.subplots(1, len(mats), squeeze=False)[0]
    titles = {"cosine": "cosine of L2-normalised embeddings\n(the controller's)",
              "normalized_cosine": "cosine after a/(a+b), b/(a+b)\n(Task2Vec reference)"}
    for ax, (name, mat) in zip(axes, mats.items()):
        order = cluster_order(mat)
        m = mat[np.ix_(order, order)]
        hi = float(m.max()) if m.size and m.max() > 0 else 1.0
        ax.imshow(m, cmap="viridis_r", vmin=0.0, vmax=hi)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] > 0.55 * hi else "black")
        labels = [tasks[k] for k in order]
        ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
        for tick in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
            if tick.get_text() in unseen:
                tick.set_color("tab:red")
                tick.set_fontstyle("italic")
        ax.set_title(titles.get(name, name), fontsize=9)
    legend = "tasks in average-linkage clustering order"
    if seen or unseen:
        legend += "; black: seen, red italics: unseen"
    fig.suptitle(f"Task2Vec task distances ({legend})", fontsize=9)
    return save_figure(fig, path, dpi=120, tight={})
