"""`python -m task2sim.cli.trace` on the controller's summary of a whole (tiny) run: the lineage
reaches every stage, the task HDF5 files and the config values; --check flags a changed input."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import Workflow
from tiny_workflow import tiny_config

pytestmark = pytest.mark.workflow

TARGET = "results/policy/summary.md"


def test_trace_of_the_policy_summary_reaches_tasks_and_config(tiny_run: Workflow, monkeypatch, capsys, tmp_path):
    from task2sim.cli import trace

    cfg = tiny_config()
    tasks = list(cfg["tasks"]["items"])
    monkeypatch.chdir(tiny_run.root)
    assert trace.main([TARGET, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["records"]
    by_stage: dict[str, list[dict]] = {}
    for rec in records:
        by_stage.setdefault(rec["stage"], []).append(rec)
    # every stage upstream of the controller: table, rewards, noise, backbones, renders, Task2Vec, tasks
    assert {"policy", "reward_table", "reward_noise", "reward", "pretrain", "render", "task2vec", "tasks"} <= set(
        by_stage), sorted(by_stage)
    inputs = {path for rec in records for path in rec["inputs"]}
    assert {f"results/tasks/{t}/data.h5" for t in tasks} <= inputs
    assert {f"results/renders/{b}/images.h5" for b in ("00000000", "00000001")} <= inputs
    assert all(len(sha) == 64 for rec in records for sha in rec["inputs"].values())
    # the config values each stage ran with, as config.yaml set them
    assert {r["params"]["task"]: r["params"]["max_train"] for r in by_stage["tasks"]} == dict.fromkeys(
        tasks, cfg["tasks"]["max_train"])
    assert all(r["params"]["epochs"] == cfg["pretrain"]["epochs"] and r["params"]["model"] == cfg["pretrain"]["model"]
               for r in by_stage["pretrain"])
    assert all(r["params"]["image_size"] == cfg["render"]["image_size"] for r in by_stage["render"])
    assert all(r["params"]["samples"] == cfg["task2vec"]["samples"] for r in by_stage["task2vec"])
    (policy,) = by_stage["policy"]
    assert policy["params"]["epochs"] == cfg["policy"]["epochs"] and policy["params"]["unseen"] == ["faces"]
    # code version on every record
    assert all("sha" in rec["git"] and "dirty" in rec["git"] for rec in records)

    # the human-readable lineage, every input re-hashed: nothing changed
    assert trace.main([TARGET, "--check"]) == 0
    text = capsys.readouterr().out
    assert "results/tasks/faces/data.h5" in text and "max_train=40" in text

    # a task file changed after the run (in a copy: the session's run stays as it was)
    shutil.copytree(tiny_run.root / "results", tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    with open("results/tasks/faces/data.h5", "ab") as f:
        f.write(b"\0")
    assert trace.main([TARGET, "--check"]) == 1
    out = capsys.readouterr().out
    assert "results/tasks/faces/data.h5: changed since" in out
    assert "results/tasks/digits8/data.h5: changed" not in out
