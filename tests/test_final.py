"""The final stage: choices per method, scoring on features, the summary's tables, and the one-shot
path for a user's image folder that never enters the reward table."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from conftest import Workflow
from fixtures_h5 import write_task_h5

from task2sim.backbones.features import load_source
from task2sim.bits import configs_for
from task2sim.final import CONFIG_METHODS, LABELS, FinalError
from task2sim.final.choose import best_fixed_config, choose_configs, picks, random_configs
from task2sim.final.report import method_scores, summary_markdown, summary_rows
from task2sim.final.score import score_backbone
from task2sim.policy.predictors import PREDICTORS

CONFIGS = configs_for([0, 7])  # 00000000 00000001 10000000 10000001


def _table():
    return {"a": {"00000000": 50, "00000001": 60, "10000000": 40, "10000001": 55},
            "b": {"00000000": 70, "00000001": 65, "10000000": 60, "10000001": 80},
            "u": {"00000000": 30, "00000001": 35, "10000000": 20, "10000001": 25}}


def _predictions():
    # predictions.tsv: a seen task's heldout_bits come from the predictor fitted without it (a's
    # differ from the saved predictor's in-sample bits); an unseen task's are its bits
    return [{"task": "a", "split": "seen", "bits": "10000000", "heldout_bits": "00000001"},
            {"task": "b", "split": "seen", "bits": "10000001", "heldout_bits": "10000001"},
            {"task": "u", "split": "unseen", "bits": "00000001", "heldout_bits": "00000001"},
            {"task": "mine", "split": "unseen", "bits": "00000000", "heldout_bits": "00000000"}]


def _measured():
    """Training-split 5-NN (left-one-out) per task: ranks unlike the test-split table's."""
    return {"a": {"00000000": 61, "00000001": 50, "10000000": 62, "10000001": 40},
            "b": {"00000000": 90, "00000001": 65, "10000000": 60, "10000001": 80},
            "u": {"00000000": 30, "00000001": 35, "10000000": 35, "10000001": 25},
            "mine": {"00000000": 1, "00000001": 2, "10000000": 3, "10000001": 4}}


def test_choices_per_method():
    rows = choose_configs(_table(), _predictions(), [0, 7], random_seed=0, measured=_measured())
    pick = {(r["task"], r["method"]): r["bits"] for r in rows}
    # measured selection: each task's best training-split score (first of equals), never the table's
    assert [pick[(t, "measured")] for t in ("a", "b", "u", "mine")] == ["10000000", "00000000", "00000001",
                                                                      "10000001"]
    # Task2Sim's configuration is the held-out one, never the in-sample fit's
    assert pick[("a", "task2sim")] == "00000001" and pick[("mine", "task2sim")] == "00000000"
    assert {pick[(t, "domain_randomisation")] for t in "abu"} == {"10000001"}
    # the paper's DR: every simulation parameter on, whatever the varied bits
    assert {pick[(t, "domain_randomisation_all")] for t in ("a", "b", "u", "mine")} == {"11111111"}
    # the fixed rules fitted on every seen task, for an unseen or new task: best mean over a, b is
    # 10000001 (67.5, against 62.5 for 00000001; u is not used), and so is the best mean z-score
    for rule in ("best_fixed", "best_fixed_z"):
        assert {pick[(t, rule)] for t in ("u", "mine")} == {"10000001"}
        # a seen task's from the other seen tasks (held out): a gets b's best, b gets a's
        assert (pick[("a", rule)], pick[("b", rule)]) == ("10000001", "00000001")
    assert best_fixed_config(_table(), ["u"], CONFIGS) == "00000001"
    # a seen task's own row never reaches its fixed-rule configuration
    planted = _table()
    planted["a"] = {b: 100.0 * (b == "00000000") for b in CONFIGS}
    again = picks(choose_configs(planted, _predictions(), [0, 7], random_seed=0, measured=_measured()))
    assert all(again[("a", r)] == [pick[("a", r)]] for r in ("best_fixed", "best_fixed_z"))
    # a task outside the reward table is "new"; Random's draw depends on the seed only
    assert {r["split"] for r in rows if r["task"] == "mine"} == {"new"}
    assert pick[("a", "random")] == random_configs(CONFIGS, 0, 1)[0]
    draws = {random_configs(CONFIGS, seed, 1)[0] for seed in range(40)}
    assert draws == set(CONFIGS)


def test_random_draws_are_distinct_and_shared_by_every_task_and_all_of_them_give_the_exact_mean():
    rows = choose_configs(_table(), _predictions(), [0, 7], random_seed=0, measured=_measured(), random_draws=3)
    by = picks(rows)
    for t in ("a", "b", "u", "mine"):
        assert len(by[(t, "random")]) == len(set(by[(t, "random")])) == 3 and set(by[(t, "random")]) <= set(CONFIGS)
        assert by[(t, "random")] == random_configs(CONFIGS, 0, 3)  # the seed alone
        assert len(by[(t, "task2sim")]) == 1
    # one set of draws for every task (each draw is one final-budget pre-training), another per seed
    assert len({tuple(by[(t, "random")]) for t in ("a", "b", "u", "mine")}) == 1
    assert len({tuple(random_configs(CONFIGS, seed, 3)) for seed in range(5)}) > 1
    # Random's score on a task is the mean over its draws, and only where every draw is scored
    scores = {("reward", b, t, "knn5"): v for t, row in _table().items() for b, v in row.items()}
    ms = method_scores(rows, scores, {"reward": "reward"}, ["knn5"])
    for t in "abu":
        expected = np.mean([_table()[t][b] for b in by[(t, "random")]])
        assert ms[("reward", "knn5", "random")][t] == pytest.approx(expected)
    del scores[("reward", by[("a", "random")][1], "a", "knn5")]
    assert "a" not in method_scores(rows, scores, {"reward": "reward"}, ["knn5"])[("reward", "knn5", "random")]
    # as many draws as configurations: all of them, the exact mean of a uniform draw
    every = choose_configs(_table(), _predictions(), [0, 7], random_seed=5, measured=_measured(), random_draws=9)
    assert picks(every)[("u", "random")] == CONFIGS
    scores = {("reward", b, t, "knn5"): v for t, row in _table().items() for b, v in row.items()}
    exact = method_scores(every, scores, {"reward": "reward"}, ["knn5"])[("reward", "knn5", "random")]
    # at a final budget only the methods pre-trained there: Random's draws that happen to be other
    # methods' backbones do not make a partial row
    at_final = {("c4_i9", b, t, "knn5"): v for (_, b, t, _), v in scores.items()}
    ms = method_scores(every, at_final, {"final": "c4_i9"}, ["knn5"], final_methods=["best_fixed"])
    assert ("final", "knn5", "best_fixed") in ms and ("final", "knn5", "random") not in ms
    assert exact == pytest.approx({t: np.mean(list(_table()[t].values())) for t in "abu"})
    # all_configs: at the reward budget Random is the exact mean whatever its draws (a final
    # budget keeps the draws)
    ms = method_scores(rows, scores, {"reward": "reward"}, ["knn5"], all_configs=CONFIGS)
    assert ms[("reward", "knn5", "random")] == pytest.approx(exact)


def test_summary_tables_bold_the_best_and_name_the_losses():
    choices = choose_configs(_table(), _predictions()[:3], [0, 7], random_seed=0, measured=_measured())
    pick = {(r["task"], r["method"]): r["bits"] for r in choices}
    scores = {}
    for t in "abu":
        for m in CONFIG_METHODS:
            if pick[(t, m)] in _table()[t]:  # all 8 bits on: no reward-budget backbone
                scores[("reward", pick[(t, m)], t, "linear")] = _table()[t][pick[(t, m)]]
        scores[("ref", "scratch", t, "linear")] = 10.0
        scores[("ref", "imagenet", t, "linear")] = 99.0
    ms = method_scores(choices, scores, {"reward": "reward"}, ["linear"])
    splits = {"a": "seen", "b": "seen", "u": "unseen"}
    rows = summary_rows({"0": ms}, splits)
    by = {(r["method"]): r for r in rows}
    assert by["task2sim"]["seen_mean"] == "70.00" and by["task2sim"]["unseen_mean"] == "35.00"
    info = {"n_seen": 2, "n_unseen": 1, "predictor": "ensemble", "random_seed": 0, "random_draws": 1, "n_configs": 4,
            "random_exact": " out of 4", "seed": 0, "seeds": ["0"], "dr_bits": "10000001",
            "fixed_bits": {"best_fixed": "10000001", "best_fixed_z": "10000001"}, "imagenet_size": 64, "model": "m",
            "budget_titles": {"reward": "reward budget"}}
    md = summary_markdown(rows, {"reward": "reward"}, ["linear"], choices, info)
    assert "| Task2Sim | **70.00** | **35.00** |" in md  # the ImageNet reference (99) is not ranked
    assert LABELS["imagenet"] in md and "different architecture" in md
    # on the seen tasks domain randomisation gives 67.5, best fixed (held out: a 55, b 65) 60 < 70: no loss there
    assert f"seen tasks: {LABELS['domain_randomisation']} beats" not in md
    assert "- Nowhere: Task2Sim's average is at least as high" in md  # nor on the unseen task (35 vs 25)
    assert f"\n| {LABELS['domain_randomisation_all']} |" not in md  # no row: not at the reward budget
    # paired margins: two seen tasks give an interval, the single unseen task does not
    from task2sim.final.report import margin_rows

    info["margins"] = margin_rows({"0": ms}, splits)
    md = summary_markdown(rows, {"reward": "reward"}, ["linear"], choices, info)
    assert "## Paired margins, with 95 % intervals" in md
    assert "| reward | linear | seen | Task2Sim - Best single config (seen) | +10.00 [" in md
    assert "| reward | linear | unseen | Task2Sim - Random | " in md and "no interval (one task)" in md
    # and against Scratch: does synthetic pre-training pay at all (a + 60.00 margin here)
    assert f"| reward | linear | seen | Task2Sim - {LABELS['scratch']} | +60.00 [" in md
    # a column where one row alone is scored (Scratch's fine-tune beside n/a) has no best to bold
    from task2sim.final.report import _bold_best

    assert _bold_best({"scratch": "10.00", "task2sim": "", "imagenet": "99.00"}, ["scratch", "task2sim"]) == {
        "scratch": "10.00", "task2sim": "", "imagenet": "99.00"}


def test_finetune_is_scored_where_finetune_at_names_the_budget():
    from task2sim.final import budget_evaluations

    evs = ["knn5", "linear", "finetune"]
    assert budget_evaluations(evs, ["reward", "final"], "reward") == evs
    assert budget_evaluations(evs, ["final"], "reward") == ["knn5", "linear"]
    assert budget_evaluations(evs, ["final"], "c32_i180") == evs
    assert budget_evaluations(evs, ["reward"], "c32_i60") == ["knn5", "linear"]  # a scaling budget is "final"
    # Scratch (budget "ref") is the paper's end-to-end Scratch wherever fine-tuning runs at all
    assert budget_evaluations(evs, [], "ref") == evs
    assert budget_evaluations(["knn5"], ["reward", "final"], "reward") == ["knn5"]


def test_margin_intervals_cover_a_planted_difference():
    """The summary's paired margins on synthetic scores, 12 seen and 6 unseen tasks: Task2Sim = best
    single config + 2 points, Random = best single config, measured selection = best single config
    (planted 0), each with task noise (sd 3). Over 400 draws each 95 % interval covers its planted
    difference about 95 % of the time, and the null margin is called ahead or behind about 5 %."""
    from task2sim.final.report import margin_rows

    rng = np.random.default_rng(0)
    splits = {f"s{i}": "seen" for i in range(12)} | {f"u{i}": "unseen" for i in range(6)}
    planted = {("task2sim", "best_fixed"): 2.0, ("task2sim", "random"): 2.0, ("measured", "best_fixed"): 0.0,
               ("measured", "random"): 0.0}
    covered = dict.fromkeys(((sp, *k) for sp in ("seen", "unseen") for k in planted), 0)
    false_calls, draws = 0, 400
    for _ in range(draws):
        base = {t: float(rng.normal(50, 10)) for t in splits}
        shift = {"best_fixed": 0.0, "random": 0.0, "task2sim": 2.0, "measured": 0.0}
        ms = {("reward", "linear", m): {t: v + d + float(rng.normal(0, 3)) for t, v in base.items()}
              for m, d in shift.items()}
        rows = {(r["split"], r["method"], r["baseline"]): r for r in margin_rows({"0": ms}, splits)}
        # every pair whose two methods are present (no Domain Randomisation here), n = the split's tasks
        assert set(rows) == set(covered)
        for key, r in rows.items():
            assert r["tasks"] == str(sum(v == key[0] for v in splits.values())) and r["seeds"] == "1"
            covered[key] += float(r["low"]) <= planted[key[1:]] <= float(r["high"])
        false_calls += rows[("seen", "measured", "best_fixed")]["verdict"] != "not shown"
    for key, n in covered.items():
        assert 0.91 <= n / draws <= 0.98, (key, n)
    assert false_calls / draws <= 0.09
    # an incomplete split (a task without a score) gets no margin, not a margin over fewer tasks
    ms[("reward", "linear", "task2sim")].pop("u0")
    assert {(r["split"], r["method"]) for r in margin_rows({"0": ms}, splits) if r["split"] == "unseen"} == {
        ("unseen", "measured")}


def test_seeded_summary_gives_sd_over_seeds_and_margins_that_cover_a_planted_difference():
    """final.seeds: each seed's backbones lift or sink all its tasks together (a shared seed effect,
    sd 2), tasks vary (sd 10) and cells are noisy (sd 1.5). Task2Sim = best single config + 2 on
    every seed. The crossed interval over 3 seeds x 12 tasks covers the planted 2 about 95 % of
    the time; the summary row is the mean over seeds with their sd."""
    from task2sim.final.report import margin_rows

    rng = np.random.default_rng(3)
    splits = {f"s{i}": "seen" for i in range(12)} | {f"u{i}": "unseen" for i in range(4)}
    covered, draws = {"seen": 0, "unseen": 0}, 300
    for _ in range(draws):
        base = {t: float(rng.normal(50, 10)) for t in splits}
        by_seed = {}
        for seed in ("3", "4", "5"):
            lift = {m: float(rng.normal(0, 2)) for m in ("task2sim", "best_fixed")}
            by_seed[seed] = {("final", "linear", m): {t: v + d + lift[m] + float(rng.normal(0, 1.5))
                                                      for t, v in base.items()}
                             for m, d in (("task2sim", 2.0), ("best_fixed", 0.0))}
        rows = {r["split"]: r for r in margin_rows(by_seed, splits, pairs=[("task2sim", "best_fixed")])}
        for split, r in rows.items():
            assert (r["seeds"], r["tasks"]) == ("3", "12" if split == "seen" else "4")
            covered[split] += float(r["low"]) <= 2.0 <= float(r["high"])
    for split, n in covered.items():
        assert 0.9 <= n / draws <= 0.99, (split, n)
    rows = {r["method"]: r for r in summary_rows(by_seed, splits)}
    seen_means = [np.mean([ms[("final", "linear", "task2sim")][t] for t in splits if t[0] == "s"])
                  for ms in by_seed.values()]
    assert rows["task2sim"]["seeds"] == "3"
    assert float(rows["task2sim"]["seen_mean"]) == pytest.approx(np.mean(seen_means), abs=0.006)
    assert float(rows["task2sim"]["seen_sd"]) == pytest.approx(np.std(seen_means, ddof=1), abs=0.006)
    # a task missing on one seed counts on none (the seeds' means stay over the same tasks)
    by_seed["4"][("final", "linear", "task2sim")].pop("s0")
    assert {r["method"]: r for r in summary_rows(by_seed, splits)}["task2sim"]["seen_n"] == "11"


def test_scores_of_the_run_and_of_final_seeds_are_told_apart_and_never_mixed(tmp_path):
    from task2sim.final.score import read_scores_by_seed, score_seed

    assert score_seed("results/final/seeds/4/scores/reward/00000000.tsv") == "4"
    assert score_seed("results/final/scores/reward/00000000.tsv") is None
    rows = "source\ttask\tevaluation\ttop1\n00000000\ta\tknn5\t50.0\n"
    paths = []
    for rel in ("seeds/4/scores/reward/00000000.tsv", "seeds/10/scores/reward/00000000.tsv"):
        (tmp_path / rel).parent.mkdir(parents=True)
        (tmp_path / rel).write_text(rows)
        paths.append(tmp_path / rel)
    assert list(read_scores_by_seed(paths)) == ["4", "10"]  # numeric order
    (tmp_path / "scores/reward").mkdir(parents=True)
    (tmp_path / "scores/reward/00000000.tsv").write_text(rows)
    with pytest.raises(FinalError, match="mixed"):
        read_scores_by_seed([*paths, tmp_path / "scores/reward/00000000.tsv"])


def test_score_backbone_knn_and_linear_on_features(tmp_path, one_torch_thread):
    h5 = write_task_h5(tmp_path / "t.h5", n_classes=3, n_train=30, n_test=12, size=16, seed=1, task="t")
    bb = load_source("scratch", None, "t2s_resnet18_w8", 32, seed=0)
    from task2sim.config import config_from_dict
    from task2sim.train.evaluate import EvalConfig

    lin = config_from_dict(EvalConfig, {"epochs": 3, "lrs": [0.01, 0.1], "val_fraction": 0.3}, "evaluate.linear",
                           method="linear", image_size=32, seed=0, device="cpu")
    rows = score_backbone(bb, {"t": str(h5)}, ["knn5", "linear"], {"linear": lin}, 5, 0.07, 0, "cpu")
    assert [r["evaluation"] for r in rows] == ["knn5", "linear"]
    assert all(0 <= r["top1"] <= 100 and r["n_train"] == 30 and r["n_test"] == 12 for r in rows)
    assert set(rows[1]["chosen"]) == {"epochs", "lr", "weight_decay", "batch_size"}
    # the linear row keeps its grid's validation scores (the 5-NN has no grid), and the chosen
    # point is the best of them
    assert "grid" not in rows[0] and [g["lr"] for g in rows[1]["grid"]] == [0.01, 0.1]
    best = max(rows[1]["grid"], key=lambda g: g["val_top1"])
    assert rows[1]["chosen"]["lr"] == best["lr"]


def test_reward_budget_scoring_reads_the_reward_stage_features(tmp_path, one_torch_thread, monkeypatch):
    """A reward-budget backbone's final scores come from the reward stage's feature cache: the
    network does not run, the 5-NN is the reward's, and the numbers equal a fresh extraction's."""
    from fixtures_h5 import write_render_h5

    import task2sim.backbones.features as features
    import task2sim.reward.knn as knn
    from task2sim.config import config_from_dict
    from task2sim.train.evaluate import EvalConfig
    from task2sim.train.pretrain import PretrainConfig, pretrain

    render = write_render_h5(tmp_path / "images.h5", n_classes=4, per_class=8, size=32)
    pcfg = config_from_dict(PretrainConfig, {"model": "t2s_resnet18_w8", "epochs": 1, "batch_size": 16,
                                             "warmup_epochs": 0}, "pretrain", seed=0, device="cpu")
    pretrain(pcfg, render, tmp_path / "pre", progress=False)
    ckpt = str(tmp_path / "pre" / "model.pt")
    h5 = str(write_task_h5(tmp_path / "t.h5", n_classes=3, n_train=30, n_test=12, size=16, seed=1, task="t"))
    cache = tmp_path / "t.npz"
    reward = knn.compute_reward(load_source("00000000", ckpt), h5, k=5, temperature=0.07, cache=cache,
                                device="cpu", progress=False)
    lin = config_from_dict(EvalConfig, {"epochs": 3, "lrs": [0.01, 0.1], "val_fraction": 0.3}, "evaluate.linear",
                           method="linear", image_size=32, seed=0, device="cpu")

    def score(caches):
        bb = load_source("00000000", ckpt)
        return score_backbone(bb, {"t": h5}, ["knn5", "linear"], {"linear": lin}, 5, 0.07, 0, "cpu", caches)

    fresh = score(None)
    with monkeypatch.context() as m:
        m.setattr(features, "extract_features", lambda *a, **k: pytest.fail("the network ran despite the cache"))
        cached = score({"t": str(cache)})
    assert [r["top1"] for r in cached] == [r["top1"] for r in fresh]
    assert cached[0]["top1"] == round(reward["knn5_top1"], 4)
    # a cache of another backbone (here: of another task file) is not read: features are computed
    other = str(write_task_h5(tmp_path / "u.h5", n_classes=3, n_train=30, n_test=12, size=16, seed=2, task="u"))
    mtime = cache.stat().st_mtime_ns
    bb = load_source("00000000", ckpt)
    rows = score_backbone(bb, {"u": other}, ["knn5"], {}, 5, 0.07, 0, "cpu", {"u": str(cache)})
    assert rows[0]["n_train"] == 30 and cache.stat().st_mtime_ns == mtime  # read-only: never rewritten
    with pytest.raises(FinalError, match="pre-trained backbones only"):
        score_backbone(load_source("scratch", None, "t2s_resnet18_w8", 32, seed=0), {"t": h5}, ["knn5"], {}, 5,
                       0.07, 0, "cpu", {"t": str(cache)})


def _image_folder(root, n_classes=3, per_class=12, size=24):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(n_classes):
        d = root / f"class_{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            img = (rng.random((size, size, 3)) * 60 + 60 * c).astype(np.uint8)
            Image.fromarray(img).save(d / f"{i}.png")
    return root


@pytest.mark.workflow
def test_oneshot_folder_gets_backbone_and_evaluation_without_rewards(workflow: Workflow, tmp_path):
    folder = _image_folder(tmp_path / "my_images")
    cfg = yaml.safe_load((workflow.root / "config.yaml").read_text())
    n_tasks = len(cfg["tasks"]["items"]) + 1
    cfg["tasks"]["items"]["mine"] = {"source": "imagefolder", "path": str(folder), "seen": False, "reward": False,
                                     "image_size": 32}
    workflow.write_config(cfg)
    res = workflow.run("-n")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    counts = Workflow.job_counts(out)
    # every task is prepared and embedded, the folder too; the 16 reward jobs score the others only
    assert counts["reward_knn5"] == 16 and counts["tasks_prepare"] == n_tasks and counts["task2vec_embed"] == n_tasks
    # no reward job scores the folder: no reward JSON or feature file of it anywhere in the plan
    assert "rewards/00000000/mine.json" not in out and "features/00000000/mine.npz" not in out
    assert "results/rewards/00000000/digits8.json" in out
    # its one-shot jobs are planned: the prediction from the saved policy, then the backbone and
    # evaluation under results/final/mine/; the policy is fitted on the reward table's tasks only
    assert counts["final_select"] == 1 and counts["final_oneshot"] == 1 and counts["final_choose"] == 1
    assert "results/final/mine/model.pt" in out and "results/final/mine/evaluation.json" in out
    assert "results/task2vec/mine.npz" not in re.search(r"--task2vec ([^-]*)--", out)[1]
    # reward: false needs seen: false
    cfg["tasks"]["items"]["mine"]["seen"] = True
    workflow.write_config(cfg)
    res = workflow.run("-n")
    assert res.returncode != 0 and "tasks.items.mine: reward: false needs seen: false" in res.stdout + res.stderr


def test_oneshot_cli_predicts_from_the_saved_policy_then_writes_backbone_and_evaluation(tmp_path,
                                                                                         one_torch_thread):
    """The one-shot jobs by themselves (tests/test_final_oneshot_workflow.py runs them in the workflow)."""
    import torch

    from task2sim.cli import final
    from task2sim.policy.data import ConfigSpace, l2_normalise
    from task2sim.policy.predictors import make_predictor
    from task2sim.policy.stage import save_policy
    from task2sim.backbones.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from task2sim.backbones.models import backbone_cfg, create_backbone, save_backbone

    h5 = write_task_h5(tmp_path / "mine.h5", n_classes=3, n_train=24, n_test=9, size=16, seed=2, task="mine")
    ckpt = tmp_path / "budget" / "model.pt"
    ckpt.parent.mkdir()
    save_backbone(ckpt, create_backbone("t2s_resnet18_w8", num_classes=5), "t2s_resnet18_w8", 32, IMAGENET_MEAN,
                  IMAGENET_STD)
    # a similarity policy fitted on four seen tasks: a and b (alike) do best with 10000001, c and d
    # with 00000000; the new task's Task2Vec is close to a and b
    space = ConfigSpace((0, 7))
    emb = l2_normalise(np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.1, 0.9, 0.0]]))
    rewards = np.array([[50.0, 50, 50, 60], [50, 50, 50, 60], [60, 50, 50, 50], [60, 50, 50, 50]])
    fitted = make_predictor("similarity").fit(emb, rewards, space)
    save_policy(tmp_path / "policy.pt", fitted, {"predictor": "similarity", "vary_bits": [0, 7], "dim": 3,
                                                 "bit_names": space.bit_names, "seen": list("abcd")})
    np.savez(tmp_path / "mine.npz", embedding=np.array([2.0, 0.1, 0.0]))
    pred = tmp_path / "final" / "mine" / "prediction.json"
    rc = final.main(["predict", "--task", "mine", "--policy", str(tmp_path / "policy.pt"), "--task2vec",
                     str(tmp_path / "mine.npz"), "--out", str(pred)])
    assert rc == 0
    p = json.loads(pred.read_text())
    assert p["bits"] == "10000001" and set(p["p_bits"]) == {"rotation", "materials"}
    assert p["p_bits"]["rotation"] > 0.5 and p["predictor"] == "similarity" and p["fitted_on"] == list("abcd")
    assert (pred.parent / "prediction.meta.json").is_file()
    out = pred.parent
    fixed = tmp_path / "fixed" / "model.pt"  # the best single configuration's backbone, its baseline
    fixed.parent.mkdir()
    torch.manual_seed(3)
    save_backbone(fixed, create_backbone("t2s_resnet18_w8", num_classes=5), "t2s_resnet18_w8", 32, IMAGENET_MEAN,
                  IMAGENET_STD, render_bits="00000000")
    args = ["oneshot", "--task", "mine", "--prediction", str(pred), "--model", str(ckpt), "--task-h5", str(h5),
            "--out-dir", str(out), "--config", "{}", "--evaluate", json.dumps({"linear": {"epochs": 2, "lrs": [0.1]}}),
            "--reward", "{}", "--seed", "0", "--device", "cpu", "--no-progress"]
    assert final.main([*args, "--best-fixed-model", str(fixed)]) == 0
    ev = json.loads((out / "evaluation.json").read_text())
    assert set(ev["results"]) == {"knn5", "linear"} and ev["results"]["linear"]["n_test"] == 9
    # beside it on the same split: the best single configuration and the ImageNet reference, and
    # the margins over each
    assert ev["baselines"]["best_fixed"]["bits"] == "00000000"
    assert ev["baselines"]["imagenet"]["model_name"] == "efficientnet_lite0"
    for name, base in ev["baselines"].items():
        assert {e: r["n_test"] for e, r in base["results"].items()} == {"knn5": 9, "linear": 9}
        for e, r in base["results"].items():
            assert ev["margins"][name][e] == pytest.approx(ev["results"][e]["top1"] - r["top1"], abs=1e-3)
    # a baseline that is no rendered configuration's backbone is refused
    assert final.main([*args, "--best-fixed-model", str(ckpt)]) == 2
    info = backbone_cfg(out / "model.pt")
    assert info["task2sim_task"] == "mine" and info["task2sim_bits"] == "10000001"
    assert info["task2sim_p_bits"] == p["p_bits"]
    assert info["architecture"] == "t2s_resnet18_w8" and (out / "model.meta.json").is_file()
    assert info["num_classes"] == 5  # saved whole: scoring drops the classifier only afterwards
    # another task's prediction, or a Task2Vec of another task, is one line naming it
    rc = final.main(["oneshot", "--task", "other", "--prediction", str(pred), "--model", str(ckpt),
                     "--task-h5", str(h5), "--out-dir", str(out), "--config", "{}", "--evaluate", "{}",
                     "--reward", "{}"])
    assert rc == 2
    rc = final.main(["predict", "--task", "other", "--policy", str(tmp_path / "policy.pt"), "--task2vec",
                     str(tmp_path / "mine.npz"), "--out", str(tmp_path / "other.json")])
    assert rc == 2 and not (tmp_path / "other.json").exists()


def test_measure_cli_picks_the_best_training_split_score_without_reading_the_test_split(tmp_path, monkeypatch,
                                                                                        one_torch_thread):
    """final.selection: measure for a new task: every reward-budget backbone scored by 5-NN
    left-one-out on the training split (no dataset of the test split is opened), the best one
    taken, and the one-shot job accepts only the selection in force."""
    import torch

    import task2sim.reward.knn as knn
    from task2sim.cli import final
    from task2sim.backbones.features import extract_features
    from task2sim.reward.knn import knn_loo_accuracy
    from task2sim.backbones.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from task2sim.backbones.images import EvalImages, H5ImageDataset, eval_transform
    from task2sim.backbones.models import backbone_cfg, create_backbone, save_backbone

    h5 = write_task_h5(tmp_path / "mine.h5", n_classes=3, n_train=24, n_test=9, size=16, seed=2, task="mine")
    models = []
    for i, bits in enumerate(("00000000", "00000001")):
        torch.manual_seed(i)
        models.append(tmp_path / bits / "model.pt")
        models[-1].parent.mkdir()
        save_backbone(models[-1], create_backbone("t2s_resnet18_w8", num_classes=5), "t2s_resnet18_w8", 32,
                      IMAGENET_MEAN, IMAGENET_STD, render_bits=bits)
    expected = {}
    for m in models:
        net = load_source("measured", m).model
        f, y = extract_features(net, H5ImageDataset(h5, "train", eval_transform(32)), 64, torch.device("cpu"))
        expected[backbone_cfg(m)["render_bits"]] = knn_loo_accuracy(f, y, k=5, temperature=0.07)
    opened = []

    class Recording(EvalImages):
        def __init__(self, path, split=None, *a, **kw):
            opened.append(split)
            super().__init__(path, split, *a, **kw)

    monkeypatch.setattr(knn, "EvalImages", Recording)
    out = tmp_path / "final" / "mine" / "prediction.json"
    args = ["measure", "--task", "mine", "--task-h5", str(h5), "--models", *map(str, models),
            "--reward", json.dumps({"k": 5, "temperature": 0.07}), "--device", "cpu", "--no-progress"]
    assert final.main([*args, "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["selection"] == "measure" and m["n_train"] == 24 and opened == ["train", "train"]
    assert m["train_loo"] == pytest.approx(expected)
    assert m["bits"] == max(sorted(expected), key=lambda b: expected[b])  # first of equals in config order
    assert (out.parent / "prediction.meta.json").is_file()
    # the one-shot job takes it under final.selection: measure, and refuses it under predict
    common = ["oneshot", "--task", "mine", "--prediction", str(out), "--model", str(models[0]), "--task-h5",
              str(h5), "--out-dir", str(out.parent), "--evaluate", "{}", "--reward", "{}", "--device", "cpu",
              "--no-progress"]
    assert final.main([*common, "--config", "{}"]) == 2
    assert final.main([*common, "--config", json.dumps({"selection": "measure", "evaluations": ["knn5"]})]) == 0
    ev = json.loads((out.parent / "evaluation.json").read_text())
    assert ev["selection"] == "measure" and set(ev["results"]) == {"knn5"}
    assert backbone_cfg(out.parent / "model.pt")["task2sim_selection"] == "measure"
    # one backbone per configuration of the space the backbones span, or one line saying what is wrong
    bad = tmp_path / "bad.json"
    assert final.main([*args[:6], str(models[0]), str(models[0]), *args[8:], "--out", str(bad)]) == 2
    assert final.main([*args[:6], str(models[1]), *args[8:], "--out", str(bad)]) == 2
    third = tmp_path / "10000000.pt"  # with bit 0 varied too, 10000001 is missing
    save_backbone(third, create_backbone("t2s_resnet18_w8", num_classes=5), "t2s_resnet18_w8", 32, IMAGENET_MEAN,
                  IMAGENET_STD, render_bits="10000000")
    assert final.main([*args[:8], str(third), *args[8:], "--out", str(bad)]) == 2
    assert not bad.exists()


def test_scaling_rows_and_figure(tmp_path):
    from task2sim.final.report import plot_scaling, scaling_rows

    choices = choose_configs(_table(), _predictions()[:3], [0, 7], random_seed=0, measured=_measured())
    pick = {(r["task"], r["method"]): r["bits"] for r in choices}
    scores = {}
    for i, b in enumerate(("c4_i10", "c4_i20", "c4_i40")):
        for t in "ab":
            scores[(b, pick[(t, "task2sim")], t, "linear")] = 50.0 + 5 * i
            scores[(b, pick[(t, "domain_randomisation")], t, "linear")] = 48.0 + 4 * i
    rows = scaling_rows(choices, scores, ["c4_i10", "c4_i20", "c4_i40"])
    by = {(r["budget"], r["method"]): r for r in rows}
    # task b: Task2Sim and DR pick the same configuration 10000001, so its score is shared
    assert by[("c4_i10", "task2sim")]["images"] == "40" and by[("c4_i10", "task2sim")]["n_tasks"] == "2"
    assert by[("c4_i40", "domain_randomisation")]["seen_mean"] == "56.00"
    assert by[("c4_i40", "task2sim")]["seen_mean"] == "58.00"
    png = plot_scaling(rows, tmp_path / "scaling.png", "t")
    assert png.stat().st_size > 5000


@pytest.mark.parametrize("name", [n for n in PREDICTORS if n not in ("random", "oracle")])
def test_saved_policy_predicts_new_tasks_like_the_fitted_predictor(name, tmp_path, one_torch_thread):
    """The one-shot path predicts from policy.pt without fitting again: every predictor the config
    may name, restored from its saved state, gives the fitted one's configurations and P(bit=1)."""
    from task2sim.policy.controller import ControllerSettings
    from task2sim.policy.data import ConfigSpace, l2_normalise
    from task2sim.policy.predictors import PredictorOptions, make_predictor
    from task2sim.policy.stage import load_policy, predict_tasks, save_policy

    rng = np.random.default_rng(3)
    space = ConfigSpace((0, 5, 7))
    seen = rng.normal(size=(4, 10))
    rewards = rng.normal(50, 10, size=(4, 8))
    options = PredictorOptions(controller=ControllerSettings(epochs=3, hidden=8))
    fitted = make_predictor(name, options).fit(l2_normalise(seen), rewards, space, seed=0)
    info = {"predictor": name, "vary_bits": list(space.vary_bits), "bit_names": space.bit_names, "dim": 10}
    save_policy(tmp_path / "policy.pt", fitted, info)
    new = {f"new{i}": v for i, v in enumerate(rng.normal(size=(4, 10)) * 3)}
    rows = predict_tasks(load_policy(tmp_path / "policy.pt"), new)
    want = fitted.predict(np.stack([l2_normalise(v) for v in new.values()]))
    assert [r["bits"] for r in rows] == [space.configs[c] for c in want.config]
    assert np.allclose([list(r["p_bits"].values()) for r in rows], want.p_bits, atol=5e-5)
    assert {r["p_kind"] for r in rows} == {want.p_kind} and list(rows[0]["p_bits"]) == space.bit_names
