"""Pre-training: loss goes down, resume after an interruption gives identical weights, outputs load."""

import csv
import json
import sys
from pathlib import Path

import h5py
import pytest
import timm
import torch

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_h5 import write_render_h5  # noqa: E402

from task2sim.train.data import DataError, H5ImageDataset, eval_transform  # noqa: E402
from task2sim.train.models import load_backbone  # noqa: E402 (registers the t2s_* models)
from task2sim.train.pretrain import CHECKPOINT, PretrainConfig, pretrain  # noqa: E402

TINY = dict(model="t2s_resnet18_w8", epochs=2, batch_size=32, warmup_epochs=0, lr=3e-3, device="cpu",
            threads=1)


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    return write_render_h5(tmp_path_factory.mktemp("render") / "images.h5", n_classes=16, per_class=8,
                           size=32)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_two_epochs_lower_the_loss_and_write_outputs(render, tmp_path):
    s = pretrain(PretrainConfig(**TINY), render, tmp_path, progress=False)
    assert s["finished"] and s["n_classes"] == 16 and s["n_images"] == 128
    losses = [h["loss"] for h in s["history"]]
    assert losses[1] < losses[0]
    with open(tmp_path / "history.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "lr", "images_per_s"}
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["stage"] == "pretrain" and meta["params"]["model"] == "t2s_resnet18_w8"
    assert str(render) in meta["inputs"]
    assert not (tmp_path / CHECKPOINT).exists()
    # timm rebuilds the backbone from the plain state dict
    m = timm.create_model("t2s_resnet18_w8", num_classes=16, checkpoint_path=str(tmp_path / "model.pt"))
    sd = _weights(tmp_path / "model.pt")
    assert all(torch.equal(m.state_dict()[k], sd[k]) for k in sd)
    model, n = load_backbone("t2s_resnet18_w8", tmp_path / "model.pt")
    assert n == 16


def test_resume_after_interruption_gives_identical_weights(render, tmp_path):
    cfg = PretrainConfig(**TINY)
    full = pretrain(cfg, render, tmp_path / "full", progress=False)
    part = pretrain(cfg, render, tmp_path / "cut", stop_after_epoch=1, progress=False)
    assert not part["finished"] and (tmp_path / "cut" / CHECKPOINT).is_file()
    assert not (tmp_path / "cut" / "model.pt").exists()
    resumed = pretrain(cfg, render, tmp_path / "cut", progress=False)
    assert resumed["resumed_from_epoch"] == 1
    a, b = _weights(tmp_path / "full" / "model.pt"), _weights(tmp_path / "cut" / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in full["history"]] == [h["loss"] for h in resumed["history"]]


def test_checkpoint_of_other_config_is_ignored(render, tmp_path):
    pretrain(PretrainConfig(**TINY), render, tmp_path, stop_after_epoch=1, progress=False)
    other = PretrainConfig(**{**TINY, "lr": 1e-3})
    s = pretrain(other, render, tmp_path, progress=False)
    assert s["resumed_from_epoch"] == 0


def test_checkpoint_optimizer_spares_norm_and_bias_from_weight_decay(render, tmp_path):
    pretrain(PretrainConfig(**TINY), render, tmp_path, stop_after_epoch=1, progress=False)
    ckpt = torch.load(tmp_path / CHECKPOINT, map_location="cpu", weights_only=False)
    assert "rng" not in ckpt  # per-epoch reseeding makes RNG states useless
    groups = ckpt["optimizer"]["param_groups"]
    assert sorted(g["weight_decay"] for g in groups) == [0.0, PretrainConfig().weight_decay]
    # the no-decay group holds exactly the 1-D parameters (BatchNorm weights/biases, fc bias)
    n_1d = sum(p.ndim <= 1 for p in _weights_from(ckpt["model"]))
    assert len(next(g for g in groups if g["weight_decay"] == 0.0)["params"]) == n_1d


def _weights_from(state):
    return [v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]


def test_fingerprint_covers_resolved_device_and_amp_dtype(render, tmp_path):
    cfg = PretrainConfig(**TINY)
    assert cfg.fingerprint("x", "cpu", "none") != cfg.fingerprint("x", "cuda", "bfloat16")
    assert cfg.fingerprint("x", "cuda", "float16") != cfg.fingerprint("x", "cuda", "bfloat16")
    # the requested name does not matter, only what it resolves to: an 'auto' run on this CPU
    # machine continues a 'cpu' checkpoint
    if not torch.cuda.is_available():
        pretrain(cfg, render, tmp_path, stop_after_epoch=1, progress=False)
        s = pretrain(PretrainConfig(**{**TINY, "device": "auto"}), render, tmp_path, progress=False)
        assert s["resumed_from_epoch"] == 1


def test_mixup_needs_even_batches(tmp_path):
    with pytest.raises(ValueError, match="even batch_size, got 33"):
        PretrainConfig(**{**TINY, "mixup": 0.8, "batch_size": 33})
    PretrainConfig(**{**TINY, "batch_size": 33})  # odd is fine without mixup
    # 25 images: batches of 8 leave an odd last batch of 1, which is dropped with mixup on
    small = write_render_h5(tmp_path / "small.h5", n_classes=5, per_class=5, size=32)
    s = pretrain(PretrainConfig(**{**TINY, "epochs": 1, "batch_size": 8, "cutmix": 1.0}), small,
                 tmp_path / "out", progress=False)
    assert s["finished"]
    with pytest.raises(ValueError, match="fewer than one mixup batch of 32"):
        pretrain(PretrainConfig(**{**TINY, "epochs": 1, "mixup": 0.8}), small, tmp_path / "o2",
                 progress=False)


def test_mixup_and_randaugment_path_runs(render, tmp_path):
    cfg = PretrainConfig(**{**TINY, "epochs": 1, "mixup": 0.8, "cutmix": 1.0,
                            "randaugment": "rand-m9-mstd0.5-inc1"})
    s = pretrain(cfg, render, tmp_path, progress=False)
    assert s["finished"] and torch.isfinite(torch.tensor(s["final_loss"]))


def test_incomplete_render_is_refused(tmp_path):
    p = write_render_h5(tmp_path / "images.h5", n_classes=2, per_class=2, size=32, complete=False)
    with pytest.raises(DataError, match="incomplete"):
        pretrain(PretrainConfig(**TINY), p, tmp_path / "out", progress=False)


def test_task_files_are_validated_by_the_tasks_reader(tmp_path):
    import h5py
    from fixtures_h5 import write_task_h5

    task = write_task_h5(tmp_path / "data.h5", n_classes=3, n_train=12, n_test=6)
    assert len(H5ImageDataset(task, "train", in_memory=False)) == 12
    with h5py.File(task, "a") as f:
        del f.attrs["licence"]
    with pytest.raises(DataError, match="missing attribute 'licence'"):
        H5ImageDataset(task, "test")


def test_lazy_and_in_memory_datasets_agree(render):
    a = H5ImageDataset(render, None, eval_transform(32), in_memory=True)
    b = H5ImageDataset(render, None, eval_transform(32), in_memory=False)
    for i in (0, 5, 127):
        xa, ya = a[i]
        xb, yb = b[i]
        assert ya == yb and torch.equal(xa, xb)
    with h5py.File(render) as f:
        assert a.n_classes == int(f.attrs["n_classes"])


def test_cli_trains_and_rejects_bad_params(render, tmp_path, capsys):
    from task2sim.cli import pretrain as cli

    params = json.dumps({k: v for k, v in TINY.items() if k not in ("device", "threads")} | {"epochs": 1})
    assert cli.main(["--images", str(render), "--out-dir", str(tmp_path / "ok"), "--params", params,
                     "--device", "cpu", "--no-progress"]) == 0
    assert (tmp_path / "ok" / "model.pt").is_file()
    assert cli.main(["--images", str(render), "--out-dir", str(tmp_path / "bad"),
                     "--params", '{"epochz": 1}']) == 2
    assert "epochz" in capsys.readouterr().err
    assert cli.main(["--images", str(tmp_path / "missing.h5"), "--out-dir", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad" / "model.pt").exists()


def test_benchmarks_run_and_report_ratios(render):
    from task2sim.bench.pretrain import bench_knn, bench_pipeline

    r = bench_pipeline(render, "t2s_resnet18_w8", batch=32, steps=2, repeats=1)
    assert r["bare_images_per_s"] > 0 and 0 < r["in_memory_w0_ratio"] < 10
    k = bench_knn(n_train=2000, n_test=300, dim=16, repeats=1)
    assert k["knn_seconds"] > 0 and k["knn_over_matmul"] > 0


def test_lazy_dataset_in_worker_processes(render):
    from torch.utils.data import DataLoader

    ds = H5ImageDataset(render, None, eval_transform(32), in_memory=False)
    ds[0]  # an open handle in the parent must not break the forked workers
    batches = list(DataLoader(ds, batch_size=40, num_workers=2))
    labels = torch.cat([y for _, y in batches])
    assert len(labels) == 128 and torch.equal(labels, torch.as_tensor(ds.labels))
