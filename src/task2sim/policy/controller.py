"""The Task2Sim controller (docs/policy.md, "The paper's controller").

An MLP maps a task's L2-normalised Task2Vec to one 2-way softmax per varied bit. It is trained by
REINFORCE on rewards read from a table: a configuration is sampled from the heads' distributions
mixed with exploration noise, and its reward is compared with that of the greedy (argmax)
configuration (self-critical baseline). From ``sil_start`` on, each batch is followed by
``sil_updates`` self-imitation updates towards the best configuration seen so far for each task.

A training can be interrupted and resumed bit-exactly: ``train_controller`` hands its complete
state (weights, optimiser, both random generators, the self-imitation memory) to a
``ControllerCheckpoint`` every ``CHECKPOINT_EVERY`` epochs and continues from the one it gets back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from ..checkpoint import rng_state, set_rng_state
from .data import ConfigSpace

# Epochs between two saved states of a controller training (and after its last epoch): at the
# default size an epoch takes ~40 ms and a state ~1 MB, so a kill loses at most ~2 s of training.
CHECKPOINT_EVERY = 50


@dataclass(frozen=True)
class ControllerSettings:
    epochs: int = 1000
    batch_size: int = 4
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-5
    hidden: int = 400
    eps_start: float = 0.4
    eps_every: int = 5
    sil_start: int = 50
    sil_updates: int = 5
    reward_scale: float = 1.0
    lr_schedule: str = "constant"


# The public code's learning-rate schedule (``lr_schedule: public``): linear warm-up over the
# first 50 epochs, then x0.1 from epoch 500 on. The paper states only the base rate.
WARMUP_EPOCHS = 50
DECAY_EPOCH = 500


def controller_lr(s: ControllerSettings, epoch: int) -> float:
    """The learning rate of 0-based ``epoch``: ``s.lr`` throughout (``constant``) or the public
    code's schedule (``public``)."""
    if s.lr_schedule == "constant":
        return s.lr
    if s.lr_schedule != "public":
        raise ValueError(f"unknown controller lr_schedule {s.lr_schedule!r} (constant, public)")
    return s.lr * min(1.0, (epoch + 1) / WARMUP_EPOCHS) * (0.1 if epoch >= DECAY_EPOCH else 1.0)


class Task2SimController(nn.Module):
    def __init__(self, dim: int, n_heads: int, hidden: int = 400):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(hidden, 2) for _ in range(n_heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, dim] -> logits [B, M, 2]."""
        h = self.trunk(x)
        return torch.stack([head(h) for head in self.heads], dim=1)


def exploration_eps(epoch: int, start: float = 0.4, every: int = 5) -> float:
    """eps = start / ceil((epoch + 1) / every): 0.4 for epochs 0-4, 0.2 for 5-9, ..."""
    return start / math.ceil((epoch + 1) / every)


def mix_exploration(probs: torch.Tensor, eps: float) -> torch.Tensor:
    """Take ``eps`` from each head's argmax entry and spread it evenly over the other entries."""
    k = probs.shape[-1]
    top = torch.nn.functional.one_hot(probs.argmax(-1), k).to(probs.dtype)
    mixed = probs - eps * top + eps / (k - 1) * (1 - top)
    return mixed.clamp_min(0.0)


def _policy_loss(logits: torch.Tensor, actions: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """Mean over tasks of advantage * sum_heads -log p(action): minimising it raises the
    probability of actions that beat the greedy configuration."""
    logp = Categorical(logits=logits, validate_args=False).log_prob(actions).sum(-1)
    return (advantage * -logp).mean()


class _PlainSGD:
    """The controller trained as written: torch SGD on every parameter."""

    def __init__(self, model: Task2SimController, x: torch.Tensor, s: ControllerSettings):
        self.model, self.x = model, x
        self.opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)

    def set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(self.x[idx])

    def step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def finish(self) -> Task2SimController:
        return self.model

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])


class _RowSpaceSGD:
    """The same SGD, with the first layer's weight kept as W1 = beta * W1(0) + C @ X.

    Hand-written because no library does it: the inputs are the N fixed training embeddings X
    [N, d], so every gradient of W1 is G @ X for some G [hidden, N]; weight decay and momentum are
    linear, hence W1 and its momentum buffer stay of that form with beta, C (and their momenta)
    following exactly torch's SGD recursion. Each update then costs O(hidden * N) instead of
    O(hidden * d) (d = 9600 for ResNet-18 Task2Vec): about 50x faster, same trajectory up to
    floating-point rounding (tests/test_policy.py checks it against ``_PlainSGD``).
    """

    def __init__(self, model: Task2SimController, x: torch.Tensor, s: ControllerSettings):
        self.model, self.s = model, s
        first = model.trunk[0]
        self.w0 = first.weight.detach().clone()                 # [hidden, d]
        self.w0x = x @ self.w0.T                                # [N, hidden]: W1(0) x_i
        self.gram = x @ x.T                                     # [N, N]
        self.x = x
        self.beta, self.beta_buf = 1.0, 0.0
        self.c = torch.zeros(self.w0.shape[0], x.shape[0])      # [hidden, N]
        self.c_buf = torch.zeros_like(self.c)
        self.rest = [p for n, p in model.named_parameters() if n != "trunk.0.weight"]
        self.opt = torch.optim.SGD(self.rest, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
        self.lr = s.lr
        self.first_step = True

    def set_lr(self, lr: float) -> None:
        self.lr = lr
        for g in self.opt.param_groups:
            g["lr"] = lr

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        first = self.model.trunk[0]
        pre = self.beta * self.w0x[idx] + self.gram[idx] @ self.c.T + first.bias
        self.pre, self.idx = pre, idx
        if pre.requires_grad:
            pre.retain_grad()
        h = self.model.trunk[1:](pre)
        return torch.stack([head(h) for head in self.model.heads], dim=1)

    def step(self, loss: torch.Tensor) -> None:
        s = self.s
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        g = torch.zeros_like(self.c)
        g.index_add_(1, self.idx, self.pre.grad.T)              # dL/dW1 = g @ X
        d_beta, d_c = s.weight_decay * self.beta, g + s.weight_decay * self.c
        if self.first_step:                                     # torch: buffer = first d_p
            self.beta_buf, self.c_buf = d_beta, d_c.clone()
            self.first_step = False
        else:
            self.beta_buf = s.momentum * self.beta_buf + d_beta
            self.c_buf = s.momentum * self.c_buf + d_c
        self.beta -= self.lr * self.beta_buf
        self.c = self.c - self.lr * self.c_buf
        self.opt.step()

    def finish(self) -> Task2SimController:
        with torch.no_grad():
            self.model.trunk[0].weight.copy_(self.beta * self.w0 + self.c @ self.x)
        return self.model

    def state_dict(self) -> dict[str, Any]:
        """Everything that moves; W1(0) (the first layer's weight, [hidden, d]: the bulk of the
        model) does not, and a resumed run rebuilds it from the seed."""
        return {"rest": [p.detach().clone() for p in self.rest], "opt": self.opt.state_dict(),
                "beta": self.beta, "beta_buf": self.beta_buf, "c": self.c, "c_buf": self.c_buf,
                "first_step": self.first_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for p, v in zip(self.rest, state["rest"], strict=True):
                p.copy_(v)
        self.opt.load_state_dict(state["opt"])
        self.beta, self.beta_buf = state["beta"], state["beta_buf"]
        self.c, self.c_buf, self.first_step = state["c"].clone(), state["c_buf"].clone(), state["first_step"]


class ControllerCheckpoint(Protocol):
    """Where one controller training keeps its state between an interruption and its rerun."""

    def restore(self) -> dict[str, Any] | None:
        """The state last saved by this same training (same data, settings and seed), or None."""

    def epoch_done(self, epoch: int, state: Callable[[], dict[str, Any]]) -> None:
        """Called after every epoch (``epoch`` done so far); saves ``state()`` every
        ``CHECKPOINT_EVERY`` epochs, and may stop the run (by raising)."""


def train_controller(emb: np.ndarray, rewards: np.ndarray, space: ConfigSpace, settings: ControllerSettings,
                     seed: int, history: list | None = None, row_space: bool = True,
                     checkpoint: ControllerCheckpoint | None = None) -> Task2SimController:
    """Train on tasks with L2-normalised embeddings ``emb`` [N, d] and table rows ``rewards`` [N, C].

    ``row_space`` (default) runs the identical optimisation in the training embeddings' row space
    (``_RowSpaceSGD``); False runs plain torch SGD. ``history``, when given, receives per epoch
    the mean reward of the greedy configurations of the training tasks. ``checkpoint``: the
    training continues from the state it restores and hands it its state as it goes; the result
    is bit-identical to an uninterrupted training's.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(emb, dtype=torch.float32)
    table = torch.as_tensor(rewards * settings.reward_scale, dtype=torch.float32)
    n = x.shape[0]
    model = Task2SimController(x.shape[1], space.n_heads, settings.hidden)
    sgd = (_RowSpaceSGD if row_space else _PlainSGD)(model, x, settings)
    weights = torch.as_tensor(2 ** (space.n_heads - 1 - np.arange(space.n_heads)))
    actions = torch.as_tensor(space.actions())
    # Self-imitation memory: of every (task, config, reward) seen, only the best per task is ever used.
    best_reward = torch.full((n,), -math.inf)
    best_config = torch.zeros(n, dtype=torch.long)

    def remember(idx: torch.Tensor, configs: torch.Tensor) -> torch.Tensor:
        r = table[idx, configs]
        better = r > best_reward[idx]
        best_reward[idx[better]] = r[better]
        best_config[idx[better]] = configs[better]
        return r

    def state() -> dict[str, Any]:
        return {"epoch": epoch + 1, "row_space": row_space, "sgd": sgd.state_dict(), "rng": rng_state(),
                "numpy_rng": rng.bit_generator.state, "best_reward": best_reward.clone(),
                "best_config": best_config.clone(), "history": list(history or [])}

    start = 0
    saved = checkpoint.restore() if checkpoint is not None else None
    if saved is not None and saved["row_space"] == row_space:
        start = int(saved["epoch"])
        sgd.load_state_dict(saved["sgd"])
        set_rng_state(saved["rng"])
        rng.bit_generator.state = saved["numpy_rng"]
        best_reward.copy_(saved["best_reward"])
        best_config.copy_(saved["best_config"])
        if history is not None:
            history[:] = saved["history"]

    for epoch in range(start, settings.epochs):
        sgd.set_lr(controller_lr(settings, epoch))
        eps = exploration_eps(epoch, settings.eps_start, settings.eps_every)
        order = torch.as_tensor(rng.permutation(n))
        for batch in order.split(settings.batch_size):
            logits = sgd.logits(batch)
            with torch.no_grad():
                probs = logits.softmax(-1)
                greedy = probs.argmax(-1)
                sample = Categorical(probs=mix_exploration(probs, eps), validate_args=False).sample()
                r_greedy = remember(batch, (greedy * weights).sum(-1))
                r_sample = remember(batch, (sample * weights).sum(-1))
            sgd.step(_policy_loss(logits, sample, r_sample - r_greedy))
            if epoch >= settings.sil_start:
                for _ in range(settings.sil_updates):
                    logits = sgd.logits(batch)
                    with torch.no_grad():
                        r_greedy = remember(batch, (logits.argmax(-1) * weights).sum(-1))
                    # The best remembered reward is >= the greedy one (remembered too): advantage >= 0.
                    target = actions[best_config[batch]]
                    sgd.step(_policy_loss(logits, target, best_reward[batch] - r_greedy))
        if history is not None:
            with torch.no_grad():
                g = (sgd.logits(torch.arange(n)).argmax(-1) * weights).sum(-1)
                history.append(float(table[torch.arange(n), g].mean()))
        if checkpoint is not None:
            checkpoint.epoch_done(epoch + 1, state)
    return sgd.finish().eval()


@torch.no_grad()
def controller_probs(model: Task2SimController, emb: np.ndarray) -> np.ndarray:
    """P(bit = 1) per task and head, [N, M]: one forward pass, no exploration."""
    return model(torch.as_tensor(emb, dtype=torch.float32)).softmax(-1)[..., 1].numpy().astype(np.float64)
