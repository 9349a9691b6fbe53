"""A tiny but complete workflow (every stage, 3 tasks, 2 configurations), run once with the network
blocked (the session's tiny run, conftest.tiny_run), then killed with SIGKILL inside each heavy
stage and resumed with ``--rerun-incomplete`` (README, Reliability).

That uninterrupted run is the yardstick: after each kill, every file
under results/ that looks complete must equal the reference's, and after the rerun every file must
again equal it: byte for byte, except the fields that measure time (``seconds``, ``images_per_s``,
provenance timestamps, host and command), which are dropped before comparing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SNAKEMAKE, copy_tiny_run
from network_guard import guard_env

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

# Side files a stage may keep between an interruption and its rerun (never declared outputs):
# pre-training's and the policy stage's checkpoint.pt, ASG fine-tuning's checkpoint/<method>.pt.
RESUME_FILES = ("checkpoint.pt", "checkpoint", "images.h5.part")
VOLATILE_KEYS = ("seconds", "images_per_s")
RECORD_KEYS = ("stage", "params", "seeds", "inputs", "outputs")


class TinyRun:
    def __init__(self, root: Path, env: dict[str, str]):
        self.root, self.env = root, env
        self.ref = root.parent / "reference"

    def snakemake(self, *args: str, timeout: int = 2400) -> subprocess.CompletedProcess:
        cmd = [str(SNAKEMAKE), "--directory", str(self.root), *args]
        with subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) as proc:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the jobs too, not only snakemake
                raise
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def start(self, *args: str) -> subprocess.Popen:
        """snakemake in its own session: its process group holds every job it starts."""
        return subprocess.Popen([str(SNAKEMAKE), "--directory", str(self.root), *args], cwd=self.root,
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def ref_seconds(self, benchmark: str) -> float:
        with open(self.ref.parent / "reference_benchmarks" / benchmark) as f:
            return float(list(csv.DictReader(f, delimiter="\t"))[-1]["s"])


def _drop_volatile(obj):
    if isinstance(obj, dict):
        return {k: _drop_volatile(v) for k, v in obj.items() if not any(w in k for w in VOLATILE_KEYS)}
    if isinstance(obj, list):
        return [_drop_volatile(v) for v in obj]
    return obj


def normalised(path: Path) -> bytes:
    """The file's bytes, less what measures time (provenance: only what was computed from what)."""
    data = path.read_bytes()
    if path.name.endswith(".meta.json"):
        rec = json.loads(data)
        return json.dumps({k: rec.get(k) for k in RECORD_KEYS}, sort_keys=True).encode()
    if path.suffix == ".json":
        return json.dumps(_drop_volatile(json.loads(data)), sort_keys=True).encode()
    if path.suffix == ".tsv":
        rows = list(csv.reader(io.StringIO(data.decode()), delimiter="\t"))
        if rows:
            keep = [i for i, name in enumerate(rows[0]) if not any(w in name for w in VOLATILE_KEYS)]
            return "\n".join("\t".join(r[i] for i in keep if i < len(r)) for r in rows).encode()
    return data


def result_files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted((root / "results").rglob("*")) if p.is_file()}


def differences(run: TinyRun, allow_missing: bool) -> list[str]:
    """Files that differ from the reference run (missing ones too unless ``allow_missing``)."""
    ref, now = result_files(run.ref.parent / "reference_root"), result_files(run.root)
    out = []
    for rel, path in now.items():
        if allow_missing and path.name.startswith("."):
            continue  # a killed writer's hidden temporary: never mistaken for a result (removed on rerun)
        if rel not in ref:
            if not set(Path(rel).parts[-2:]) & set(RESUME_FILES):
                out.append(f"{rel}: not in the reference run")
        elif normalised(path) != normalised(ref[rel]):
            out.append(f"{rel}: differs from the reference run")
    if not allow_missing:
        out += [f"{rel}: missing" for rel in ref if rel not in now]
    return out


@pytest.fixture(scope="module")
def tiny(tiny_run, tmp_path_factory) -> TinyRun:
    """A copy of the session's tiny run (conftest.tiny_run, built under the network guard): the
    kill tests below work on the copy, the frozen original files are the yardstick."""
    base = tmp_path_factory.mktemp("reliability")
    root = copy_tiny_run(tiny_run, base / "wf").root
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8", **guard_env(base)}
    run = TinyRun(root, env)
    (base / "reference_root").mkdir()
    shutil.copytree(tiny_run.root / "results", base / "reference_root" / "results")
    shutil.copytree(tiny_run.root / "benchmarks", base / "reference_benchmarks")
    return run


def test_tiny_run_opens_no_network_connection(tiny_run):
    base = tiny_run.root.parent
    armed = (base / "network.log.armed").read_text().splitlines()
    # the guard sat in snakemake and in every job's interpreter (one line per Python process)
    assert any("task2sim.cli.pretrain" in ln for ln in armed) and any("snakemake" in ln for ln in armed)
    assert sum("task2sim.cli." in ln for ln in armed) >= 20
    log = base / "network.log"
    assert not log.exists(), log.read_text()


def test_no_op_rerun_schedules_nothing(tiny):
    res = tiny.snakemake("-n")
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr, res.stdout[-3000:]


def _job_process(session: int, stage: str) -> int | None:
    """The pid of ``python -m task2sim.cli.<stage>`` in snakemake's session, if running."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[3]) == session and argv[1:3] == [b"-m", f"task2sim.cli.{stage}".encode()]:
            return int(d.name)
    return None


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


# stage CLI, one output of one job, its benchmark file, and a file whose appearance marks a point
# worth killing at (a resume point: rendering's partial file after its first chunk,
# pre-training's checkpoint after its first epoch, the policy stage's
# after its first controller training, ASG's once its first method finished an epoch)
STAGES = {
    "render": ("render", "results/renders/00000001/images.h5", "renders/00000001/images.tsv",
               "results/renders/00000001/images.h5.part"),
    "pretrain": ("pretrain", "results/pretrain/00000001/model.pt", "pretrain/00000001/model.tsv",
                 "results/pretrain/00000001/checkpoint.pt"),
    "reward": ("reward", "results/rewards/00000001/faces.json", "rewards/00000001/knn5.tsv", None),
    "task2vec": ("task2vec", "results/task2vec/faces.npz", "task2vec/faces.tsv", None),
    "policy": ("policy", "results/policy/summary.md", "policy/train.tsv", "results/policy/checkpoint.pt"),
    "asg_finetune": ("asg", "results/asg/digits8/asg/metrics.tsv", "asg/finetune.tsv",
                     "results/asg/checkpoint/all_lr.pt"),
    "evaluate": ("evaluate", "results/evaluate/linear/00000001/faces.json",
                 "evaluate/linear/00000001/faces.tsv", None),
}


def resumed_work(root: Path, stage: str) -> int:
    """What the stage's rerun read back from its checkpoint instead of recomputing (its provenance
    records): images for rendering, epochs for pre-training and ASG fine-tuning, finished fits and
    epochs for the policy."""
    if stage == "render":
        return json.loads((root / "results/renders/00000001/images.meta.json").read_text())["extra"][
            "resumed_from_image"]
    if stage == "pretrain":
        return json.loads((root / "results/pretrain/00000001/model.meta.json").read_text())["extra"][
            "resumed_from_epoch"]
    if stage == "policy":
        extra = json.loads((root / "results/policy/policy.meta.json").read_text())["extra"]
        return extra["resumed_fits"] + extra["resumed_from_epoch"]
    return sum(json.loads(p.read_text())["extra"]["resumed_from_epoch"]
               for p in (root / "results/asg/digits8").glob("*/model.meta.json"))


@pytest.mark.parametrize("stage", list(STAGES))
def test_kill_9_then_rerun_incomplete_gives_the_reference_outputs(tiny, stage):
    cli, target, bench, mark = STAGES[stage]
    rng = random.Random(f"{stage}-{time.time_ns()}")
    proc = tiny.start("--cores", "2", "--force", target)
    deadline = time.monotonic() + 600
    job = None
    while job is None and proc.poll() is None and time.monotonic() < deadline:
        job = _job_process(proc.pid, cli)
        time.sleep(0.05)
    assert job is not None, f"the {stage} job never started"
    if mark:  # wait for the resume point, then kill soon after it (a tiny epoch lasts ~0.1 s)
        while not (tiny.root / mark).exists() and _alive(job) and time.monotonic() < deadline:
            time.sleep(0.005)
        delay = rng.uniform(0.0, 0.03)
    else:  # anywhere in the first 80% of the reference run's time
        delay = rng.uniform(0.05, 0.8) * tiny.ref_seconds(bench)
    t_kill = time.monotonic() + delay
    while _alive(job) and time.monotonic() < t_kill:
        time.sleep(0.02)
    killed_mid_job = _alive(job)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    # the job may have finished training (and removed its checkpoint) but not yet exited
    resumable = mark is not None and (tiny.root / mark).exists()
    print(f"{stage}: SIGKILL {delay:.2f} s in, job still running: {killed_mid_job}, "
          f"checkpoint left: {resumable}")

    # nothing that looks complete is half-written: every present result equals the reference's
    assert differences(tiny, allow_missing=True) == []

    assert tiny.snakemake("--unlock").returncode == 0
    res = tiny.snakemake("--cores", "2", "--rerun-incomplete", target)
    assert res.returncode == 0, res.stderr[-4000:]
    assert differences(tiny, allow_missing=False) == []
    leftovers = [p for p in (tiny.root / "results").rglob(".*") if p.is_file() or p.is_dir()]
    assert leftovers == [], leftovers
    if resumable:
        # resumed from the checkpoint (less work than a fresh run), which is gone once the outputs are
        assert resumed_work(tiny.root, stage) >= 1
        assert not (tiny.root / mark).exists()


def test_same_config_and_seed_give_identical_table_predictions_and_summaries(tiny):
    """The reward table, the controller's predictions and every summary, computed again from the
    same inputs: byte-identical (the kill tests above already recompute each heavy stage)."""
    targets = ["results/rewards/table.tsv", "results/policy/summary.md", "results/asg/summary.md",
               "results/task2vec/distances.tsv", "results/rewards/00000000/digits8.json"]
    res = tiny.snakemake("--cores", "2", "--force", *targets)
    assert res.returncode == 0, res.stderr[-4000:]
    ref = tiny.ref.parent / "reference_root"
    for rel in ("results/rewards/table.tsv", "results/rewards/table.png", "results/policy/predictions.tsv",
                "results/policy/summary.md", "results/policy/summary.tsv", "results/policy/policy.pt",
                "results/asg/summary.md", "results/task2vec/distances.tsv", "results/rewards/00000000/digits8.json",
                "results/rewards/00000000/faces.json", "results/features/00000000/faces.npz"):
        assert (tiny.root / rel).read_bytes() == (ref / rel).read_bytes(), rel
    assert differences(tiny, allow_missing=False) == []
