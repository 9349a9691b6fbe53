"""The whole workflow as Snakemake sees it: lint-clean, the default DAG, and the profiles."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO, Workflow

pytestmark = pytest.mark.workflow
job_counts = Workflow.job_counts


def test_lint_is_clean(workflow):
    res = workflow.run("--lint")
    assert res.returncode == 0, res.stdout + res.stderr


def test_default_dag_covers_every_config_and_task(workflow):
    res = workflow.run("-n")
    assert res.returncode == 0, res.stdout + res.stderr
    counts = job_counts(res.stdout)
    # config.yaml: 16 tasks, 4 varied bits -> 16 configurations
    assert counts["tasks_prepare"] == 16
    assert counts["render_dataset"] == counts["pretrain_backbone"] == counts["reward_knn5"] == 16
    assert counts["reward_table"] == counts["render_variations"] == counts["reward_noise"] == 1
    # the noise stage: 4 configurations again at 2 other seeds (8 degrees of freedom)
    assert counts["noise_render"] == counts["noise_pretrain"] == counts["noise_knn5"] == 8
    assert counts["task2vec_embed"] == 16 and counts["task2vec_distances"] == 1
    # every reward-budget backbone and the two references are scored from the start, not after the
    # final_choose checkpoint: those jobs run while the policy trains (the final budget's wait)
    assert counts["final_score"] == 16 + 2


def test_paper_profile_is_the_same_workflow_at_paper_scale(workflow):
    res = workflow.run("-n", "--workflow-profile", "profiles/paper")
    assert res.returncode == 0, res.stdout + res.stderr
    counts = job_counts(res.stdout)
    assert counts["render_dataset"] == counts["pretrain_backbone"] == 256


def test_slurm_profile_parses(workflow):
    res = workflow.run("-n", "--workflow-profile", "profiles/slurm")
    assert res.returncode == 0, res.stdout + res.stderr
    assert job_counts(res.stdout)["pretrain_backbone"] == 16
    # the profile's own resources reach the jobs (as a global --profile they would not)
    assert "slurm_partition=" in res.stdout


def test_typo_in_config_is_one_line_naming_the_key(workflow):
    cfg = workflow.root / "config.yaml"
    cfg.write_text(cfg.read_text().replace("images_per_class:", "imges_per_class:"))
    res = workflow.run("-n")
    assert res.returncode != 0
    assert "invalid configuration: render: unknown key 'imges_per_class'" in res.stdout + res.stderr


def test_conda_env_pins_match_requirements():
    env = yaml.safe_load((REPO / "envs" / "task2sim.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    req = [ln.strip() for ln in (REPO / "requirements.txt").read_text().splitlines()
           if ln.strip() and not ln.startswith("#")]
    assert pip == req, "envs/task2sim.yaml is out of date with requirements.txt"


def test_noise_configs_must_belong_to_the_run(workflow):
    cfg = yaml.safe_load((workflow.root / "config.yaml").read_text())
    cfg["noise"] = {"configs": ["01000000"], "seeds": [1]}  # bit 1 is not varied by the default run
    workflow.write_config(cfg)
    res = workflow.run("-n")
    assert res.returncode != 0
    assert "invalid configuration: noise.configs: 01000000 is not one of this run's configurations" in (
        res.stdout + res.stderr)
    cfg["noise"] = {"configs": [], "seeds": [1]}  # off: no noise jobs, nothing else changes
    workflow.write_config(cfg)
    res = workflow.run("-n")
    assert res.returncode == 0 and "noise_render" not in res.stdout
