"""Downstream evaluation: hyper-parameters are chosen on a validation split, never on test."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from fixtures_h5 import write_render_h5, write_task_h5

from task2sim.backbones.features import features
from task2sim.cli import evaluate as evaluate_cli
from task2sim.config import ConfigError, config_from_dict
from task2sim.train.evaluate import EvalConfig, evaluate, validation_split
from task2sim.train.pretrain import PretrainConfig, pretrain


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    d = tmp_path_factory.mktemp("bb")
    render = write_render_h5(d / "images.h5", n_classes=8, per_class=8, size=32)
    cfg = config_from_dict(PretrainConfig, {"model": "t2s_resnet18_w8", "epochs": 1, "batch_size": 32,
                                            "warmup_epochs": 0}, "pretrain", seed=0, device="cpu")
    pretrain(cfg, render, d / "pre", progress=False)
    return d / "pre" / "model.pt"


def _scramble_test(src: Path, dst: Path) -> Path:
    """A copy of the task whose test split is replaced by other images with shuffled labels."""
    dst.write_bytes(src.read_bytes())
    rng = np.random.default_rng(5)
    with h5py.File(dst, "r+") as f:
        f["test/images"][...] = rng.integers(0, 256, f["test/images"].shape, dtype=np.uint8)
        f["test/labels"][...] = rng.permutation(f["test/labels"][()])
    return dst


def test_feature_batches_are_the_dataloaders_batches_and_leave_the_generator_alike():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from task2sim.train.evaluate import FeatureBatches

    f, y = torch.randn(70, 5), torch.arange(70)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    loader = DataLoader(TensorDataset(f, y), batch_size=16, shuffle=True, generator=g1)
    fast = FeatureBatches(f, y, 16, g2)
    assert len(fast) == len(loader) == 5
    for _ in range(3):  # epochs: the generator's stream must stay in step
        pairs = list(zip(loader, fast, strict=True))
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_validation_split_is_seeded_stratified_and_disjoint():
    labels = np.repeat(np.arange(5), 10)
    fit, val = validation_split(labels, 0.3, seed=3)
    fit2, val2 = validation_split(labels, 0.3, seed=3)
    assert np.array_equal(fit, fit2) and np.array_equal(val, val2)
    assert set(fit).isdisjoint(val) and len(fit) + len(val) == 50
    assert np.all(np.bincount(labels[val], minlength=5) == 3)


def test_validation_split_keeps_every_class_on_both_sides_else_falls_back_to_unstratified():
    from task2sim.tasks.prepare import stratified_split

    labels = np.repeat(np.arange(10), 2)  # 30 % of 2 rounds to 1: one image of each class per side
    fit, val = validation_split(labels, 0.3, seed=1)
    assert np.array_equal(np.bincount(labels[val]), np.ones(10)) and len(fit) == 10
    # the task preparation's split, the one stratified split of the code base
    ref = stratified_split(labels, 10, 0.3, np.random.default_rng(1), [str(c) for c in range(10)])
    assert np.array_equal(fit, np.sort(ref[0])) and np.array_equal(val, np.sort(ref[1]))
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 3, 3, 3])  # class 2 has one image: no stratified split
    fit, val = validation_split(labels, 0.3, seed=1)
    fit2, val2 = validation_split(labels, 0.3, seed=1)
    assert np.array_equal(fit, fit2) and np.array_equal(val, val2)
    assert set(fit).isdisjoint(val) and len(fit) == 7 and len(val) == 3
    with pytest.raises(ValueError, match="tiny.h5 has 1 training image"):
        validation_split(np.array([0]), 0.3, seed=1, where="tiny.h5")


@pytest.mark.parametrize("method", ["linear", "finetune"])
def test_choice_depends_on_validation_only(backbone, tmp_path, method):
    task = write_task_h5(tmp_path / "data.h5", n_classes=4, n_train=64, n_test=32, size=32)
    other = _scramble_test(task, tmp_path / "scrambled.h5")
    epochs = 20 if method == "linear" else 2
    cfg = config_from_dict(EvalConfig, {"epochs": epochs, "lrs": [1e-4, 0.05], "weight_decays": [0.0],
                                        "batch_sizes": [16], "val_fraction": 0.3}, f"evaluate.{method}",
                           method=method, image_size=32, seed=0, device="cpu")
    a = evaluate(None, backbone, task, cfg, progress=False)
    b = evaluate(None, backbone, other, cfg, progress=False)
    assert len(a["grid"]) == 2 and a["n_val"] == 20 and a["n_fit"] == 44
    # identical validation scores and choice whatever the test split holds
    assert a["grid"] == b["grid"] and a["chosen"] == b["chosen"]
    assert a["chosen"]["lr"] == max(a["grid"], key=lambda r: r["val_top1"])["lr"]
    if method == "linear":  # a real signal: the tiny lr cannot fit in 20 epochs, the larger one can
        assert a["chosen"]["lr"] == 0.05 and a["test_top1"] > 50
        assert b["test_top1"] < a["test_top1"]


def test_epochs_listed_are_chosen_on_validation(backbone, tmp_path):
    """A list of epochs joins the grid: every (epochs, lr) point is scored on validation, the best
    one is retrained and its epochs are the ones the result reports; too few epochs at a tiny
    learning rate cannot fit, so the longer run must win."""
    task = write_task_h5(tmp_path / "data.h5", n_classes=4, n_train=64, n_test=32, size=32)
    cfg = config_from_dict(EvalConfig, {"epochs": [1, 30], "lrs": [0.05], "weight_decays": [0.0],
                                        "batch_sizes": [16], "val_fraction": 0.3}, "evaluate.linear",
                           method="linear", image_size=32, seed=0, device="cpu")
    r = evaluate(None, backbone, task, cfg, progress=False)
    assert [(g["epochs"], g["lr"]) for g in r["grid"]] == [(1, 0.05), (30, 0.05)]
    assert r["grid"][1]["val_top1"] > r["grid"][0]["val_top1"]
    assert r["chosen"] == {"epochs": 30, "lr": 0.05, "weight_decay": 0.0, "batch_size": 16} and r["epochs"] == 30
    for bad in ([], [0], [5, 5]):
        with pytest.raises(ConfigError, match="epochs"):
            config_from_dict(EvalConfig, {"epochs": bad}, "evaluate.scratch", method="scratch", image_size=32,
                             seed=0, device="cpu")


@pytest.mark.parametrize("amp", [True, False])
def test_linear_is_the_final_stages_probe_of_the_same_features(backbone, tmp_path, amp, monkeypatch):
    """The evaluate stage's linear probe and the final stage's linear column: one feature path
    (backbones.features, at the reward section's precision and batch in both), one split, one
    probe, so the same number for the same backbone, with reward.amp on or off."""
    import task2sim.train.evaluate as ev
    from task2sim.backbones.features import load_source
    from task2sim.final.score import score_backbone
    from task2sim.reward.knn import RewardConfig

    asked = []  # what the evaluate stage asked backbones.features for (a 20-image top-1 may not show it)
    monkeypatch.setattr(ev, "features", lambda *a, **kw: asked.append(kw) or features(*a, **kw))
    task = write_task_h5(tmp_path / "data.h5", n_classes=4, n_train=40, n_test=20, size=32)
    section = {"epochs": 5, "lrs": [0.01, 0.1], "weight_decays": [0.0], "batch_sizes": [16], "val_fraction": 0.3}
    out = tmp_path / "linear.json"
    assert evaluate_cli.main(["--method", "linear", "--source", "x", "--task", "t", "--model", str(backbone),
                              "--task-h5", str(task), "--out", str(out), "--device", "cpu", "--config",
                              json.dumps(section), "--reward", json.dumps({"amp": amp}), "--no-progress"]) == 0
    r = json.loads(out.read_text())
    cfg = config_from_dict(EvalConfig, section, "evaluate.linear", method="linear", image_size=32, seed=0,
                           device="cpu")
    rw = config_from_dict(RewardConfig, {"amp": amp}, "reward")
    row, = score_backbone(load_source("x", backbone), {"t": task}, ["linear"], {"linear": cfg}, rw.k,
                          rw.temperature, 0, "cpu", batch_size=rw.batch_size, amp=rw.amp)
    assert row["top1"] == round(r["test_top1"], 4) and row["chosen"] == r["chosen"]
    # each grid point's validation score, in the score's provenance rows: how the choice was made
    assert row["grid"] == r["grid"] and len(row["grid"]) == 2
    assert [(kw["amp"], kw["batch_size"]) for kw in asked] == [(rw.amp, rw.batch_size)]


def test_cli_scratch_and_errors(tmp_path, backbone):
    task = write_task_h5(tmp_path / "data.h5", n_classes=4, n_train=40, n_test=20, size=32)
    out = tmp_path / "scratch" / "x" / "t.json"
    rc = evaluate_cli.main(["--method", "scratch", "--source", "none", "--task", "t",
                            "--model-name", "t2s_resnet18_w8", "--image-size", "32",
                            "--task-h5", str(task), "--out", str(out), "--device", "cpu",
                            "--config", json.dumps({"epochs": 1, "lrs": [0.01], "val_fraction": 0.3}),
                            "--no-progress"])
    assert rc == 0
    rec = json.loads(out.read_text())
    assert rec["method"] == "scratch" and 0 <= rec["test_top1"] <= 100
    assert rec["grid"] == [] and rec["chosen"]["lr"] == 0.01  # one grid point: no validation run
    assert json.loads(out.with_suffix(".meta.json").read_text())["params"]["image_size"] == 32
    rc = evaluate_cli.main(["--method", "scratch", "--source", "none", "--task", "t", "--model-name", "t2s_resnet18_w8",
                            "--image-size", "32", "--task-h5", str(task), "--out", str(tmp_path / "y.json"),
                            "--config", '{"val_fraction": 0.3}', "--reward", '{"amp": false}'])
    assert rc == 2 and not (tmp_path / "y.json").exists()  # --reward: the linear probe's features only
    rc = evaluate_cli.main(["--method", "linear", "--source", "x", "--task", "t", "--model",
                            str(backbone), "--task-h5", str(task), "--out", str(tmp_path / "y.json"),
                            "--config", '{"epoch": 1}'])
    assert rc == 2 and not (tmp_path / "y.json").exists()
    # the architecture and size come from the checkpoint: no --model-name beside --model
    rc = evaluate_cli.main(["--method", "linear", "--source", "x", "--task", "t", "--model", str(backbone),
                            "--model-name", "resnet50", "--task-h5", str(task), "--out", str(tmp_path / "y.json"),
                            "--config", '{"val_fraction": 0.3}'])
    assert rc == 2 and not (tmp_path / "y.json").exists()
