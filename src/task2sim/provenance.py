"""Provenance records: ``<output stem>.meta.json`` beside every heavy output.

Usage (in a stage CLI, the one layer that writes records)::

    rec = Provenance.start("pretrain", cfg, seeds={"seed": 0}, inputs=[h5_path])
    ...                      # do the work
    rec.finish([model_path, history_path], extra={"final_loss": 0.12})  # -> model.meta.json

The record of a file F is the ``*.meta.json`` in F's folder whose ``outputs`` list F; the first
output names it (``meta_path``). ``trace`` walks these records from any result to its inputs.

The record answers an auditor's questions: which code (git SHA + dirty flag, package version),
which parameters and seeds, which inputs exactly (sha256), which software (versions), where
(host, device, SLURM job id) and when (start/end, UTC).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import dataclasses
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from . import __version__
from .io import write_json

# Packages whose versions decide results; missing ones are recorded as null.
TRACKED_PACKAGES = (
    "torch", "torchvision", "timm", "numpy", "h5py", "scikit-learn", "snakemake",
    "moderngl", "tdw", "mitsuba", "scikit-image", "pillow",
)
_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def git_state(repo: str | os.PathLike | None = None) -> dict[str, Any]:
    """SHA and dirty flag of the checkout holding this package (or ``repo``); nulls outside git."""
    where = Path(repo) if repo else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        return {"sha": sha, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description() -> dict[str, Any]:
    """The compute device a stage would use, without importing torch if it is not loaded yet."""
    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "machine": platform.machine()}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def meta_path(output: str | os.PathLike) -> Path:
    """The provenance record of a stage's main output: ``model.pt`` -> ``model.meta.json``."""
    return Path(output).with_suffix(".meta.json")


def record_of(path: str | os.PathLike) -> Path | None:
    """The provenance record of a file (the one rule every reader follows): the ``*.meta.json`` in
    the file's folder whose ``outputs`` list it, ``meta_path(path)`` first. None for a source file
    (config, package data) or anything no stage wrote."""
    path = Path(path)
    candidates = [meta_path(path)] + sorted(p for p in path.parent.glob("*.meta.json") if p != meta_path(path))
    for rec in candidates:
        if rec.is_file() and rec != path:
            try:
                outputs = {os.path.normpath(o) for o in json.loads(rec.read_text()).get("outputs", [])}
            except (OSError, ValueError):
                continue
            if os.path.normpath(path) in outputs:
                return rec
    return None


def lineage(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record behind ``path``, nearest first: the record of the file, then the records of
    its inputs, and so on (each once). Input paths are as the stage saw them (relative to the
    run's working directory when the workflow ran them), so call this from that directory."""
    out, seen, todo = [], set(), [Path(path)]
    while todo:
        rec_path = record_of(todo.pop(0))
        if rec_path is None or rec_path in seen:
            continue
        seen.add(rec_path)
        rec = json.loads(rec_path.read_text())
        out.append({"record": os.fspath(rec_path), **rec})
        todo.extend(Path(p) for p in rec.get("inputs", {}))
    return out


def is_record(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a provenance record (shell globs over results match them too)."""
    return str(path).endswith(".meta.json")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Provenance:
    stage: str
    params: dict[str, Any] = field(default_factory=dict)
    seeds: dict[str, Any] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    started: str = field(default_factory=_now)
    defaulted: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, stage: str, config: Any = None, seeds: dict[str, Any] | None = None,
              inputs: Iterable[str | os.PathLike] = (), **params: Any) -> "Provenance":
        """``config``: the stage's resolved dataclass (or a dict); ``params``: other resolved
        values (task id, bits), recorded beside it. The fields of ``config`` that its job was not
        given (``config.config_from_dict`` filled them from the schema) are listed as ``defaulted``:
        a value there is the schema's, not necessarily the run's config (the rules leave out the
        keys a job does not read)."""
        from .config import DEFAULTED

        resolved = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
        return cls(stage=stage, params={**resolved, **params}, seeds=dict(seeds or {}),
                   inputs=[os.fspath(p) for p in inputs], defaulted=list(getattr(config, DEFAULTED, [])))

    def record(self, outputs: Iterable[str | os.PathLike] = (),
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "task2sim_version": __version__,
            "git": git_state(),
            "params": self.params,
            **({"defaulted": self.defaulted} if self.defaulted else {}),
            "seeds": self.seeds,
            "inputs": {p: sha256_file(p) for p in self.inputs if Path(p).is_file()},
            "outputs": [os.fspath(p) for p in outputs],
            "packages": package_versions(),
            "python": sys.version.split()[0],
            "device": device_description(),
            "host": socket.gethostname(),
            "slurm": {k: os.environ[k] for k in _SLURM_VARS if k in os.environ} or None,
            "command": sys.argv,
            "started": self.started,
            "finished": _now(),
            **({"extra": extra} if extra else {}),
        }

    def finish(self, outputs: list[str | os.PathLike],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the record to ``meta_path(outputs[0])`` (atomically) and return it."""
        rec = self.record(outputs, extra)
        write_json(meta_path(outputs[0]), rec)
        return rec
