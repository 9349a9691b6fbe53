"""The whole workflow as Snakemake sees it: lint-clean, the default DAG, and the profiles."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(SNAKEMAKE), *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    if not SNAKEMAKE.exists():
        pytest.skip("snakemake is not installed in this environment")
    for name in ("Snakefile", "config.yaml", "rules", "schemas", "envs", "profiles", "docs"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


def job_counts(out: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}


def test_lint_is_clean(workflow):
    res = snakemake(workflow, "--lint")
    assert res.returncode == 0, res.stdout + res.stderr


def test_default_dag_covers_every_config_and_task(workflow):
    res = snakemake(workflow, "-n")
    assert res.returncode == 0, res.stdout + res.stderr
    counts = job_counts(res.stdout)
    # config.yaml: 9 tasks, 4 varied bits -> 16 configurations
    assert counts["tasks_prepare"] == 9
    assert counts["render_dataset"] == counts["pretrain_backbone"] == counts["reward_knn5"] == 16
    assert counts["reward_table"] == counts["render_variations"] == 1
    assert counts["task2vec_embed"] == 9 and counts["task2vec_distances"] == 1


def test_paper_profile_is_the_same_workflow_at_paper_scale(workflow):
    res = snakemake(workflow, "-n", "--workflow-profile", "profiles/paper")
    assert res.returncode == 0, res.stdout + res.stderr
    counts = job_counts(res.stdout)
    assert counts["render_dataset"] == counts["pretrain_backbone"] == 256


def test_slurm_profile_parses(workflow):
    res = snakemake(workflow, "-n", "--profile", "profiles/slurm")
    assert res.returncode == 0, res.stdout + res.stderr
    assert job_counts(res.stdout)["pretrain_backbone"] == 16


def test_typo_in_config_is_one_line_naming_the_key(workflow):
    cfg = workflow / "config.yaml"
    cfg.write_text(cfg.read_text().replace("images_per_class:", "imges_per_class:"))
    res = snakemake(workflow, "-n")
    assert res.returncode != 0
    assert "invalid configuration: render: unknown key 'imges_per_class'" in res.stdout + res.stderr


def test_conda_env_pins_match_requirements():
    import yaml

    env = yaml.safe_load((REPO / "envs" / "task2sim.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    req = [ln.strip() for ln in (REPO / "requirements.txt").read_text().splitlines()
           if ln.strip() and not ln.startswith("#")]
    assert pip == req, "envs/task2sim.yaml is out of date with requirements.txt"
