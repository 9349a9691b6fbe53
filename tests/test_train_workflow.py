"""The pretrain -> reward -> table -> evaluate rules, run for real by snakemake on fixture inputs.

Renders and tasks come from tests/fixtures_h5.py in the documented layouts (their own stages are
tested elsewhere); the Snakefile here includes only common.smk and this area's rule files.
"""

import csv
import json

import pytest
import yaml
from conftest import Workflow
from fixtures_h5 import write_render_h5, write_task_h5

pytestmark = pytest.mark.workflow


@pytest.fixture
def wd(workflow: Workflow) -> Workflow:
    (workflow.root / "Snakefile").write_text(
        'configfile: "config.yaml"\n'
        'include: "rules/common.smk"\n'
        'include: "rules/pretrain.smk"\n'
        'include: "rules/reward.smk"\n'
        'include: "rules/evaluate.smk"\n'
        "rule all:\n    input: FINAL_TARGETS\n    default_target: True\n")
    workflow.write_config({
        "seed": 0, "device": "cpu",
        "tasks": {"items": {"digits8": {"source": "digits8"}, "faces": {"source": "faces", "seen": False}}},
        "render": {"vary_bits": [7], "image_size": 32},
        "pretrain": {"model": "t2s_resnet18_w8", "epochs": 1, "warmup_epochs": 0, "batch_size": 32},
        "evaluate": {"methods": ["linear", "scratch"], "sources": ["00000001"],
                     "linear": {"epochs": 5, "lrs": [0.1]}, "scratch": {"epochs": 1, "lrs": [0.01]}},
    })
    root = workflow.root
    for i, bits in enumerate(("00000000", "00000001")):
        write_render_h5(root / f"results/renders/{bits}/images.h5", n_classes=6, per_class=8, size=32,
                        seed=i, bits=bits)
    for i, task in enumerate(("digits8", "faces")):
        write_task_h5(root / f"results/tasks/{task}/data.h5", n_classes=3, n_train=30, n_test=15, size=28,
                      seed=10 + i, task=task)
    return workflow


def test_dry_run_plans_every_job(wd):
    r = wd.run("-n", "--quiet", "rules")
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    for rule, n in (("pretrain_backbone", 2), ("reward_knn5", 2), ("reward_table", 1),
                    ("evaluate_downstream", 4)):
        assert any(line.split()[:2] == [rule, str(n)] for line in text.splitlines()), text


@pytest.mark.slow
def test_real_run_writes_table_heatmap_and_evaluations(wd, monkeypatch, capsys):
    r = wd.run("--cores", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    with open(wd.root / "results/rewards/table.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert {(r["task"], r["bits"]) for r in rows} == {(t, b) for t in ("digits8", "faces")
                                                       for b in ("00000000", "00000001")}
    assert all(0 <= float(r["knn5"]) <= 100 for r in rows)
    assert (wd.root / "results/rewards/table.png").stat().st_size > 1000
    rec = json.loads((wd.root / "results/rewards/00000001/faces.json").read_text())
    assert rec["k"] == 5 and rec["n_train"] == 30 and rec["n_test"] == 15
    for method, source in (("linear", "00000001"), ("scratch", "none")):
        ev = json.loads((wd.root / f"results/evaluate/{method}/{source}/digits8.json").read_text())
        assert ev["method"] == method and 0 <= ev["test_top1"] <= 100
    assert (wd.root / "logs/pretrain/00000000/model.log").is_file()
    # the records chain from the table back to every task file and backbone (the fixture renders
    # were not written by a stage, so the walk ends there)
    from task2sim.provenance import lineage

    monkeypatch.chdir(wd.root)
    stages = {}
    for rec in lineage("results/rewards/table.tsv"):
        stages.setdefault(rec["stage"], set()).update(rec["inputs"])
    assert {"reward_table", "reward", "pretrain"} <= set(stages)
    assert {f"results/tasks/{t}/data.h5" for t in ("digits8", "faces")} <= stages["reward"]
    assert {f"results/renders/{b}/images.h5" for b in ("00000000", "00000001")} <= stages["pretrain"]
    assert (wd.root / "benchmarks/rewards/00000000/knn5.tsv").is_file()
    # nothing left to do on a second call
    r2 = wd.run("-n")
    assert "Nothing to be done" in r2.stdout + r2.stderr
    # keys that never change a result (x-runtime in the schema) rerun nothing
    cfg = yaml.safe_load((wd.root / "config.yaml").read_text())
    runtime_only = {**cfg, "pretrain": {**cfg["pretrain"], "in_memory": False, "num_workers": 1},
                    "reward": {"batch_size": 7}}
    wd.write_config(runtime_only)
    r_rt = wd.run("-n")
    assert "Nothing to be done" in r_rt.stdout + r_rt.stderr, r_rt.stdout
    wd.write_config(cfg)
    # a new temperature reruns the rewards from the feature cache, not the network
    cache = wd.root / "results/features/00000001/faces.npz"
    before = cache.stat().st_mtime_ns
    cfg = yaml.safe_load((wd.root / "config.yaml").read_text())
    cfg["reward"] = {"temperature": 0.5}
    (wd.root / "config.yaml").write_text(yaml.safe_dump(cfg))
    r3 = wd.run("--cores", "2", "--until", "reward_table")
    assert r3.returncode == 0, r3.stderr[-3000:]
    assert cache.stat().st_mtime_ns == before
    assert json.loads((wd.root / "results/rewards/00000001/faces.json").read_text())["temperature"] == 0.5
    # (last: it alters a task file) the trace CLI prints the chain, and --check flags an input
    # changed since its record
    from task2sim.cli import trace

    assert trace.main(["results/rewards/table.tsv", "--check"]) == 0
    with open("results/tasks/faces/data.h5", "ab") as f:
        f.write(b"\0")
    capsys.readouterr()
    assert trace.main(["results/rewards/table.tsv", "--check"]) == 1
    out = capsys.readouterr().out
    assert "results/tasks/faces/data.h5: changed since" in out and "digits8/data.h5: changed" not in out
