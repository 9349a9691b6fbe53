"""The whole workflow as Snakemake sees it: lint-clean, the default DAG, and the profiles."""

from __future__ import annotations

import json
import re

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


def test_study_target_runs_the_table_and_the_comparison_on_seeds(workflow):
    """`snakemake --configfile study.yaml study`: the whole table at seeds 1 and 2 (the noise stage's
    rules, every configuration), every comparison backbone at seeds 3-5, none scored at seed 0; without
    study.yaml the target says what it needs in one line."""
    res = workflow.run("-n", "study")
    assert res.returncode != 0
    assert "study: needs at least 3 seeds of the reward table (this config has 1) and 3 final.seeds (has 0)" in (
        res.stdout + res.stderr)
    res = workflow.run("-n", "study", "--configfile", "study.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    counts = job_counts(res.stdout)
    # 16 configurations at seeds 1, 2 (the table) and 3, 4, 5 (the comparison)
    assert counts["noise_render"] == counts["noise_pretrain"] == counts["noise_knn5"] == 16 * 5
    # the comparison is scored on seeds 3-5 only: 16 reward-budget backbones and 2 references each
    assert counts["final_seed_score"] == 3 * (16 + 2) and "final_score" not in counts
    assert "--table-repeats results/noise/1/rewards results/noise/2/rewards --repeats  --" in res.stdout
    # a seed of the comparison may not be one that fitted or chose anything
    cfg = yaml.safe_load((workflow.root / "study.yaml").read_text())
    cfg["final"]["seeds"] = [2, 3, 4]
    (workflow.root / "bad.yaml").write_text(yaml.safe_dump(cfg))
    res = workflow.run("-n", "study", "--configfile", "bad.yaml")
    assert res.returncode != 0
    assert "invalid configuration: final.seeds: 2 is a seed of the run, reward.seeds or noise.seeds" in (
        res.stdout + res.stderr)


def test_finetune_at_the_final_budget_only_leaves_the_reward_budget_scores_without_it(workflow):
    """final.finetune_at: [final] (the paper's fine-tune column at a fraction of the cost): the 2^M
    reward-budget scoring jobs run 5-NN and the linear probe only, while Scratch is still
    fine-tuned (the paper's end-to-end Scratch). The key is no scoring job's parameter, and each
    job gets only the evaluate sections it runs (a change to Scratch's grid reruns Scratch alone)."""
    (workflow.root / "ft.yaml").write_text(yaml.safe_dump(
        {"final": {"evaluations": ["knn5", "linear", "finetune"], "finetune_at": ["final"]}}))
    res = workflow.run("-n", "-p", "--configfile", "ft.yaml", "--", "results/final/scores/reward/00000000.tsv",
                       "results/final/scores/ref/scratch.tsv")
    assert res.returncode == 0, res.stdout + res.stderr
    commands = {m[1]: m[0] for m in re.finditer(r"python -m task2sim\.cli\.final score --source (\S+).*$",
                                                   res.stdout, re.M)}
    assert set(commands) == {"00000000", "scratch"}, res.stdout
    assert '"evaluations": ["knn5", "linear"]' in commands["00000000"]
    assert '"evaluations": ["knn5", "linear", "finetune"]' in commands["scratch"]
    assert not any("finetune_at" in c for c in commands.values())
    sections = {s: set(json.loads(re.search(r"--evaluate '([^']*)'", c)[1])) for s, c in commands.items()}
    assert sections == {"00000000": {"val_fraction", "linear"}, "scratch": {"val_fraction", "linear", "scratch"}}


def test_study_with_finetune_compares_at_both_budgets_and_fine_tunes_at_the_final_one(workflow):
    """study_finetune.yaml over study.yaml: the study's table and comparison (every reward-budget
    configuration again at seeds 3-5, scored by 5-NN and linear probe only); at each of those
    seeds Scratch is fine-tuned and the ImageNet reference probed. (The final budget's scoring
    jobs, which fine-tune, come after the final_choose checkpoint, out of a dry run's sight:
    docs/study.md has the tiny run.)"""
    res = workflow.run("-n", "-p", "study", "--configfile", "study.yaml", "study_finetune.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    counts = job_counts(res.stdout)
    assert counts["noise_render"] == counts["noise_pretrain"] == counts["noise_knn5"] == 16 * 5
    assert counts["final_seed_score"] == 3 * (16 + 2) and "final_score" not in counts
    scores = re.findall(r"python -m task2sim\.cli\.final score --source (\S+).*$", res.stdout, re.M)
    commands = re.findall(r"python -m task2sim\.cli\.final score .*$", res.stdout, re.M)
    scratch = [c for s, c in zip(scores, commands) if s == "scratch"]
    reward = [c for s, c in zip(scores, commands) if re.fullmatch(r"[01]{8}", s)]
    assert len(scratch) == 3 and all('"evaluations": ["knn5", "linear", "finetune"]' in c for c in scratch)
    assert len(reward) == 48 and all('"evaluations": ["knn5", "linear"]' in c for c in reward)


def test_finetune_recipe_scores_the_grid_on_seen_tasks_at_the_runs_seed_only(workflow):
    """The named target finetune_recipe: evaluate.recipe's grid for the all-off reward-budget
    backbone and for Scratch, at the run's seed (never one of final.seeds), on the recipe's seen
    tasks, by the scoring job's own command; an unseen task there is refused in one line. The
    study's fixed recipes are points of that grid."""
    res = workflow.run("-n", "-p", "--configfile", "study.yaml", "study_finetune.yaml", "--", "finetune_recipe")
    assert res.returncode == 0, res.stdout + res.stderr
    counts = job_counts(res.stdout)
    assert counts["recipe_score"] == 2 and counts["finetune_recipe"] == 1
    assert "final_seed_score" not in counts and "noise_pretrain" not in counts
    cfg = yaml.safe_load((workflow.root / "study_finetune.yaml").read_text())["evaluate"]
    tasks = cfg["recipe"]["tasks"]
    commands = {m[1]: m[0] for m in re.finditer(r"python -m task2sim\.cli\.final score --source (\S+).*$",
                                                   res.stdout, re.M)}
    assert set(commands) == {"00000000", "scratch"}
    grid = {"epochs": [15, 30, 60], "lrs": [0.1, 0.3], "weight_decays": [0.0001], "batch_sizes": [64]}
    for source, section in (("00000000", "finetune"), ("scratch", "scratch")):
        c = commands[source]
        assert f"--task {' '.join(tasks)} --task-h5" in c and "--seed 0 " in c
        assert re.findall(r"results/tasks/(\w+)/data\.h5", c) == tasks
        assert json.loads(re.search(r"--evaluate '([^']*)'", c)[1]) == {section: grid, "val_fraction": 0.3}
        assert '"evaluations": ["finetune"]' in c and "--features" not in c
        fixed = cfg[section]
        assert fixed["epochs"] in grid["epochs"] and set(fixed["lrs"]) <= set(grid["lrs"])
    assert "--model results/pretrain/00000000/model.pt" in commands["00000000"]
    unseen = {"evaluate": {"recipe": {"tasks": ["digits8", "kanji"]}}}
    (workflow.root / "unseen.yaml").write_text(yaml.safe_dump(unseen))
    res = workflow.run("-n", "--configfile", "unseen.yaml", "--", "finetune_recipe")
    assert res.returncode != 0
    assert "invalid configuration: evaluate.recipe.tasks: 'kanji' is not a seen task of this run" in (
        res.stdout + res.stderr)
    # checked only when the target is asked for: a config without those tasks runs everything else
    res = workflow.run("-n", "--configfile", "unseen.yaml", "--", "results/final/scores/reward/00000000.tsv")
    assert res.returncode == 0, res.stdout + res.stderr
    one = {"evaluate": {"recipe": {"grid": {"epochs": 5, "lrs": [0.1]}}}}
    (workflow.root / "one.yaml").write_text(yaml.safe_dump(one))
    res = workflow.run("-n", "--configfile", "one.yaml", "--", "finetune_recipe")
    assert res.returncode != 0 and "evaluate.recipe.grid: one point, nothing to choose" in res.stdout + res.stderr


SNAKEMAKE_LOG = """\
[Sat Dec  5 15:00:00 2026]
localrule render_dataset:
    output: results/renders/00000000/images.h5
    jobid: 3
    wildcards: bits=00000000
    threads: 2
Shell command: python -m task2sim.cli.render ...
[Sat Dec  5 15:00:10 2026]
Finished jobid: 3 (Rule: render_dataset)
[Sat Dec  5 15:00:10 2026]
localrule policy_train:
    jobid: 7
Shell command: python -m task2sim.cli.policy ...
[Sat Dec  5 15:00:10 2026]
localcheckpoint final_choose:
    jobid: 8
[Sat Dec  5 15:00:12 2026]
checkpoint final_choose:
    jobid: 9
[Sat Dec  5 15:00:13 2026]
Finished jobid: 9 (Rule: final_choose)
[Sat Dec  5 15:01:00 2026]
Finished jobid: 7 (Rule: policy_train)
"""


def test_timeline_places_jobs_on_the_cores_and_finds_the_idle_stretch():
    from task2sim.bench.timeline import parse_log, timeline

    jobs = parse_log(SNAKEMAKE_LOG)
    # a checkpoint block is a job of its own (not more of the job above it); job 8 never finished
    assert [(j["rule"], j["threads"], j["start"], j["end"]) for j in jobs] == [
        ("render_dataset", 2, 0, 10), ("policy_train", 1, 10, 60), ("final_choose", 1, 12, 13)]
    t = timeline(jobs, cores=2, min_gap=30)
    assert t["span_s"] == 60 and t["held_core_s"] == 20 + 50 + 1 and t["idle_core_s"] == 120 - 71
    assert t["core_s_by_rule"] == {"policy_train": 50, "render_dataset": 20, "final_choose": 1}
    # 10-12 s and 13-60 s have a core idle: only the second is long enough to report
    assert [(g["from_s"], g["to_s"], g["idle_core_s"]) for g in t["gaps"]] == [(13, 60, 47)]
    assert t["gaps"][0]["running"] == ["policy_train()"]
