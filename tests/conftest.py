"""Shared test harness: one way to run the workflow, and the paths every test file needs.

``tests/`` is on ``sys.path`` (pytest's rootdir-relative import), so helper modules such as
``fixtures_h5`` import directly.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch._dynamo  # noqa: F401  (loads triton's LLVM before a test module loads Mesa's EGL: the reverse order segfaults)
import yaml

from task2sim.bench.tiny import copy_workflow_files

REPO = Path(__file__).resolve().parents[1]
# The shared reference data beside the checkout (published tables); tests skip without it.
SHARED = REPO.parent / "shared"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


@dataclass
class Workflow:
    """A copy of the workflow in a temporary directory, run the way a user runs it."""

    root: Path

    def run(self, *args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
        # A bare PATH on purpose: jobs must find the interpreter that runs snakemake by themselves
        # (a user calling .venv/bin/snakemake without activating the venv). `env` adds variables.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8", **(env or {})}
        return subprocess.run([str(SNAKEMAKE), "--directory", str(self.root), *args], cwd=self.root,
                              env=env, capture_output=True, text=True, timeout=timeout)

    def write_config(self, cfg: dict | str) -> None:
        text = cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False)
        (self.root / "config.yaml").write_text(text)

    @staticmethod
    def job_counts(out: str) -> dict[str, int]:
        """The job-stats table of a (dry) run: rule -> number of jobs."""
        return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}


def copy_workflow(dest: Path) -> Workflow:
    """The workflow's files copied into ``dest`` (skips the test without snakemake)."""
    if not SNAKEMAKE.exists():
        pytest.skip("snakemake is not installed in this environment")
    copy_workflow_files(REPO, dest)
    return Workflow(dest)


@pytest.fixture
def workflow(tmp_path: Path) -> Workflow:
    return copy_workflow(tmp_path)


@pytest.fixture
def shared_reference() -> Path:
    """The published Task2Sim data (reward_db.json, Task2Vec npz); skip when not beside us."""
    path = SHARED / "reference" / "task2sim"
    if not (path / "reward_db.json").is_file():
        pytest.skip(f"published reference data not found at {path}")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models and batch-4 updates are latency-bound: a second torch thread only adds
    synchronisation cost, and far more on a 2-core machine shared with other jobs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``make test`` runs two workers, ``--dist loadgroup``) a session fixture
    is built once per worker: every test that reads the tiny run goes to one worker, so the run is
    built once."""
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("tiny_run"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Workflow:
    """The whole workflow at tiny size (tests/tiny_config.yaml), run once locally per session
    with the network guarded (tests/network_guard.py; its log beside the copy): the reference of
    the SLURM and kill tests, and the run the report, trace and GPU-check tests read."""
    from network_guard import guard_env
    from tiny_workflow import write_tiny_config

    base = tmp_path_factory.mktemp("tiny")
    (base / "wf").mkdir()
    wf = copy_workflow(base / "wf")
    write_tiny_config(wf)
    res = wf.run("--cores", "2", timeout=3600, env=guard_env(base))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return wf
