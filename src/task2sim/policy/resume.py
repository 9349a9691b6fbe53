"""Resuming the policy stage (docs/policy.md, "Resuming").

The stage is many fits: every method x seed x split, and x leave-one-out fold where asked, then the
saved predictor. Its ``checkpoint.pt`` (beside the outputs, removed once they are written) keeps

- the result of every finished fit (the configuration chosen for each target task), keyed by what
  was fitted (method, seed, training tasks, target tasks): a rerun reads it instead of fitting
  again, and a fit's result depends on nothing else, so the scores are the same;
- the state of the controller training in progress (``controller.train_controller``), saved every
  ``CHECKPOINT_EVERY`` epochs: a rerun continues it bit-exactly.

It is written after every controller training (tens of seconds each at the default size) and after
each (method, seed) of the other methods (seconds), so a kill loses at most that much work.
The whole checkpoint belongs to one fingerprint: the policy config, the reward matrix, the
embeddings and the split; anything else starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import StopRequested, fingerprint, load_checkpoint, remove_checkpoint, save_checkpoint
from .controller import CHECKPOINT_EVERY
from .data import RewardMatrix

CHECKPOINT = "checkpoint.pt"


def _digest(arrays: Sequence[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def stage_fingerprint(cfg: Any, rm: RewardMatrix, emb: Mapping[str, np.ndarray], seen: Sequence[str],
                      unseen: Sequence[str]) -> str:
    """What decides every fit of the stage: config, reward matrix, embeddings, split."""
    tasks = sorted(emb)
    return fingerprint(asdict(cfg), rm.tasks, list(rm.space.vary_bits), _digest([rm.values]), tasks,
                       _digest([emb[t] for t in tasks]), list(seen), list(unseen))


def fit_key(method: str, seed: int, train: Sequence[str], targets: Sequence[str]) -> str:
    return json.dumps([method, int(seed), list(train), list(targets)])


class PolicyCheckpoint:
    """The stage's checkpoint, and the count of the work this call did and did not have to do.

    ``stop_after_epoch``: raise ``StopRequested`` after that many controller epochs trained by this
    call, once the state is saved (a time-limited job, or the interruption of the resume test).
    """

    def __init__(self, path: str | os.PathLike, fp: str, stop_after_epoch: int | None = None):
        self.path, self.fp, self.stop_after_epoch = Path(path), fp, stop_after_epoch
        ckpt = load_checkpoint(self.path, fp)
        self.results: dict[str, list[int]] = dict(ckpt["results"]) if ckpt else {}
        self.partial: dict[str, Any] | None = ckpt["controller"] if ckpt else None
        self.resumed_fits = 0          # finished fits read back instead of fitted
        self.resumed_from_epoch = 0    # epoch the interrupted controller training continued from
        self.fits_run = 0              # fits done by this call
        self.epochs_run = 0            # controller epochs trained by this call
        self._dirty = False

    def result(self, key: str) -> list[int] | None:
        r = self.results.get(key)
        if r is not None:
            self.resumed_fits += 1
        return r

    def done(self, key: str, configs: Sequence[int], flush: bool) -> None:
        self.results[key] = [int(c) for c in configs]
        self.fits_run += 1
        if self.partial is not None and self.partial["key"] == key:
            self.partial = None
        self._dirty = True
        if flush:
            self.flush()

    def flush(self) -> None:
        if self._dirty:
            save_checkpoint(self.path, self.fp, {"results": self.results, "controller": self.partial})
            self._dirty = False

    def controller(self, key: str) -> _ControllerCheckpoint:
        return _ControllerCheckpoint(self, key)

    def remove(self) -> None:
        remove_checkpoint(self.path)

    def summary(self) -> dict[str, int]:
        return {"resumed_fits": self.resumed_fits, "resumed_from_epoch": self.resumed_from_epoch,
                "fits_run": self.fits_run, "controller_epochs_run": self.epochs_run}


class _ControllerCheckpoint:
    """One controller training's view of the stage checkpoint (``controller.ControllerCheckpoint``)."""

    def __init__(self, owner: PolicyCheckpoint, key: str):
        self.owner, self.key = owner, key

    def restore(self) -> dict[str, Any] | None:
        p = self.owner.partial
        if p is None or p["key"] != self.key:
            return None
        self.owner.resumed_from_epoch = int(p["state"]["epoch"])
        return p["state"]

    def epoch_done(self, epoch: int, state: Callable[[], dict[str, Any]]) -> None:
        o = self.owner
        o.epochs_run += 1
        stop = o.stop_after_epoch is not None and o.epochs_run >= o.stop_after_epoch
        if epoch % CHECKPOINT_EVERY == 0 or stop:
            o.partial = {"key": self.key, "state": state()}
            o._dirty = True
            o.flush()
        if stop:
            raise StopRequested(f"stopped after {o.epochs_run} controller epochs")
