"""Shared test harness: one way to run the workflow, and the paths every test file needs.

``tests/`` is on ``sys.path`` (pytest's rootdir-relative import), so helper modules such as
``fixtures_h5`` import directly.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
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


@pytest.fixture(autouse=True)
def one_torch_thread_per_worker():
    """Under pytest-xdist (`make test`: 2 workers on the 2 cores) every test computes on one torch
    thread. Two workers of two OpenMP threads each oversubscribe the cores, and the idle threads
    spin-wait: the model-heavy unit tests ran 2.5x slower (BENCHMARKS.md, "Test suite"). A test
    that sets its own thread count (a CLI's --threads) gets one again before the next test."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models and batch-4 updates are latency-bound: a second torch thread only adds
    synchronisation cost, and far more on a 2-core machine shared with other jobs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Tests that take minutes, started first so that the two pytest-xdist workers of `make test`
# (-n 2 --dist load --maxschedchunk 1: one test at a time) share them out from the start instead of
# one worker ending the run alone.
HEAVY_FIRST = ("test_slurm.py::test_tiny_workflow_through_slurm", "test_reliability_workflow.py::",
               "test_final_oneshot_workflow.py::", "test_train_workflow.py::test_real_run",
               "test_report.py::test_report_figures")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        hits = [i for i, key in enumerate(HEAVY_FIRST) if key in item.nodeid]
        return hits[0] if hits else len(HEAVY_FIRST)

    items.sort(key=rank)  # stable: the order within each rank stays pytest's


def copy_tiny_run(tiny_run: Workflow, dest: Path) -> Workflow:
    """A copy of the session's tiny run at ``dest``, to run more of the workflow on without touching
    the original (the yardstick other tests read)."""
    shutil.copytree(tiny_run.root, dest, symlinks=True)
    # a lock of a snakemake that another test runs in the original at this moment (the report)
    shutil.rmtree(dest / ".snakemake" / "locks", ignore_errors=True)
    return Workflow(dest)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Workflow:
    """The whole workflow at tiny size (tests/tiny_config.yaml), run with the network guarded
    (tests/network_guard.py; its log beside the copy): the reference of the SLURM and kill tests,
    and the run the report, trace and GPU-check tests read. Built once per test run, also under
    pytest-xdist: the first worker to ask builds it under a file lock in the folder the workers'
    temporary folders share, the others wait for it and read it."""
    from network_guard import guard_env
    from tiny_workflow import write_tiny_config

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    base = shared / "tiny_run"
    with open(shared / "tiny_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / "done").exists():
            shutil.rmtree(base, ignore_errors=True)  # an earlier attempt that failed
            (base / "wf").mkdir(parents=True)
            wf = copy_workflow(base / "wf")
            write_tiny_config(wf)
            res = wf.run("--cores", "2", timeout=3600, env=guard_env(base))
            assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
            (base / "done").touch()
    return Workflow(base / "wf")
