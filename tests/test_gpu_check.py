"""The prepared GPU check (tools/gpu_check.sh) on a machine without CUDA: a clean skip, and the
log reading it judges a GPU run by (every torch stage logs the device it resolved)."""

from __future__ import annotations

import os
import subprocess

from conftest import REPO

from task2sim.bench.gpu_check import stage_lines

TORCH_STAGES = ("asg", "evaluate", "final", "noise", "pretrain", "rewards", "task2vec")


def test_without_cuda_it_prints_one_skip_line_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: device: skip: "), res.stdout


def test_stage_lines_count_jobs_by_the_device_they_logged(tmp_path):
    def job(stage: str, name: str, log: str, seconds: float | None) -> None:
        (tmp_path / "logs" / stage).mkdir(parents=True, exist_ok=True)
        (tmp_path / "logs" / stage / f"{name}.log").write_text(log)
        if seconds is not None:
            (tmp_path / "benchmarks" / stage).mkdir(parents=True, exist_ok=True)
            (tmp_path / "benchmarks" / stage / f"{name}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:01\n")

    job("pretrain", "a", "x INFO device: cuda (NVIDIA H200)\n", 2.0)
    job("pretrain", "b", "x INFO device: cuda:0 (NVIDIA H200)\n", 3.5)
    job("rewards", "a", "x INFO device: cpu\n", 1.0)
    job("renders", "a", "rendered 8 images\n", None)
    got = {s["stage"]: s for s in stage_lines(tmp_path, "cuda")}
    assert got["pretrain"] == {"stage": "pretrain", "jobs": 2, "on_device": 2, "other_device": 0, "seconds": 5.5}
    assert got["rewards"]["on_device"] == 0 and got["rewards"]["other_device"] == 1
    assert got["renders"] == {"stage": "renders", "jobs": 1, "on_device": 0, "other_device": 0, "seconds": 0.0}


def test_every_torch_stage_of_the_tiny_run_logs_its_device(tiny_run):
    # The GPU check's verdict rests on this line: a torch stage that stopped logging it would pass
    # a GPU run unseen.
    stages = {s["stage"]: s for s in stage_lines(tiny_run.root, "cpu")}
    for name in TORCH_STAGES:
        assert stages[name]["on_device"] > 0, (name, stages[name])
        assert stages[name]["other_device"] == 0, (name, stages[name])
    # pre-training, the probes and the 5-NN jobs: every one of their logs names the device
    for name in ("pretrain", "evaluate"):
        assert stages[name]["on_device"] == stages[name]["jobs"], stages[name]
