"""The policy stage: fit every method on the seen tasks, score them, write the chosen predictor,
its predictions, the summary tables and the heatmap. The CLI (``task2sim.cli.policy``) adds
argument parsing and provenance. An interrupted run resumes from ``checkpoint.pt`` in the output
folder (policy/resume.py)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import StopRequested
from ..io import atomic_path, save_torch, write_tsv
from .controller import ControllerSettings, Task2SimController
from .data import ConfigSpace, PolicyInputError, RewardMatrix, l2_normalise
from .evaluate import MethodScores, evaluate_methods, leave_one_out_configs
from .predictors import (
    CentredEmbedding,
    Ensemble,
    Gated,
    KnnTransfer,
    Predictor,
    PredictorOptions,
    RewardModel,
    Shortlist,
    SimilarityTransfer,
    Task2SimPredictor,
    _FixedConfig,
    make_predictor,
)
from .resume import CHECKPOINT, PolicyCheckpoint, fit_key, stage_fingerprint

log = logging.getLogger(__name__)

# The Task2Sim paper's split of the published 20-task table (docs/policy.md).
PAPER_SEEN = ("CropDisease", "EuroSAT", "SVHN", "ChestX", "Sketch", "DTD", "Flowers102", "DeepWeeds", "Resisc45",
              "Omniglot", "ISIC", "Kaokore")
PAPER_UNSEEN = ("CUB", "PacsC", "PacsS", "AID", "USPS", "FMD", "CactusAerial", "ChestXPneumonia")


@dataclass
class PolicyConfig:
    """The ``policy`` config section (defaults: schemas/config.schema.yaml) and the master seed."""

    predictor: str
    methods: list[str]
    leave_one_out: list[str]
    n_seeds: int
    targets: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    hidden: int
    eps_start: float
    eps_every: int
    sil_start: int
    sil_updates: int
    reward_scale: float
    lr_schedule: str
    seed: int

    def options(self) -> PredictorOptions:
        ctrl = ControllerSettings(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                                  weight_decay=self.weight_decay, hidden=self.hidden, eps_start=self.eps_start,
                                  eps_every=self.eps_every, sil_start=self.sil_start, sil_updates=self.sil_updates,
                                  reward_scale=self.reward_scale, lr_schedule=self.lr_schedule)
        return PredictorOptions(controller=ctrl, targets=self.targets)

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.n_seeds)]


def check_split(rm: RewardMatrix, emb: dict[str, np.ndarray], seen: Sequence[str], unseen: Sequence[str]) -> None:
    if len(seen) < 2:
        raise PolicyInputError(f"{len(seen)} seen task(s): the policy needs at least two (each seen task's "
                               "configuration comes from a predictor fitted on the others)")
    both = sorted(set(seen) & set(unseen))
    if both:
        raise PolicyInputError(f"task {both[0]!r} is both seen and unseen")
    for t in list(seen) + list(unseen):
        if t not in emb:
            raise PolicyInputError(f"task {t!r} has no Task2Vec embedding among the inputs")
    for t in seen:
        if t not in rm.tasks:
            raise PolicyInputError(f"seen task {t!r} is not in the reward table")


def predictor_state(p: Predictor) -> dict[str, Any]:
    """What a fitted predictor needs to predict again, as tensors and plain values."""
    if isinstance(p, Task2SimPredictor):
        return {"state_dict": p.model.state_dict(), "hidden": p.settings.hidden}
    if isinstance(p, KnnTransfer):
        return {"emb": torch.as_tensor(p.emb), "targets": torch.as_tensor(p.z), "k": p.temperature}
    if isinstance(p, SimilarityTransfer):
        return {"emb": torch.as_tensor(p.emb), "targets": torch.as_tensor(p.z), "temperature": p.temperature}
    if isinstance(p, RewardModel):
        return {"emb": torch.as_tensor(p.emb), "coef": torch.as_tensor(p.coef),
                "features": torch.as_tensor(p.features), "temperature": p.params[0], "ridge_alpha": p.params[1]}
    if isinstance(p, Ensemble):
        return {"members": {m.name: predictor_state(m) for m in p.members}}
    if isinstance(p, (Gated, Shortlist)):
        return {"base": {p.base.name: predictor_state(p.base)}, "param": p.param,
                "mean_reward": torch.as_tensor(p.mean_reward)}
    if isinstance(p, CentredEmbedding):
        return {"base": {p.base.name: predictor_state(p.base)}, "centre": torch.as_tensor(p.centre)}
    if isinstance(p, _FixedConfig):
        return {"config": p.space.configs[p.index]}
    return {}


def save_policy(path: str | os.PathLike, p: Predictor, info: dict[str, Any]) -> None:
    """``policy.pt``: the fitted predictor's state plus ``info`` saying what it is (predictor
    name, varied bits, seen tasks, embedding dimension, hyper-parameters)."""
    save_torch(path, {"info": info, "state": predictor_state(p)})


def load_policy(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict; for ``task2sim`` also ``model``, the controller ready to predict."""
    ckpt = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "info" not in ckpt or "state" not in ckpt:
        raise PolicyInputError(f"{path}: not a task2sim policy file")
    info = ckpt["info"]
    if info["predictor"] == "task2sim":
        model = Task2SimController(info["dim"], len(info["vary_bits"]), ckpt["state"]["hidden"])
        model.load_state_dict(ckpt["state"]["state_dict"])
        ckpt["model"] = model.eval()
    return ckpt


def _array(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _restore(p: Predictor, state: dict[str, Any], space: ConfigSpace, ckpt: dict[str, Any]) -> Predictor:
    """Put ``predictor_state``'s values back into a fresh predictor of the same kind."""
    p.space = space
    if isinstance(p, Task2SimPredictor):
        p.model = ckpt["model"]
    elif isinstance(p, KnnTransfer):
        p.emb, p.z, p.temperature = _array(state["emb"]), _array(state["targets"]), state["k"]
    elif isinstance(p, SimilarityTransfer):
        p.emb, p.z, p.temperature = _array(state["emb"]), _array(state["targets"]), state["temperature"]
    elif isinstance(p, RewardModel):
        p.emb, p.coef, p.features = _array(state["emb"]), _array(state["coef"]), _array(state["features"])
        p.gram = p.emb @ p.emb.T  # derived from emb, as in fit
        p.params = (state["temperature"], state["ridge_alpha"])
    elif isinstance(p, Ensemble):
        for m in p.members:
            _restore(m, state["members"][m.name], space, ckpt)
    elif isinstance(p, (Gated, Shortlist, CentredEmbedding)):
        p.base = p.base_factory()
        _restore(p.base, state["base"][p.base.name], space, ckpt)
        if isinstance(p, CentredEmbedding):
            p.centre = _array(state["centre"])
        else:
            p.param, p.mean_reward = state["param"], _array(state["mean_reward"])
    elif isinstance(p, _FixedConfig):
        p.index = space.configs.index(state["config"])
    else:
        raise PolicyInputError(f"predictor {p.name!r} cannot be restored from a policy file")
    return p


def restore_predictor(ckpt: dict[str, Any]) -> Predictor:
    """The fitted predictor of a loaded ``policy.pt`` (``load_policy``), ready to predict tasks
    it has never seen without fitting again: the inverse of ``predictor_state``."""
    info = ckpt["info"]
    p = make_predictor(info["predictor"])
    return _restore(p, ckpt["state"], ConfigSpace(tuple(info["vary_bits"])), ckpt)


def predict_tasks(ckpt: dict[str, Any], raw_emb: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The saved predictor's configuration and P(bit=1) for each task's raw Task2Vec (normalised
    here, as ``run_policy`` does), the values ``predictions.tsv`` would show for them."""
    info = ckpt["info"]
    tasks = list(raw_emb)
    for t in tasks:
        if raw_emb[t].size != info["dim"]:
            raise PolicyInputError(f"task {t!r}: Task2Vec of dimension {raw_emb[t].size}, the policy's is "
                                   f"{info['dim']}")
    p = restore_predictor(ckpt)
    out = p.predict(np.stack([l2_normalise(raw_emb[t]) for t in tasks]))
    return [{"task": t, "bits": p.space.configs[out.config[i]], "p_kind": out.p_kind,
             "p_bits": {n: round(float(out.p_bits[i, j]), 4) for j, n in enumerate(info["bit_names"])}}
            for i, t in enumerate(tasks)]


def _fmt(values: Sequence[float]) -> tuple[str, str]:
    v = np.array([x for x in values if np.isfinite(x)])
    if not len(v):
        return "", ""
    return f"{v.mean():.2f}", (f"{v.std(ddof=1):.2f}" if len(v) > 1 else "")


def summary_rows(scores: list[MethodScores], rm: RewardMatrix, seen: Sequence[str],
                 unseen: Sequence[str]) -> list[dict[str, str]]:
    rows = []
    bf = next((s.loo_per_task for s in scores if s.method == "best_fixed"), {})
    for s in scores:
        row = {"method": s.method, "n_seeds": str(len(s.seeds))}
        for key, vals in (("seen", s.seen), ("unseen", s.unseen), ("loo", s.loo), ("loo_seen", s.loo_seen)):
            row[f"{key}_mean"], row[f"{key}_sd"] = _fmt(vals)
        if bf and s.loo_per_task and s.method != "best_fixed":
            row["loo_wins_vs_best_fixed"] = str(sum(s.loo_per_task[t] > bf[t] + 1e-9 for t in bf))
            row["loo_losses_vs_best_fixed"] = str(sum(s.loo_per_task[t] < bf[t] - 1e-9 for t in bf))
        rows.append(row)
    unseen_t = [t for t in unseen if t in rm.tasks]
    mean_all = {"method": "mean_of_all_configs", "n_seeds": "",
                "seen_mean": f"{rm.rows(seen).mean():.2f}",
                "unseen_mean": f"{rm.rows(unseen_t).mean():.2f}" if unseen_t else "",
                "loo_mean": f"{rm.values.mean():.2f}", "loo_seen_mean": f"{rm.rows(seen).mean():.2f}"}
    return rows + [mean_all]


SUMMARY_COLUMNS = ("method", "n_seeds", "seen_mean", "seen_sd", "unseen_mean", "unseen_sd", "loo_mean", "loo_sd",
                   "loo_seen_mean", "loo_seen_sd", "loo_wins_vs_best_fixed", "loo_losses_vs_best_fixed")




def summary_markdown(rows: list[dict[str, str]], cfg: PolicyConfig, info: dict[str, Any],
                     noise: dict[str, dict[str, float]] | None, predictions: list[dict[str, Any]]) -> str:
    lines = [
        "# Policy: configuration chosen per task", "",
        (f"Default predictor: `{cfg.predictor}`; rewards: mean of the table's reward (%) of each task's predicted"
        f" configuration. seen/unseen: fitted on the {info['n_seen']} seen tasks; loo: leave-one-task-out over"
        f" the {info['n_table_tasks']} table tasks with a Task2Vec; loo seen: leave-one-task-out over the seen"
        " tasks only (never reads an unseen row). Stochastic methods: mean and sd over seeds"
        f" {cfg.seeds}; deterministic ones run once. wins/losses: leave-one-out tasks where a method's"
        " configuration scores above/below best_fixed's. Empty: not run or no such tasks."), "",
        "| method | seeds | seen | unseen | leave-one-out | loo seen | LOO wins/losses vs best_fixed |",
        "|---|---|---|---|---|---|---|",
    ]
    def cell(r, k):
        m, sd = r.get(f"{k}_mean", ""), r.get(f"{k}_sd", "")
        return f"{m} ± {sd}" if sd else m

    for r in rows:
        wl = (f"{r['loo_wins_vs_best_fixed']}/{r['loo_losses_vs_best_fixed']}"
              if r.get("loo_wins_vs_best_fixed") else "")
        lines.append(f"| {r['method']} | {r['n_seeds']} | {cell(r, 'seen')} | {cell(r, 'unseen')} "
                     f"| {cell(r, 'loo')} | {cell(r, 'loo_seen')} | {wl} |")
    if noise:
        sds = [float(r["cell_sd"]) for r in noise.values()]
        n = int(next(iter(noise.values()))["cell_seeds"])
        lines += ["", (f"Measured reward noise (results/rewards/noise.tsv): the seed sd of one task's table cell "
                       f"(a mean over {n} seed{'s' if n > 1 else ''}) is {min(sds):.2f}-{max(sds):.2f} points (mean "
                       f"{sum(sds) / len(sds):.2f}). The tasks of a configuration share its backbones, so a mean over "
                       "tasks does not average that noise away as if the tasks were independent.")]
    lines += ["", f"Predictions of `{cfg.predictor}` (P(bit=1) kind: {info['p_kind']}):", "",
              ("| task | split | bits | reward |" + "".join(f" noise {k} |" for k in _noise_cols(noise))),
              "|---|---|---|---|" + "---|" * len(_noise_cols(noise))]
    for p in predictions:
        extra = "".join(f" {(noise or {}).get(p['task'], {}).get(k, '')} |" for k in _noise_cols(noise))
        lines.append(f"| {p['task']} | {p['split']} | {p['bits']} | {p['reward']} |{extra}")
    return "\n".join(lines) + "\n"


def _noise_cols(noise: dict[str, dict[str, float]] | None) -> list[str]:
    return sorted({k for row in (noise or {}).values() for k in row})


def run_policy(cfg: PolicyConfig, rm: RewardMatrix, raw_emb: dict[str, np.ndarray], seen: Sequence[str],
               unseen: Sequence[str], out_dir: str | os.PathLike,
               noise: dict[str, dict[str, float]] | None = None, stop_after_epoch: int | None = None) -> dict[str, Any]:
    """Score every method, then fit ``cfg.predictor`` on the seen tasks and write policy.pt,
    predictions.tsv, summary.tsv, summary.md and heatmap.png under ``out_dir``.

    Resumes from ``out_dir/checkpoint.pt`` when it was written for the same config and inputs.
    ``stop_after_epoch``: return (``finished`` False, no outputs) after that many controller epochs
    trained by this call, leaving the checkpoint; the next call resumes.
    """
    from .plot import plot_bit_heatmap

    check_split(rm, raw_emb, seen, unseen)
    emb = {t: l2_normalise(v) for t, v in raw_emb.items()}
    options = cfg.options()
    methods = list(dict.fromkeys(cfg.methods + [cfg.predictor]))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    memo = PolicyCheckpoint(out_dir / CHECKPOINT, stage_fingerprint(cfg, rm, emb, seen, unseen), stop_after_epoch)
    t0 = time.process_time()
    scores = []
    # The saved predictor: fitted on all seen tasks with the master seed, which is the scoring's
    # own split fit of that seed (kept from it rather than trained twice; fitted here when that
    # fit was read back from the checkpoint instead).
    saved = fit_key(make_predictor(cfg.predictor, options).name, cfg.seed, seen, [])
    keep: dict[str, Predictor | None] = {saved: None}
    try:
        for name in methods:
            scores += evaluate_methods({name: lambda n=name: make_predictor(n, options)}, emb, rm, seen, unseen,
                                       cfg.seeds, loo=name in cfg.leave_one_out, log=log.info, memo=memo, keep=keep)
        pred = keep[saved]
        if pred is None:
            pred = make_predictor(cfg.predictor, options)
            if isinstance(pred, Task2SimPredictor):
                pred.checkpoint = memo.controller(fit_key("saved " + pred.name, cfg.seed, seen, []))
            pred.fit(np.stack([emb[t] for t in seen]), rm.rows(seen), rm.space, cfg.seed)
            memo.fits_run += 1   # (not kept: the fitted predictor itself is the output)
        # Each seen task's held-out configuration: from the predictor fitted on the other seen
        # tasks (the same fits as its loo_seen score, memoised), so that the final tables never
        # score a predictor on the rows it was fitted on.
        held_out = leave_one_out_configs(lambda: make_predictor(cfg.predictor, options), emb, rm, seen, cfg.seed,
                                         memo)
    except StopRequested as stop:
        log.info("%s; resume from %s", stop, memo.path)
        return {"finished": False, **memo.summary()}
    rows = summary_rows(scores, rm, seen, unseen)

    others = [t for t in emb if t not in seen]
    tasks = list(seen) + [t for t in unseen] + [t for t in others if t not in unseen]
    out = pred.predict(np.stack([emb[t] for t in tasks]))
    names = rm.space.bit_names
    predictions = []
    for i, t in enumerate(tasks):
        bits = rm.space.configs[out.config[i]]
        reward = f"{rm.rows([t])[0, out.config[i]]:.4f}" if t in rm.tasks else ""
        rec = {"task": t, "split": "seen" if t in seen else "unseen", "bits": bits,
               "heldout_bits": rm.space.configs[held_out[t]] if t in seen else bits, "reward": reward}
        rec.update({f"p_{n}": f"{out.p_bits[i, j]:.4f}" for j, n in enumerate(names)})
        predictions.append(rec)
    info = {"predictor": cfg.predictor, "p_kind": out.p_kind, "vary_bits": list(rm.space.vary_bits),
            "bit_names": names, "dim": int(next(iter(emb.values())).size), "seen": list(seen),
            "n_seen": len(seen), "n_table_tasks": sum(t in emb for t in rm.tasks), "seed": cfg.seed,
            "fitted": pred.describe(), "embedding": "L2-normalised Task2Vec"}
    save_policy(out_dir / "policy.pt", pred, info)
    write_tsv(out_dir / "predictions.tsv", ["task", "split", "bits", "heldout_bits", "reward"]
              + [f"p_{n}" for n in names], predictions)
    write_tsv(out_dir / "summary.tsv", SUMMARY_COLUMNS, rows)
    with atomic_path(out_dir / "summary.md", suffix=".md.part") as tmp:
        tmp.write_text(summary_markdown(rows, cfg, info, noise, predictions))
    plot_bit_heatmap(tasks, [p["split"] for p in predictions], names, out.p_bits, out_dir / "heatmap.png",
                     f"P(bit = 1) from {cfg.predictor} ({out.p_kind}), fitted on {len(seen)} seen tasks")
    memo.remove()  # finished: the outputs are written, the checkpoint only served resuming
    return {"finished": True, "predictor": cfg.predictor, "p_kind": out.p_kind, "fitted": pred.describe(),
            "cpu_seconds": round(time.process_time() - t0, 1), **memo.summary(),
            "summary": {r["method"]: {k: r.get(k, "") for k in ("seen_mean", "unseen_mean", "loo_mean")}
                        for r in rows}}
