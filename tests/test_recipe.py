"""The fine-tune recipe (named target finetune_recipe): each row type's grid point of best mean
validation top-1 over seen tasks, read from the scoring jobs' provenance records, written as config."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from conftest import REPO
from fixtures_h5 import write_task_h5

from task2sim.cli import final as final_cli
from task2sim.final import FinalError
from task2sim.final.recipe import choose_recipe, grid_rows, recipe_config, recipe_means

POINTS = [(15, 0.1), (15, 0.3), (30, 0.1), (30, 0.3), (60, 0.1), (60, 0.3)]


def _record(source, vals, seed=0):
    """A score job's provenance record: per task, the validation top-1 of each (epochs, lr) point."""
    rows = [{"task": task, "source": source, "evaluation": "finetune", "top1": 50.0,
             "grid": [{"epochs": e, "lr": lr, "weight_decay": 0.0001, "batch_size": 64, "val_top1": v}
                      for (e, lr), v in zip(POINTS, vs)]}
            for task, vs in vals.items()]
    return {"stage": "final_score", "seeds": {"seed": seed}, "extra": {"rows": rows}}


# means 65, 64.5, 68, 69, 73, 74.5: 60 epochs at lr 0.3
PRE = {"a": [70, 71, 72, 73, 80, 79], "b": [60, 58, 64, 65, 66, 70]}
# 30 epochs at lr 0.1 and 60 at lr 0.1 have the same three scores in another task order, so equal
# means, of which the grid's first wins: summed in task order they would differ in the last bit
# (82.14666666666666 against ...68), and 60 epochs would win on rounding noise
SCRATCH = {"a": [50, 60, 54.78, 64, 97.98, 64], "b": [40, 50, 93.68, 56, 93.68, 62],
           "c": [45, 55, 97.98, 60, 54.78, 63]}


def test_recipe_is_the_best_mean_validation_point_in_grid_order_and_flags_the_grid_edge():
    rows = grid_rows([_record("00000000", PRE), _record("scratch", SCRATCH)])
    assert {r["section"] for r in rows} == {"finetune", "scratch"} and len(rows) == (2 + 3) * 6
    means = recipe_means(rows)
    assert [m["val_top1"] for m in means["finetune"]] == [65, 64.5, 68, 69, 73, 74.5]
    assert [m["n_tasks"] for m in means["finetune"] + means["scratch"]] == [2] * 6 + [3] * 6
    assert sum(SCRATCH[t][2] for t in "abc") / 3 != sum(SCRATCH[t][4] for t in "abc") / 3  # in float
    assert means["scratch"][2]["val_top1"] == means["scratch"][4]["val_top1"]
    pre, scratch = choose_recipe(means["finetune"]), choose_recipe(means["scratch"])
    assert (pre["point"]["epochs"], pre["point"]["lr"], pre["val_top1"]) == (60, 0.3, 74.5)
    assert (scratch["point"]["epochs"], scratch["point"]["lr"]) == (30, 0.1)
    # the longest epochs of the grid won: said, since it is not a measured convergence; of two
    # learning rates either is an end, which says nothing
    assert pre["edges"] == ["epochs 60 is the grid's largest"] and scratch["edges"] == []
    cfg = recipe_config({"finetune": pre, "scratch": scratch})
    assert cfg == {"evaluate": {
        "finetune": {"epochs": 60, "lrs": [0.3], "weight_decays": [0.0001], "batch_sizes": [64]},
        "scratch": {"epochs": 30, "lrs": [0.1], "weight_decays": [0.0001], "batch_sizes": [64]}}}


def test_recipe_refuses_a_one_point_grid_and_points_scored_on_different_tasks():
    one = _record("scratch", {"a": [1, 2, 3, 4, 5, 6]})
    one["extra"]["rows"][0]["grid"] = []
    with pytest.raises(FinalError, match="one-point grid"):
        grid_rows([one])
    with pytest.raises(FinalError, match="no fine-tune rows"):
        grid_rows([{"extra": {"rows": [{"task": "a", "source": "s", "evaluation": "knn5"}]}}])
    uneven = grid_rows([_record("scratch", SCRATCH)])
    uneven = [r for r in uneven if not (r["task"] == "b" and r["epochs"] == 60)]
    with pytest.raises(FinalError, match="not scored on the same tasks"):
        recipe_means(uneven)


def test_recipe_cli_from_a_real_scoring_job_writes_table_config_and_figure(tmp_path, one_torch_thread, monkeypatch):
    """`final score` with a Scratch grid and fine-tune alone (the recipe's job: no features are
    extracted), then `final recipe` on its record and a pre-trained one: grid.tsv holds every
    validation score, recipe.yaml the choices as config that passes the schema over config.yaml."""
    import task2sim.backbones.features as features
    from task2sim.config import check_config, load_schema

    h5 = write_task_h5(tmp_path / "t.h5", n_classes=3, n_train=30, n_test=12, size=16, seed=1, task="t")
    grid = {"epochs": [1, 2], "lrs": [0.01, 0.1], "weight_decays": [0.0001], "batch_sizes": [16]}
    with monkeypatch.context() as m:
        m.setattr(features, "features", lambda *a, **k: pytest.fail("a fine-tune alone extracted features"))
        assert final_cli.main(["score", "--source", "scratch", "--model-name", "t2s_resnet18_w8", "--image-size", "32",
                               "--task", "t", "--task-h5", str(h5), "--config", '{"evaluations": ["finetune"]}',
                               "--evaluate", json.dumps({"scratch": grid, "val_fraction": 0.3}), "--reward", "{}",
                               "--device", "cpu", "--no-progress", "--out", str(tmp_path / "scratch.tsv")]) == 0
    scored = json.loads((tmp_path / "scratch.meta.json").read_text())
    row, = scored["extra"]["rows"]
    assert (row["n_train"], row["n_test"], len(row["grid"])) == (30, 12, 4)
    pre = tmp_path / "pre.tsv"  # a pre-trained backbone's scores: its record holds its grid
    pre.write_text("task\n")
    (tmp_path / "pre.meta.json").write_text(json.dumps({**_record("00000000", {"t": [70, 71, 72, 73, 80, 79]}),
                                                          "outputs": [str(pre)]}))
    out = {k: tmp_path / "recipe" / f"{n}" for k, n in
           (("md", "summary.md"), ("tsv", "grid.tsv"), ("yaml", "recipe.yaml"), ("png", "recipe.png"))}
    args = ["recipe", "--scores", str(pre), str(tmp_path / "scratch.tsv"), "--no-progress"]
    assert final_cli.main(args + [a for k, p in out.items() for a in (f"--{k}", str(p))]) == 0
    with open(out["tsv"], newline="") as f:
        table = list(csv.DictReader(f, delimiter="\t"))
    assert len(table) == 6 + 4 and {r["section"] for r in table} == {"finetune", "scratch"}
    best = max(row["grid"], key=lambda g: g["val_top1"])  # the first of equals, as the recipe takes it
    chosen = yaml.safe_load(out["yaml"].read_text())["evaluate"]
    assert chosen["scratch"] == {"epochs": best["epochs"], "lrs": [best["lr"]], "weight_decays": [0.0001],
                                 "batch_sizes": [16]}
    assert chosen["finetune"]["epochs"] == 60 and chosen["finetune"]["lrs"] == [0.1]
    merged = yaml.safe_load((REPO / "config.yaml").read_text())
    merged["evaluate"].update(chosen)
    check_config(merged, load_schema(REPO / "schemas" / "config.schema.yaml"))
    text = out["md"].read_text()
    assert "**80.00**" in text and "at seed 0" in text and "epochs 60 is the grid's largest" in text
    assert out["png"].stat().st_size > 0
    meta = json.loads((tmp_path / "recipe" / "summary.meta.json").read_text())
    assert meta["stage"] == "final_recipe" and meta["extra"]["chosen"]["scratch"]["point"]["lr"] == best["lr"]
    # records of two seeds are refused: a recipe is chosen at one
    (tmp_path / "s1.tsv").write_text("task\n")
    (tmp_path / "s1.meta.json").write_text(json.dumps({**_record("scratch", {"t": [1, 2, 3, 4, 5, 6]}, seed=1),
                                                         "outputs": [str(tmp_path / "s1.tsv")]}))
    assert final_cli.main(["recipe", "--scores", str(pre), str(tmp_path / "s1.tsv"),
                           *[a for k, p in out.items() for a in (f"--{k}", str(tmp_path / "x" / p.name))]]) == 2
