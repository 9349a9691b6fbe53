"""One backbone scored on several tasks (5-NN, linear probe, fine-tune), and the score files read back."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import EVALUATIONS, FinalError, read_tsv

if TYPE_CHECKING:
    from ..backbones.features import Backbone

log = logging.getLogger(__name__)


def score_backbone(bb: Backbone, tasks: Mapping[str, str], evaluations: Sequence[str],
                   eval_cfgs: Mapping[str, Any], k: int, temperature: float, seed: int,
                   device: str = "auto", caches: Mapping[str, str] | None = None,
                   batch_size: int = 256, amp: bool = False) -> list[dict[str, Any]]:
    """Rows (task, source, evaluation, top1, chosen, n_train, n_test, seconds; linear and finetune
    also ``grid``, each point's validation top-1, empty for a one-point grid) of ``bb`` on each
    task ``{task: data.h5}``. ``eval_cfgs``: ``EvalConfig`` per probe method (linear, finetune).
    Features are computed once per task (the reward stage's, when ``caches`` {task: .npz} holds
    them for this backbone: then the 5-NN is the reward table's cell) and shared by the 5-NN and
    the linear probe (none for a fine-tune alone); fine-tuning trains the whole network from
    ``bb.checkpoint`` (or from random init for scratch). ``batch_size`` and ``amp``: of the feature
    extraction (reward.batch_size, reward.amp)."""
    from ..backbones.features import features, l2_normalise
    from ..backbones.runtime import derive_seed, resolve_device
    from ..reward.knn import knn_accuracy
    from ..train.evaluate import evaluate, linear_probe, validation_split

    dev = resolve_device(device)
    caches = dict(caches or {})
    if caches and bb.checkpoint is None:
        raise FinalError(f"source {bb.source}: feature caches are for pre-trained backbones only")
    probes = any(ev in ("knn5", "linear") for ev in evaluations)
    rows = []
    for task, h5 in tasks.items():
        t0 = time.perf_counter()
        base = {"task": task, "source": bb.source}
        if probes:  # a fine-tune alone needs no features (the recipe's jobs)
            fs = features(bb, h5, caches.get(task), batch_size, dev, progress=False, write_cache=False, amp=amp)
            ftr, ytr, fte, yte, n_classes = fs.train, fs.train_labels, fs.test, fs.test_labels, fs.n_classes
            base.update(n_train=len(ytr), n_test=len(yte))
        t_feat = time.perf_counter() - t0
        for ev in evaluations:
            t1 = time.perf_counter()
            grid = None
            if ev == "knn5":
                top1 = knn_accuracy(l2_normalise(ftr), ytr, l2_normalise(fte), yte, n_classes=n_classes, k=k,
                                    temperature=temperature, device=dev)
                chosen = {"k": k, "temperature": temperature}
            elif ev == "linear":
                cfg = eval_cfgs["linear"]
                split = validation_split(ytr, cfg.val_fraction, derive_seed(cfg.seed, 7), where=h5)
                r = linear_probe(ftr, ytr, fte, yte, n_classes, cfg, split, dev)
                top1, chosen, grid = r["test_top1"], r["chosen"], r["grid"]
            elif ev == "finetune":
                if bb.source == "imagenet":
                    log.info("%s: no fine-tune of the ImageNet reference (knn5 and linear only)", task)
                    continue
                cfg = eval_cfgs["finetune"]
                r = evaluate(bb.name, bb.checkpoint, h5, cfg, progress=False)
                top1, chosen, grid = r["test_top1"], r["chosen"], r["grid"]
                base.update(n_train=r["n_train"], n_test=r["n_test"])
            else:
                raise FinalError(f"unknown evaluation {ev!r} (known: {', '.join(EVALUATIONS)})")
            secs = time.perf_counter() - t1 + (t_feat if ev != "finetune" else 0.0)
            rows.append({**base, "evaluation": ev, "top1": round(float(top1), 4), "chosen": chosen,
                         "seconds": round(secs, 2), **({} if grid is None else {"grid": grid})})
            log.info("%s %s %s: %.2f", bb.source, task, ev, top1)
    return rows


def read_scores(paths: Sequence[str | os.PathLike]) -> dict[tuple[str, str, str, str], float]:
    """{(budget, source, task, evaluation): top1} from score TSVs at .../scores/{budget}/{source}.tsv."""
    out = {}
    for p in paths:
        budget = Path(p).parent.name
        for r in read_tsv(p):
            out[(budget, r["source"], r["task"], r["evaluation"])] = float(r["top1"])
    return out


def score_seed(path: str | os.PathLike) -> str | None:
    """The evaluation seed of a score TSV at .../seeds/{seed}/scores/{budget}/{source}.tsv
    (final.seeds), None for the run's own backbones (.../scores/{budget}/{source}.tsv)."""
    parts = Path(path).parts
    return parts[-4] if len(parts) >= 5 and parts[-5] == "seeds" and parts[-3] == "scores" else None


def read_scores_by_seed(paths: Sequence[str | os.PathLike]) -> dict[str | None, dict[tuple[str, str, str, str], float]]:
    """read_scores per evaluation seed (``score_seed``). The run's own scores and seeded ones do
    not mix: a comparison is scored on one or the other."""
    by: dict[str | None, list] = {}
    for p in paths:
        by.setdefault(score_seed(p), []).append(p)
    if None in by and len(by) > 1:
        raise FinalError("scores: the run's own backbones and final.seeds' backbones mixed in one comparison")
    return {s: read_scores(ps) for s, ps in sorted(by.items(), key=lambda kv: int(kv[0] or -1))}

