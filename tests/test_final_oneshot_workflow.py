"""The one-shot path for real (issue 12): a user's own image folder, never seen before, gets a
backbone and an evaluation from the README's copy-paste commands, and no reward work.

It starts from a copy of the session's tiny run (conftest.tiny_run: a finished run, with its
reward table, the Task2Vec of its tasks, the policy and the final comparison); then the README's
block for "Your own images" runs as written (only the folder's path and the core count
substituted) on a folder of drawn shapes made here. The dry-run job list of that command is the
proof that the folder costs no reward_knn5 job and no render of the 2^M configurations: only its
task, its Task2Vec, its prediction and the final-budget backbones that do not exist yet.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, SNAKEMAKE, Workflow, copy_tiny_run

from task2sim.config import section_defaults
from tiny_workflow import tiny_config

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SHAPES = ("disc", "square", "cross")


def _shapes_folder(root, per_class=14, size=28):
    """root/<shape>/<i>.png: a bright disc, square or cross on a dark background, random place,
    size and colours; three classes a backbone can tell apart."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True)
        for i in range(per_class):
            img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 90, 3)))
            draw = ImageDraw.Draw(img)
            cx, cy = (int(v) for v in rng.integers(9, size - 9, 2))
            r = int(rng.integers(5, 9))
            fill = tuple(int(v) for v in rng.integers(150, 256, 3))
            if shape == "disc":
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
            elif shape == "square":
                draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
            else:
                draw.rectangle([cx - r, cy - 2, cx + r, cy + 2], fill=fill)
                draw.rectangle([cx - 2, cy - r, cx + 2, cy + r], fill=fill)
            img.save(root / shape / f"{i}.png")
    return root


def _readme_block() -> tuple[str, str, str]:
    """The README's "Your own images" commands: the heredoc that writes my_config.yaml, the
    snakemake command, and the lines that show the results."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Your own images", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)[1]
    heredoc = re.search(r"^cat >> my_config\.yaml <<'YAML'\n.*?^YAML\n", block, re.S | re.M)[0]
    lines = block[len(heredoc):].strip().splitlines()
    assert lines[0].startswith(".venv/bin/snakemake "), block
    return heredoc, lines[0], "\n".join(lines[1:])


def _bash(wf: Workflow, script: str) -> subprocess.CompletedProcess:
    # The environment of Workflow.run: a bare PATH, so the jobs find their interpreter by themselves.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()), "LANG": "C.UTF-8"}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=wf.root, env=env, capture_output=True,
                          text=True, timeout=3600)


def test_readme_oneshot_on_a_new_folder_trains_and_scores_one_backbone_without_rewards(tiny_run, tmp_path,
                                                                                      monkeypatch):
    # What a finished run has: the reward table, the Task2Vec of its tasks, the policy, the final
    # comparison (the tiny configuration: 2 seen tasks train the predictor, 2 configurations).
    wf = copy_tiny_run(tiny_run, tmp_path / "wf")
    cfg = tiny_config()
    table_tasks = set(cfg["tasks"]["items"])
    seen = [t for t, item in cfg["tasks"]["items"].items() if item["seen"]]
    budget = wf.root / "results/final/budgets/c4_i16/pretrain"
    existed = {p.parent.name for p in budget.glob("*/model.pt")}
    # the comparison's choices name the best single configuration, the folder's baseline
    choose = {"final_choose": 1} if not (wf.root / "results/final/choices.tsv").exists() else {}

    folder = _shapes_folder(tmp_path / "my_images")
    heredoc, command, show = _readme_block()
    assert "/abs/path/to/my_images" in heredoc and "--cores all" in command
    res = _bash(wf, heredoc.replace("/abs/path/to/my_images", str(folder)))
    assert res.returncode == 0, res.stderr
    command = command.replace(".venv/bin/snakemake", str(SNAKEMAKE)).replace("--cores all", "--cores 2")

    # The plan: the folder's task, its Task2Vec, its prediction from the saved policy (no refit)
    # and its one-shot job, whose backbones are known once the checkpoints have run; nothing of the
    # reward stage, no policy fit, no render of the 2^M configurations.
    plan = _bash(wf, command.replace("--cores 2", "--cores 2 -n"))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    counts = Workflow.job_counts(plan.stdout)
    assert counts.pop("total") == sum(counts.values())
    assert counts == {"tasks_prepare": 1, "task2vec_embed": 1, "final_select": 1, "final_oneshot": 1,
                      **choose}, plan.stdout
    assert "results/renders" not in plan.stdout

    res = _bash(wf, f"{command}\n{show}")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    root = wf.root / "results" / "final" / "mydata"
    # the README's `cat`s print the two JSON files
    shown = [json.loads(d) for d in re.split(r"(?<=\})\n(?=\{)", res.stdout.strip())]
    prediction = json.loads((root / "prediction.json").read_text())
    evaluation = json.loads((root / "evaluation.json").read_text())
    assert shown == [prediction, evaluation]
    bits = prediction["bits"]
    # the best single configuration fitted on every seen task (a seen task's own row is held out)
    best = {r["bits"] for r in _tsv(wf.root / "results/final/fixed_rules.tsv") if r["rule"] == "best_fixed"}
    # What ran: the plan plus a render and a pre-training at the final budget (tiny_config's
    # 4 classes x 16 images) of the predicted configuration and of the best single one where the
    # comparison had not made them already (one job each where they agree); no render or
    # pre-training of the 2^M reward backbones.
    n_final = len((best | {bits}) - existed)
    ran = Counter(re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", res.stdout + res.stderr, re.M))
    assert ran == Counter({"tasks_prepare": 1, "task2vec_embed": 1, "final_select": 1, **choose,
                           "final_render": n_final, "final_pretrain": n_final, "final_oneshot": 1}), res.stderr

    # prediction.json: the predicted bits and P(bit=1) of the varied bit (materials)
    assert prediction["task"] == "mydata" and re.fullmatch(r"0{7}[01]", bits)
    assert list(prediction["p_bits"]) == ["materials"]
    assert all(0.0 <= p <= 1.0 for p in prediction["p_bits"].values())
    default = section_defaults("policy")["predictor"]
    assert prediction["predictor"] == default and prediction["fitted_on"] == seen
    # the policy stage's own predictions are the reward table's tasks' (no refit for the folder)
    assert {r["task"] for r in _tsv(wf.root / "results/policy/predictions.tsv")} == table_tasks

    # evaluation.json: 5-NN and linear-probe top-1 on the folder's own test split
    assert set(evaluation["results"]) == {"knn5", "linear"}
    n_images = len(SHAPES) * 14
    for ev in evaluation["results"].values():
        assert 0.0 <= ev["top1"] <= 100.0 and ev["task"] == "mydata"
        assert ev["n_train"] + ev["n_test"] == n_images and ev["n_test"] > 0
    # beside it, on the same split: the best single configuration's backbone at the same budget and
    # the ImageNet reference, with the backbone's margin over each
    assert set(evaluation["baselines"]) == {"best_fixed", "imagenet"}
    assert {evaluation["baselines"]["best_fixed"]["bits"]} == best
    for name, base in evaluation["baselines"].items():
        assert set(base["results"]) == {"knn5", "linear"}
        for ev, r in base["results"].items():
            mine = evaluation["results"][ev]
            assert (r["n_train"], r["n_test"]) == (mine["n_train"], mine["n_test"])
            assert evaluation["margins"][name][ev] == pytest.approx(mine["top1"] - r["top1"], abs=1e-3)
    if best == {bits}:  # the same backbone on the same split: the same numbers
        assert all(v == 0 for v in evaluation["margins"]["best_fixed"].values())

    # model.pt: a backbone that says what it holds, the final-budget backbone of the prediction
    from task2sim.backbones.models import load_backbone

    model, info = load_backbone(root / "model.pt")
    assert info["architecture"] == cfg["pretrain"]["model"] and tuple(info["input_size"]) == (3, 32, 32)
    assert info["task2sim_task"] == "mydata" and info["task2sim_bits"] == bits
    assert info["task2sim_p_bits"] == prediction["p_bits"] and len(info["mean"]) == len(info["std"]) == 3
    source = wf.root / f"results/final/budgets/c4_i16/pretrain/{bits}/model.pt"
    assert info["source_checkpoint"] == str(source.relative_to(wf.root))
    shared, _ = load_backbone(source)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), shared.state_dict().values()))
    with torch.no_grad():
        assert model.eval().forward_features(torch.zeros(1, 3, 32, 32)).shape[1] == info["num_features"]
    import timm

    again = timm.create_model(info["architecture"], num_classes=info["num_classes"], checkpoint_path=str(root /
                                                                                                       "model.pt"))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))

    # provenance: records for the three files, whose lineage reaches the folder's task file
    from task2sim.provenance import lineage, record_of

    monkeypatch.chdir(wf.root)
    rel = root.relative_to(wf.root)
    assert record_of(rel / "model.pt") == record_of(rel / "evaluation.json") == rel / "model.meta.json"
    assert record_of(rel / "prediction.json") == rel / "prediction.meta.json"
    stages = {r["stage"] for r in lineage(rel / "model.pt")}
    assert {"final_oneshot", "final_predict", "pretrain", "render", "policy", "task2vec", "tasks"} <= stages
    tasks_rec = json.loads((wf.root / "results/tasks/mydata/data.meta.json").read_text())
    assert tasks_rec["stage"] == "tasks" and tasks_rec["params"]["path"] == str(folder)

    # no reward for the folder anywhere; the reward table is the two seen tasks'
    assert not list((wf.root / "results/rewards").glob("*/mydata.json"))
    assert {r["task"] for r in _tsv(wf.root / "results/rewards/table.tsv")} == table_tasks
    # done: the same command plans nothing
    again = _bash(wf, command.replace("--cores 2", "--cores 2 -n"))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # final.selection: measure, the README's variant: the same checkpoint reruns as measured selection
    # over the reward-budget backbones the run already has (no render or pre-training of them), then
    # the one-shot job again
    res = _bash(wf, "printf 'final:\\n  selection: measure\\n' >> my_config.yaml")
    assert res.returncode == 0, res.stderr
    plan = _bash(wf, command.replace("--cores 2", "--cores 2 -n"))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    counts = Workflow.job_counts(plan.stdout)
    assert counts.pop("total") == sum(counts.values())
    assert counts == {"final_select": 1, "final_oneshot": 1}, plan.stdout
    res = _bash(wf, command)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    measured = json.loads((root / "prediction.json").read_text())
    scores = measured["train_loo"]
    assert set(scores) == {r["bits"] for r in _tsv(wf.root / "results/rewards/table.tsv")}
    assert measured["bits"] == max(sorted(scores), key=scores.get) and measured["n_train"] < n_images
    evaluation = json.loads((root / "evaluation.json").read_text())
    assert evaluation["selection"] == "measure" and evaluation["bits"] == measured["bits"]
    assert load_backbone(root / "model.pt")[1]["task2sim_selection"] == "measure"
    assert "final_measure" in {r["stage"] for r in lineage(rel / "model.pt")}


def _tsv(path) -> list[dict[str, str]]:
    head, *rows = path.read_text().splitlines()
    return [dict(zip(head.split("\t"), r.split("\t"))) for r in rows]
