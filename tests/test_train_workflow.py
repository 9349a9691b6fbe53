"""The pretrain -> reward -> table -> evaluate rules, run for real by snakemake on fixture inputs.

Renders and tasks come from tests/fixtures_h5.py in the documented layouts (their own stages are
tested elsewhere); the Snakefile here includes only common.smk and this area's rule files.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_h5 import write_render_h5, write_task_h5  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

pytestmark = [pytest.mark.workflow, pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake not installed")]


def _workdir(tmp_path: Path) -> Path:
    wd = tmp_path / "wf"
    wd.mkdir()
    (wd / "Snakefile").write_text(
        f'configfile: "config.yaml"\n'
        f'include: "{ROOT}/rules/common.smk"\n'
        f'include: "{ROOT}/rules/pretrain.smk"\n'
        f'include: "{ROOT}/rules/reward.smk"\n'
        f'include: "{ROOT}/rules/evaluate.smk"\n'
        "rule all:\n    input: FINAL_TARGETS\n    default_target: True\n")
    cfg = {
        "seed": 0, "device": "cpu",
        "tasks": {"items": {"digits8": {"source": "digits8"}, "faces": {"source": "faces", "seen": False}}},
        "render": {"vary_bits": [7], "image_size": 32},
        "pretrain": {"model": "t2s_resnet18_w8", "epochs": 1, "warmup_epochs": 0, "batch_size": 32},
        "evaluate": {"methods": ["linear", "scratch"], "sources": ["00000001"],
                     "linear": {"epochs": 5, "lrs": [0.1]}, "scratch": {"epochs": 1, "lrs": [0.01]}},
    }
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    for i, bits in enumerate(("00000000", "00000001")):
        write_render_h5(wd / f"results/renders/{bits}/images.h5", n_classes=6, per_class=8, size=32,
                        seed=i, bits=bits)
    for i, task in enumerate(("digits8", "faces")):
        write_task_h5(wd / f"results/tasks/{task}/data.h5", n_classes=3, n_train=30, n_test=15, size=28,
                      seed=10 + i, task=task)
    return wd


def _snakemake(wd: Path, *args: str) -> subprocess.CompletedProcess:
    env_path = f"{Path(sys.executable).parent}:{__import__('os').environ.get('PATH', '')}"
    return subprocess.run([str(SNAKEMAKE), "--cores", "2", "--directory", str(wd), *args], cwd=wd,
                          capture_output=True, text=True, env={**__import__("os").environ, "PATH": env_path},
                          timeout=600)


def test_dry_run_plans_every_job(tmp_path):
    wd = _workdir(tmp_path)
    r = _snakemake(wd, "-n", "--quiet", "rules")
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    for rule, n in (("pretrain_backbone", 2), ("reward_knn5", 2), ("reward_table", 1),
                    ("evaluate_downstream", 4)):
        assert any(line.split()[:2] == [rule, str(n)] for line in text.splitlines()), text


@pytest.mark.slow
def test_real_run_writes_table_heatmap_and_evaluations(tmp_path):
    wd = _workdir(tmp_path)
    r = _snakemake(wd)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(wd / "results/rewards/table.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert {(r["task"], r["bits"]) for r in rows} == {(t, b) for t in ("digits8", "faces")
                                                       for b in ("00000000", "00000001")}
    assert all(0 <= float(r["knn5"]) <= 100 for r in rows)
    assert (wd / "results/rewards/table.png").stat().st_size > 1000
    rec = json.loads((wd / "results/rewards/00000001/faces.json").read_text())
    assert rec["k"] == 5 and rec["n_train"] == 30 and rec["n_test"] == 15
    for method, source in (("linear", "00000001"), ("scratch", "none")):
        ev = json.loads((wd / f"results/evaluate/{method}/{source}/digits8.json").read_text())
        assert ev["method"] == method and 0 <= ev["test_top1"] <= 100
    assert (wd / "logs/pretrain/00000000/model.log").is_file()
    assert (wd / "benchmarks/rewards/00000000/knn5.tsv").is_file()
    # nothing left to do on a second call
    r2 = _snakemake(wd, "-n")
    assert "Nothing to be done" in r2.stdout + r2.stderr
    # a new temperature reruns the rewards from the feature cache, not the network
    cache = wd / "results/features/00000001/faces.npz"
    before = cache.stat().st_mtime_ns
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["reward"] = {"temperature": 0.5}
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    r3 = _snakemake(wd, "--until", "reward_table")
    assert r3.returncode == 0, r3.stderr[-3000:]
    assert cache.stat().st_mtime_ns == before
    assert json.loads((wd / "results/rewards/00000001/faces.json").read_text())["temperature"] == 0.5
