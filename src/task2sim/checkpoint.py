"""Resume checkpoints of the long stages (pre-training, the controller, ASG fine-tuning).

    fp = fingerprint(config_dict, input_sha, "cpu")
    state = load_checkpoint(out_dir / "checkpoint.pt", fp)     # None: start fresh
    ...
    save_checkpoint(out_dir / "checkpoint.pt", fp, {"epoch": 3, "model": model.state_dict()})

A checkpoint lies beside the stage's outputs, is never a declared output (so Snakemake's
``--rerun-incomplete`` keeps it), is written atomically (``io.save_torch``) and is removed once the
outputs are written. It carries a fingerprint of everything that decides the result (the science
config, the inputs' contents, the resolved device and precision); one written for anything else is
ignored with a warning, and the stage starts fresh.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from .io import save_torch

log = logging.getLogger(__name__)


class StopRequested(Exception):
    """A stage's stop-after hook fired: its checkpoint holds the progress, no output is written (a
    time-limited job, or the interruption of a resume test); the next call resumes."""


def fingerprint(*parts: Any) -> str:
    """sha256 of the JSON of ``parts`` (plain values: dicts, lists, strings, numbers)."""
    return hashlib.sha256(json.dumps(list(parts), sort_keys=True).encode()).hexdigest()


def load_checkpoint(path: str | os.PathLike, fp: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it was written for fingerprint ``fp``; None if there is none
    or it belongs to another run (logged)."""
    path = Path(path)
    if not path.is_file():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("fingerprint") != fp:
        log.warning("ignoring %s: written for another config, input, device or AMP dtype; starting fresh", path)
        return None
    return ckpt


def save_checkpoint(path: str | os.PathLike, fp: str, state: dict[str, Any]) -> None:
    save_torch(path, {"fingerprint": fp, **state})


def remove_checkpoint(path: str | os.PathLike) -> None:
    """Remove the checkpoint once the outputs are written, and any temporary of it that a killed
    writer left behind."""
    path = Path(path)
    path.unlink(missing_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.pt.part"):
        stale.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """The global torch generators' states (CPU, and every CUDA device when there is one)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
