"""ASG fine-tuning of five methods on one synthetic source, and the training of the learned
learning-rate policy (docs/asg.md).

Usage::

    cfg = config_from_dict(ASGConfig, {"epochs": 5}, "asg", device="cpu")
    src = load_renders("images.h5", cfg.input_size, cfg.source_val_fraction, seed=0)
    policy, log = train_policy(cfg, src, seed=0)                   # synthetic source only
    runs = finetune(cfg, src, {"mnist5k": target_split}, policy, seed=0)

Methods (same seed, same data order, same number of steps):

- ``all_lr``    (a) every layer at ``lr``;
- ``split_lr``  (b) backbone groups at ``lr * backbone_lr_scale``, new head at ``lr``;
- ``proxy``     (c) (b) + ``kl_lambda`` * KL proxy guidance;
- ``asg``       (d) (c)'s loss; every group's rate is ``lr * s_g``, the scale ``s_g`` in
                {0, 0.1, ..., 1} chosen per window by the frozen learned policy (one base rate
                shared by the groups, as in the paper);
- ``random_lr`` (d0) as (d), the scales drawn uniformly at random per group and window: the
                baseline that says whether the policy learned anything;
- ``head_only`` (e) backbone frozen, new head at ``lr``.

Nothing here reads a real target's labels for any decision: targets are only evaluated.

Fine-tuning resumes: with a ``FinetuneCheckpoint`` each method's complete state (weights,
optimiser, data order, the policy's LSTM state and sampler, history) is saved after every epoch,
and a rerun continues each method from its last epoch, bit-exactly.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import StopRequested, fingerprint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..backbones.imagenet import imagenet_model
from .data import Source, Split
from .model import ASGNet, asg_loss, layer_groups
from .policy import SCALES, LRPolicy, MovingBaseline, observation, reinforce_update

log = logging.getLogger(__name__)

METHODS = ("all_lr", "split_lr", "proxy", "asg", "random_lr", "head_only")
METHOD_LABELS = {"all_lr": "(a) all layers, large lr", "split_lr": "(b) small backbone lr",
                 "proxy": "(c) (b) + proxy guidance", "asg": "(d) ASG: proxy + learned lr policy",
                 "random_lr": "(d0) proxy + random lr policy", "head_only": "(e) backbone frozen"}
POLICY_METHODS = ("asg", "random_lr")        # one base rate for every group, scaled per window
KL_METHODS = ("proxy", "asg", "random_lr")


@dataclass
class ASGConfig:
    """The ``asg`` config section (training keys; the source and sweep keys are read by the CLI
    and the rules); defaults live in the schema."""

    model: str
    checkpoint: str | None
    input_size: int
    epochs: int
    batch_size: int
    lr: float
    backbone_lr_scale: float
    momentum: float
    weight_decay: float
    kl_lambda: float
    methods: list
    source_val_fraction: float
    probe_size: int
    policy_window: int
    policy_unroll: int
    policy_episodes: int
    policy_episode_epochs: int
    policy_lr: float
    policy_hidden: int
    policy_baseline_momentum: float
    policy_entropy: float
    policy_act: str
    eval_batch_size: int     # runtime only
    device: str              # not a config key: the CLI's resolved --device

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"asg.methods: unknown method {bad[0]!r} (choose from {', '.join(METHODS)})")


# ---- pieces shared by fine-tuning and policy training -------------------------------------------


class Normaliser:
    """uint8 batches onto ``device``, normalised by ``model``'s own statistics (``normalize_batch``)."""

    def __init__(self, model: nn.Module, device: torch.device):
        from ..backbones.preprocess import normalisation

        self.mean, self.std = normalisation(model)
        self.device = device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from ..backbones.images import normalize_batch

        return normalize_batch(x.to(self.device), self.mean, self.std)


def batches(split: Split, batch_size: int, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches, one permutation per epoch (the last short batch kept)."""
    n = len(split.labels)
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            yield split.images[idx], split.labels[idx]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


@torch.no_grad()
def evaluate(net: ASGNet, split: Split, norm: Normaliser, batch_size: int) -> dict[str, float]:
    """Top-1 and mean per-class accuracy (%) of the new head."""
    preds = []
    for i in range(0, len(split.labels), batch_size):
        preds.append(net(norm(split.images[i:i + batch_size]), teacher=False)["logits"].argmax(1).cpu())
    p = torch.cat(preds)
    y = split.labels
    per_class = [float((p[y == c] == c).float().mean()) for c in torch.unique(y)]
    return {"acc": 100.0 * float((p == y).float().mean()), "mean_class_acc": 100.0 * float(np.mean(per_class))}


@torch.no_grad()
def imagenet_agreement(net: ASGNet, photos: torch.Tensor, teacher_top1: torch.Tensor, norm: Normaliser,
                       batch_size: int) -> float:
    """% of probe photos on which the student's (frozen) ImageNet head agrees with the teacher."""
    top = []
    for i in range(0, len(photos), batch_size):
        top.append(net(norm(photos[i:i + batch_size]), teacher=False)["imagenet_logits"].argmax(1).cpu())
    return 100.0 * float((torch.cat(top) == teacher_top1).float().mean())


@torch.no_grad()
def teacher_top1(net: ASGNet, photos: torch.Tensor, norm: Normaliser, batch_size: int) -> torch.Tensor:
    return torch.cat([net.teacher(norm(photos[i:i + batch_size])).argmax(1).cpu()
                      for i in range(0, len(photos), batch_size)])


@torch.no_grad()
def heldout_loss(net: ASGNet, x: torch.Tensor, y: torch.Tensor, kl_lambda: float) -> dict[str, float]:
    return asg_loss(net(x), y, kl_lambda)[1]


class Fit:
    """One network with its layer-group optimiser; ``step`` trains on the next batch."""

    def __init__(self, imagenet: nn.Module, n_classes: int, cfg: ASGConfig, method: str, kl_lambda: float,
                 data: Split, seed: int, device: torch.device):
        torch.manual_seed(seed)          # the new head starts the same for every method
        self.net = ASGNet(copy.deepcopy(imagenet), n_classes).to(device)
        self.groups = layer_groups(self.net)
        self.group_names = [g for g, _ in self.groups]
        frozen = method == "head_only"
        if frozen:
            for p in self.net.backbone_parameters():
                p.requires_grad_(False)
        # (a) and the policy methods share one base rate; (b), (c) slow the backbone down
        scale = 1.0 if method in ("all_lr", *POLICY_METHODS) else cfg.backbone_lr_scale
        self.base_lrs = [cfg.lr if g == "new_head" else (0.0 if frozen else cfg.lr * scale) for g in self.group_names]
        self.opt = torch.optim.SGD([{"params": ps, "lr": lr, "name": g}
                                    for (g, ps), lr in zip(self.groups, self.base_lrs)],
                                   lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.scales = [1.0] * len(self.groups)
        self.kl_lambda = kl_lambda
        self.norm = Normaliser(imagenet, device)
        self.data_generator = torch.Generator().manual_seed(seed)
        self.data = batches(data, cfg.batch_size, self.data_generator)
        self.teacher_needed = not frozen

    def weights(self) -> dict[str, Any]:
        """What training changes in the network (the teacher is a frozen copy)."""
        return {"student": self.net.student.state_dict(), "new_head": self.net.new_head.state_dict()}

    def load_weights(self, w: dict[str, Any]) -> None:
        self.net.student.load_state_dict(w["student"])
        self.net.new_head.load_state_dict(w["new_head"])

    def state_dict(self) -> dict[str, Any]:
        """At an epoch boundary: the batch iterator has drawn exactly one permutation per epoch,
        so its generator's state is its whole position."""
        return {"weights": self.weights(), "opt": self.opt.state_dict(), "scales": list(self.scales),
                "data_generator": self.data_generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_weights(state["weights"])
        self.opt.load_state_dict(state["opt"])
        self.scales = list(state["scales"])
        self.data_generator.set_state(state["data_generator"])

    def set_scales(self, scales: list[float]) -> None:
        """lr of group g = base lr of g * scales[g] (the policy's action)."""
        self.scales = list(scales)
        for pg, base, s in zip(self.opt.param_groups, self.base_lrs, scales):
            pg["lr"] = base * s

    def step(self) -> dict[str, float]:
        x, y = next(self.data)
        x, y = self.norm(x), y.to(self.norm.device)
        out = self.net(x, teacher=self.teacher_needed)
        loss, parts = asg_loss(out, y, self.kl_lambda)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return parts


class PolicyDriver:
    """Runs a policy every ``window`` steps on a fixed held-out synthetic batch: observation
    (CE, KL, t/T, head weight mean/std, previous scales) -> scales for the next window."""


    def __init__(self, policy: LRPolicy, fit: Fit, probe: tuple[torch.Tensor, torch.Tensor], total_steps: int,
                 greedy: bool, generator: torch.Generator):
        self.policy, self.fit, self.total = policy, fit, total_steps
        self.x = fit.norm(probe[0])
        self.y = probe[1].to(fit.norm.device)
        self.greedy, self.generator = greedy, generator
        self.state = None
        self.schedule: list[dict] = []

    def probe_loss(self) -> dict[str, float]:
        return heldout_loss(self.fit.net, self.x, self.y, self.fit.kl_lambda)

    def state_dict(self) -> dict[str, Any]:
        return {"lstm": self.state, "generator": self.generator.get_state(), "schedule": list(self.schedule)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state["lstm"]
        self.generator.set_state(state["generator"])
        self.schedule = list(state["schedule"])

    def act(self, step: int, current: dict[str, float]):
        obs = observation(current["ce"], current["kl"], step / self.total, self.fit.net.new_head.weight,
                          self.fit.scales)
        scales, logp, ent, self.state = self.policy.act(obs, self.state, greedy=self.greedy,
                                                        generator=self.generator)
        self.fit.set_scales(scales)
        self.schedule.append({"step": step, **dict(zip(self.fit.group_names, scales))})
        return logp, ent


class RandomDriver:
    """Method (d0): every window, each group's scale drawn uniformly from SCALES (seeded); the
    same action space as the learned policy, without looking at anything."""


    def __init__(self, fit: Fit, generator: torch.Generator):
        self.fit, self.generator = fit, generator
        self.schedule: list[dict] = []

    def probe_loss(self) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "schedule": list(self.schedule)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.schedule = list(state["schedule"])

    def act(self, step: int, current: None = None) -> None:
        idx = torch.randint(len(SCALES), (len(self.fit.groups),), generator=self.generator)
        scales = [SCALES[int(i)] for i in idx]
        self.fit.set_scales(scales)
        self.schedule.append({"step": step, **dict(zip(self.fit.group_names, scales))})


# ---- the policy's training (synthetic source only) ----------------------------------------------


def train_policy(cfg: ASGConfig, src: Source, seed: int, imagenet: nn.Module | None = None,
                 progress: Callable[[str], None] = log.info) -> tuple[LRPolicy, dict]:
    """REINFORCE over ``policy_episodes`` short fine-tuning runs of method (d) on the synthetic
    train split; reward of a window = decrease of the total loss on a fixed held-out synthetic
    batch; the policy is updated after every ``policy_unroll`` windows (truncated BPTT)."""
    device = torch.device(cfg.device)
    imagenet = imagenet if imagenet is not None else imagenet_model(cfg.model, cfg.checkpoint)
    n_classes = len(src.class_names)
    spe = steps_per_epoch(len(src.train.labels), cfg.batch_size)
    total = cfg.policy_episode_epochs * spe
    torch.manual_seed(seed)
    n_groups = len(layer_groups(ASGNet(copy.deepcopy(imagenet), n_classes)))
    policy = LRPolicy(n_groups, cfg.policy_hidden)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.policy_lr)
    baseline = MovingBaseline(cfg.policy_unroll, cfg.policy_baseline_momentum)
    act_gen = torch.Generator().manual_seed(seed + 7919)
    probe = _probe_batch(src.val, cfg.batch_size * 2, seed)
    episodes, updates = [], []
    for ep in range(cfg.policy_episodes):
        t0 = time.perf_counter()
        fit = Fit(imagenet, n_classes, cfg, "asg", cfg.kl_lambda, src.train, seed + 1000 * (ep + 1), device)
        drv = PolicyDriver(policy, fit, probe, total, greedy=False, generator=act_gen)
        logps, ents, rewards = [], [], []
        drv.state = None
        prev = drv.probe_loss()
        start_loss = prev["loss"]
        for step in range(0, total, cfg.policy_window):
            logp, ent = drv.act(step, prev)
            for _ in range(min(cfg.policy_window, total - step)):
                fit.step()
            now = drv.probe_loss()
            logps.append(logp)
            ents.append(ent)
            rewards.append(prev["loss"] - now["loss"])
            prev = now
            if len(rewards) == cfg.policy_unroll or step + cfg.policy_window >= total:
                loss = reinforce_update(opt, baseline, logps, ents, rewards, cfg.policy_entropy)
                updates.append({"episode": ep, "return": float(sum(rewards)), "policy_loss": loss})
                logps, ents, rewards = [], [], []
                drv.state = tuple(s.detach() for s in drv.state)
        acc = evaluate(fit.net, src.val, fit.norm, cfg.eval_batch_size)
        mean_scales = {g: float(np.mean([s[g] for s in drv.schedule])) for g in fit.group_names}
        episodes.append({"episode": ep, "start_loss": start_loss, "end_loss": prev["loss"],
                         "source_val_acc": acc["acc"], "mean_scales": mean_scales,
                         "schedule": drv.schedule, "seconds": round(time.perf_counter() - t0, 2)})
        progress(f"policy episode {ep}: held-out synthetic loss {start_loss:.3f} -> {prev['loss']:.3f}, "
                 f"acc {acc['acc']:.1f}%, mean scales {mean_scales}")
    group_names = fit.group_names
    policy.eval()
    return policy, {"episodes": episodes, "updates": updates, "group_names": group_names,
                    "steps_per_episode": total, "baseline": baseline.state_dict()}


def _probe_batch(split: Split, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, class-balanced-ish batch of held-out synthetic images (seeded)."""
    g = torch.Generator().manual_seed(seed + 31)
    idx = torch.randperm(len(split.labels), generator=g)[:n]
    return split.images[idx], split.labels[idx]


# ---- fine-tuning: every method, same seed and budget --------------------------------------------


CHECKPOINT_DIR = "checkpoint"


def finetune_fingerprint(cfg: ASGConfig, seed: int, input_shas: list[str], targets: list[str]) -> str:
    """The config (less what cannot change a result), the seed, the inputs' checksums (source,
    ImageNet weights, policy, target files) and the target names."""
    d = {k: v for k, v in asdict(cfg).items() if k != "eval_batch_size"}
    return fingerprint(d, seed, input_shas, targets)


class FinetuneCheckpoint:
    """``<dir>/<method>.pt``: a method's state after its last finished epoch (with ``done`` once it
    is trained), one file per method so that an epoch rewrites only its own method's state.

    ``stop_after_epoch``: raise ``StopRequested`` once that many epochs (over all methods) were
    trained by this call and saved. ``resumed_from_epoch``/``epochs_run``: per method, the epochs
    read back and the epochs trained by this call.
    """

    def __init__(self, directory: str | os.PathLike, fp: str, stop_after_epoch: int | None = None):
        self.dir, self.fp, self.stop_after_epoch = Path(directory), fp, stop_after_epoch
        self.resumed_from_epoch: dict[str, int] = {}
        self.epochs_run: dict[str, int] = {}

    def restore(self, method: str) -> dict[str, Any] | None:
        state = load_checkpoint(self.dir / f"{method}.pt", self.fp)
        self.resumed_from_epoch[method] = int(state["epoch"]) if state else 0
        self.epochs_run.setdefault(method, 0)
        return state

    def epoch_done(self, method: str, state: dict[str, Any]) -> None:
        save_checkpoint(self.dir / f"{method}.pt", self.fp, state)
        self.epochs_run[method] = self.epochs_run.get(method, 0) + 1
        if self.stop_after_epoch is not None and sum(self.epochs_run.values()) >= self.stop_after_epoch:
            raise StopRequested(f"stopped after {sum(self.epochs_run.values())} fine-tuning epochs")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _epoch_row(method: str, epoch: int, n_steps: int, sums: dict, spe: int, fit: Fit, src: Source,
               targets: dict[str, Split], photos: torch.Tensor, t_ref: torch.Tensor, eb: int, t0: float,
               progress: Callable[[str], None]) -> dict:
    row = {"epoch": epoch, "step": epoch * spe,
           **{f"train_{k}": (v / n_steps if n_steps else float("nan")) for k, v in sums.items()},
           "source_val_acc": evaluate(fit.net, src.val, fit.norm, eb)["acc"],
           "imagenet_agreement": imagenet_agreement(fit.net, photos, t_ref, fit.norm, eb)}
    for name, split in targets.items():
        r = evaluate(fit.net, split, fit.norm, eb)
        row[f"{name}_acc"], row[f"{name}_mean_class_acc"] = r["acc"], r["mean_class_acc"]
    row["seconds"] = round(time.perf_counter() - t0, 2)
    progress(f"{method} epoch {epoch}: " + ", ".join(
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "step"))
    return row


def finetune(cfg: ASGConfig, src: Source, targets: dict[str, Split], photos: torch.Tensor, seed: int,
             policy: LRPolicy | None = None, imagenet: nn.Module | None = None,
             progress: Callable[[str], None] = log.info,
             checkpoint: FinetuneCheckpoint | None = None) -> dict[str, dict]:
    """Train each of ``cfg.methods``; per epoch (0 = before training) record the training loss
    terms, synthetic held-out accuracy, every target's top-1 and mean per-class accuracy, and the
    ImageNet agreement with the teacher on ``photos``. Returns {method: {"history", "net",
    "schedule", "group_names", "base_lrs"}}. ``checkpoint``: each method continues from (or, when
    trained, is read back from) its saved state, and saves its state after every epoch; it may
    raise ``StopRequested``."""
    if "asg" in cfg.methods and policy is None:
        raise ValueError("asg.methods includes 'asg' but no policy was given")
    device = torch.device(cfg.device)
    imagenet = imagenet if imagenet is not None else imagenet_model(cfg.model, cfg.checkpoint)
    n_classes = len(src.class_names)
    spe = steps_per_epoch(len(src.train.labels), cfg.batch_size)
    total = cfg.epochs * spe
    eb = cfg.eval_batch_size
    out = {}
    t_ref = None
    for method in cfg.methods:
        t0 = time.perf_counter()
        lam = cfg.kl_lambda if method in KL_METHODS else 0.0
        fit = Fit(imagenet, n_classes, cfg, method, lam, src.train, seed, device)
        if t_ref is None:
            t_ref = teacher_top1(fit.net, photos, fit.norm, eb)
        drv: PolicyDriver | RandomDriver | None = None
        if method == "asg":
            drv = PolicyDriver(policy, fit, _probe_batch(src.val, cfg.batch_size * 2, seed), total,
                               greedy=cfg.policy_act == "greedy",
                               generator=torch.Generator().manual_seed(seed + 7919))
        elif method == "random_lr":
            drv = RandomDriver(fit, torch.Generator().manual_seed(seed + 7919))
        history = []
        sums = {"ce": 0.0, "kl": 0.0, "loss": 0.0}
        saved = checkpoint.restore(method) if checkpoint is not None else None
        if saved is not None and saved["done"]:
            fit.load_weights(saved["weights"])
            out[method] = {"history": saved["history"], "net": fit.net, "schedule": saved["schedule"],
                           "group_names": fit.group_names, "base_lrs": fit.base_lrs}
            progress(f"{method}: trained, read back from the checkpoint")
            continue

        ctx = (spe, fit, src, targets, photos, t_ref, eb, t0, progress)
        start, current = 0, None
        if saved is not None:
            # an epoch boundary: the next step computes the policy's observation afresh if it acts
            start, history = int(saved["epoch"]) * spe, saved["history"]
            fit.load_state_dict(saved["fit"])
            if drv is not None:
                drv.load_state_dict(saved["driver"])
            set_rng_state(saved["rng"])
            progress(f"{method}: resuming from epoch {saved['epoch']}")
        else:
            history.append(_epoch_row(method, 0, 0, sums, *ctx))
            with torch.no_grad():
                current = drv.probe_loss() if drv else None
        for step in range(start, total):
            if drv is not None and step % cfg.policy_window == 0:
                if step:
                    current = drv.probe_loss()
                with torch.no_grad():
                    drv.act(step, current)
            parts = fit.step()
            for k in sums:
                sums[k] += parts[k]
            if (step + 1) % spe == 0:
                history.append(_epoch_row(method, (step + 1) // spe, spe, sums, *ctx))
                sums = {k: 0.0 for k in sums}
                if checkpoint is not None:
                    done = step + 1 == total
                    state = {"epoch": (step + 1) // spe, "done": done, "history": history,
                             "schedule": drv.schedule if drv else []}
                    state.update({"weights": fit.weights()} if done else
                                 {"fit": fit.state_dict(), "rng": rng_state(),
                                  "driver": drv.state_dict() if drv else None})
                    checkpoint.epoch_done(method, state)
        out[method] = {"history": history, "net": fit.net, "schedule": drv.schedule if drv else [],
                       "group_names": fit.group_names, "base_lrs": fit.base_lrs}
    return out
