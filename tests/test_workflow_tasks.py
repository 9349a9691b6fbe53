"""The tasks stage through Snakemake, in a copy of the workflow in tmp_path."""

from __future__ import annotations

import json
import re

import h5py
import pytest
from conftest import Workflow

pytestmark = pytest.mark.workflow

TASKS = ("digits8", "faces")
CONFIG = """\
seed: 0
tasks:
  max_train: 60
  max_test: 30
  items:
    digits8: {source: digits8, seen: true}
    faces:   {source: faces, seen: false, image_size: 16}
"""


@pytest.fixture
def workflow_copy(workflow: Workflow) -> Workflow:
    workflow.write_config(CONFIG)
    return workflow


def _targets() -> list[str]:
    return [f"results/tasks/{t}/{n}" for t in TASKS for n in ("data.h5", "preview.png")]


def test_tasks_stage_runs_and_reruns_nothing(workflow_copy: Workflow):
    dry = workflow_copy.run("-n", *_targets())
    assert dry.returncode == 0, dry.stderr + dry.stdout
    jobs = dry.stdout + dry.stderr
    assert re.search(r"^tasks_prepare\s+2$", jobs, re.M), jobs
    assert all(f"output: results/tasks/{t}/data.h5" in jobs for t in TASKS)

    run = workflow_copy.run("--cores", "2", *_targets())
    assert run.returncode == 0, run.stderr[-3000:]
    for task, shape in (("digits8", (8, 8, 1)), ("faces", (16, 16, 1))):
        out = workflow_copy.root / "results" / "tasks" / task
        with h5py.File(out / "data.h5") as f:
            assert f["train/images"].shape[1:] == shape
            assert f["train/images"].shape[0] == 60  # max_train, class-balanced
            assert f["test/labels"].shape == (30,)
            assert f.attrs["task"] == task and f.attrs["format_version"] == 1
        meta = json.loads((out / "data.meta.json").read_text())
        assert {"stage", "params", "seeds", "inputs", "git", "packages"} <= set(meta)
        assert meta["params"]["max_train"] == 60 and meta["seeds"]["seed"] == 0
        assert (workflow_copy.root / "logs" / "tasks" / task / "data.log").is_file()
        assert (workflow_copy.root / "benchmarks" / "tasks" / task / "data.tsv").is_file()

    again = workflow_copy.run("--cores", "2", *_targets())
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr

    # A changed setting reruns exactly that task.
    (workflow_copy.root / "config.yaml").write_text(CONFIG.replace("image_size: 16", "image_size: 20"))
    changed = workflow_copy.run("-n", *_targets())
    text = changed.stdout + changed.stderr
    assert re.search(r"^tasks_prepare\s+1$", text, re.M), text
    assert "output: results/tasks/faces/data.h5" in text
    assert "output: results/tasks/digits8/data.h5" not in text


def test_typo_in_config_key_fails_naming_it(workflow_copy: Workflow):
    (workflow_copy.root / "config.yaml").write_text(CONFIG.replace("max_train", "max_trian"))
    res = workflow_copy.run("-n", *_targets())
    assert res.returncode != 0
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if "max_trian" in ln]
    assert len(lines) == 1, res.stdout + res.stderr


def test_bad_task_path_fails_with_one_line_in_the_log(workflow_copy: Workflow):
    (workflow_copy.root / "config.yaml").write_text(
        CONFIG + "    mine: {source: imagefolder, path: /nonexistent/images}\n")
    res = workflow_copy.run("--cores", "1", "results/tasks/mine/data.h5")
    assert res.returncode != 0
    log = (workflow_copy.root / "logs" / "tasks" / "mine" / "data.log").read_text()
    assert log.strip().splitlines()[-1] == "error: image folder not found: /nonexistent/images"
    assert not (workflow_copy.root / "results" / "tasks" / "mine" / "data.h5").exists()
