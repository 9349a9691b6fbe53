"""The learned layer-wise learning-rate policy (L2O) and its REINFORCE update (docs/asg.md).

Usage::

    pol = LRPolicy(n_groups=7)
    state = None
    scales, logp, entropy, state = pol.act(obs, state)       # one window's action
    ...
    reinforce_update(opt, baseline, logps, entropies, rewards, 0.01)  # after U windows

Each group's learning rate is ``lr * SCALES[a_g]`` (one base rate for all groups), ``a_g`` drawn from its own
Categorical head on the LSTM's hidden state. The observation is (CE, KL, t/T, mean and std of the
new head's weights, the previous scales).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributions import Categorical

SCALES = tuple(round(0.1 * i, 1) for i in range(11))   # {0, 0.1, ..., 1.0}
N_STATS = 5                                           # CE, KL, progress, head mean, head std


def observation(ce: float, kl: float, progress: float, head_weight: torch.Tensor,
                prev_scales: list[float]) -> torch.Tensor:
    w = head_weight.detach().float()
    return torch.tensor([ce, kl, progress, float(w.mean()), float(w.std()), *prev_scales], dtype=torch.float32)


class LRPolicy(nn.Module):
    """LSTM (hidden 20) over observations, one Categorical over SCALES per layer group."""

    def __init__(self, n_groups: int, hidden: int = 20):
        super().__init__()
        self.n_groups = n_groups
        self.hidden = hidden
        self.lstm = nn.LSTM(N_STATS + n_groups, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, len(SCALES)) for _ in range(n_groups))

    def distributions(self, obs: torch.Tensor, state=None) -> tuple[list[Categorical], tuple]:
        h, state = self.lstm(obs.view(1, 1, -1), state)
        h = h.view(-1)
        return [Categorical(logits=head(h)) for head in self.heads], state

    def act(self, obs: torch.Tensor, state=None, greedy: bool = False,
            generator: torch.Generator | None = None):
        """(scales list, summed log-prob, summed entropy, new LSTM state)."""
        dists, state = self.distributions(obs, state)
        if greedy:
            idx = [int(d.probs.argmax()) for d in dists]
        else:
            # torch.multinomial with our own generator: reproducible sampling, global RNG untouched
            idx = [int(torch.multinomial(d.probs.detach(), 1, generator=generator)) for d in dists]
        logp = torch.stack([d.log_prob(torch.tensor(i)) for d, i in zip(dists, idx)]).sum()
        ent = torch.stack([d.entropy() for d in dists]).sum()
        return [SCALES[i] for i in idx], logp, ent, state


def returns_to_go(rewards: list[float]) -> torch.Tensor:
    """G_k = r_k + r_{k+1} + ... within one unroll (undiscounted: an unroll is only U windows)."""
    r = torch.tensor(rewards, dtype=torch.float32)
    return torch.flip(torch.cumsum(torch.flip(r, [0]), 0), [0])


class MovingBaseline:
    """Exponential moving average of the return at each window position of an unroll, and of
    its squared deviation (to scale advantages to about unit size)."""

    def __init__(self, length: int, momentum: float = 0.9):
        self.mean = torch.zeros(length)
        self.var = torch.ones(length)
        self.momentum = momentum
        self.seen = False

    def advantages(self, returns: torch.Tensor) -> torch.Tensor:
        n = len(returns)
        if not self.seen:  # first unroll: the baseline starts at the returns themselves
            self.mean[:n] = returns
            self.var[:n] = returns.pow(2).mean().clamp_min(1e-12)
            self.seen = True
        adv = (returns - self.mean[:n]) / self.var[:n].sqrt().clamp_min(1e-8)
        m = self.momentum
        self.var[:n] = m * self.var[:n] + (1 - m) * (returns - self.mean[:n]).pow(2)
        self.mean[:n] = m * self.mean[:n] + (1 - m) * returns
        return adv

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "momentum": self.momentum}


def reinforce_loss(logps: list[torch.Tensor], entropies: list[torch.Tensor], advantages: torch.Tensor,
                   entropy_coef: float = 0.0) -> torch.Tensor:
    """-sum_k A_k log pi(a_k | s_k) - entropy_coef * sum_k H_k (minimised by the policy optimiser)."""
    lp = torch.stack(logps)
    return -(advantages.detach() * lp).sum() - entropy_coef * torch.stack(entropies).sum()


def reinforce_update(opt: torch.optim.Optimizer, baseline: MovingBaseline, logps: list[torch.Tensor],
                     entropies: list[torch.Tensor], rewards: list[float], entropy_coef: float = 0.0) -> float:
    """One policy update after an unroll: advantages of the returns-to-go against the moving
    baseline, REINFORCE loss, one optimiser step; returns the loss."""
    adv = baseline.advantages(returns_to_go(rewards))
    loss = reinforce_loss(logps, entropies, adv, entropy_coef)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


WHAT = "ASG learning-rate policy: LSTM + one Categorical over scales per group"
OBSERVATION = ("ce", "kl", "progress", "head_weight_mean", "head_weight_std", "previous scales per group")


def save_lr_policy(path: str | os.PathLike, policy: LRPolicy, group_names: list[str], model: str,
                   input_size: int) -> None:
    """``asg/policy.pt``: the trained policy's weights and ``policy_cfg``, which says what it is."""
    from ..io import save_torch

    save_torch(path, {"state_dict": policy.state_dict(),
                      "policy_cfg": {"what": WHAT, "n_groups": policy.n_groups, "hidden": policy.hidden,
                                     "group_names": group_names, "scales": list(SCALES),
                                     "observation": list(OBSERVATION), "model": model, "input_size": input_size}})


def load_lr_policy(path: str | os.PathLike) -> tuple[LRPolicy, dict[str, Any]]:
    """The policy of ``save_lr_policy``'s file, in eval mode, with its ``policy_cfg``."""
    from ..errors import Task2SimError

    if not Path(path).is_file():
        raise Task2SimError(f"{path}: no such policy file")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "policy_cfg" not in ckpt:
        raise Task2SimError(f"{path}: not an ASG policy (no policy_cfg)")
    pc = ckpt["policy_cfg"]
    pol = LRPolicy(pc["n_groups"], pc["hidden"])
    pol.load_state_dict(ckpt["state_dict"])
    return pol.eval(), pc
