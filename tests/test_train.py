"""Pre-training: loss goes down, resume after an interruption gives identical weights, outputs load."""

import csv
import json

import h5py
import pytest
import timm
import torch
from fixtures_h5 import write_render_h5, write_task_h5

from task2sim.config import ConfigError, config_from_dict, section_defaults
from task2sim.backbones.images import DataError, EvalImages, H5ImageDataset, eval_transform, train_transform
from task2sim.backbones.models import CheckpointError, backbone_cfg, load_backbone
from task2sim.train.pretrain import CHECKPOINT, PretrainConfig, pretrain

TINY = dict(model="t2s_resnet18_w8", epochs=2, batch_size=32, warmup_epochs=0, lr=3e-3)


def tiny(device: str = "cpu", **over) -> PretrainConfig:
    """The schema's pretrain defaults, made tiny."""
    return config_from_dict(PretrainConfig, {**TINY, **over}, "pretrain", seed=0, device=device)


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    return write_render_h5(tmp_path_factory.mktemp("render") / "images.h5", n_classes=16, per_class=8,
                           size=32)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_two_epochs_lower_the_loss_and_write_outputs(render, tmp_path):
    s = pretrain(tiny(), render, tmp_path, progress=False)
    assert s["finished"] and s["n_classes"] == 16 and s["n_images"] == 128
    losses = [h["loss"] for h in s["history"]]
    assert losses[1] < losses[0]
    with open(tmp_path / "history.tsv") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "lr", "images_per_s"}
    assert not (tmp_path / CHECKPOINT).exists()
    # the checkpoint says what it holds, and timm rebuilds the backbone from it
    cfg = backbone_cfg(tmp_path / "model.pt")
    assert cfg["architecture"] == "t2s_resnet18_w8" and cfg["input_size"] == (3, 32, 32)
    assert cfg["num_classes"] == 16 and cfg["num_features"] == 64 and len(cfg["mean"]) == 3
    m = timm.create_model("t2s_resnet18_w8", num_classes=16, checkpoint_path=str(tmp_path / "model.pt"))
    sd = _weights(tmp_path / "model.pt")["state_dict"]
    assert all(torch.equal(m.state_dict()[k], sd[k]) for k in sd)
    model, cfg2 = load_backbone(tmp_path / "model.pt")
    assert cfg2 == cfg and model.num_classes == 16


def test_wrong_or_foreign_checkpoints_fail_in_one_line(render, tmp_path):
    pretrain(tiny(epochs=1), render, tmp_path, progress=False)
    ckpt = _weights(tmp_path / "model.pt")
    ckpt["pretrained_cfg"]["architecture"] = "t2s_resnet18_w32s4"  # weights of another model
    torch.save(ckpt, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="do not fit t2s_resnet18_w32s4"):
        load_backbone(tmp_path / "other.pt")
    torch.save(ckpt["state_dict"], tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="no pretrained_cfg"):
        load_backbone(tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        backbone_cfg(tmp_path / "junk.pt")


def test_resume_after_interruption_gives_identical_weights(render, tmp_path):
    cfg = tiny()
    full = pretrain(cfg, render, tmp_path / "full", progress=False)
    part = pretrain(cfg, render, tmp_path / "cut", stop_after_epoch=1, progress=False)
    assert not part["finished"] and (tmp_path / "cut" / CHECKPOINT).is_file()
    assert not (tmp_path / "cut" / "model.pt").exists()
    resumed = pretrain(cfg, render, tmp_path / "cut", progress=False)
    assert resumed["resumed_from_epoch"] == 1
    a, b = (_weights(tmp_path / d / "model.pt")["state_dict"] for d in ("full", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in full["history"]] == [h["loss"] for h in resumed["history"]]


def test_checkpoint_of_other_config_is_ignored(render, tmp_path):
    pretrain(tiny(), render, tmp_path, stop_after_epoch=1, progress=False)
    other = tiny(lr=1e-3)
    s = pretrain(other, render, tmp_path, progress=False)
    assert s["resumed_from_epoch"] == 0


def test_checkpoint_optimizer_spares_norm_and_bias_from_weight_decay(render, tmp_path):
    pretrain(tiny(), render, tmp_path, stop_after_epoch=1, progress=False)
    ckpt = torch.load(tmp_path / CHECKPOINT, map_location="cpu", weights_only=True)
    assert "rng" not in ckpt  # per-epoch reseeding makes RNG states useless
    groups = ckpt["optimizer"]["param_groups"]
    assert sorted(g["weight_decay"] for g in groups) == [0.0, section_defaults("pretrain")["weight_decay"]]
    # the no-decay group holds exactly the 1-D parameters (BatchNorm weights/biases, fc bias)
    n_1d = sum(p.ndim <= 1 for p in _weights_from(ckpt["model"]))
    assert len(next(g for g in groups if g["weight_decay"] == 0.0)["params"]) == n_1d


def _weights_from(state):
    return [v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]


def test_fingerprint_covers_resolved_device_and_amp_dtype(render, tmp_path):
    cfg = tiny()
    assert cfg.fingerprint("x", "cpu", "none") != cfg.fingerprint("x", "cuda", "bfloat16")
    assert cfg.fingerprint("x", "cuda", "float16") != cfg.fingerprint("x", "cuda", "bfloat16")
    # the requested name does not matter, only what it resolves to: an 'auto' run on this CPU
    # machine continues a 'cpu' checkpoint
    if not torch.cuda.is_available():
        pretrain(cfg, render, tmp_path, stop_after_epoch=1, progress=False)
        s = pretrain(tiny(device="auto"), render, tmp_path, progress=False)
        assert s["resumed_from_epoch"] == 1


def test_mixup_needs_even_batches(tmp_path):
    with pytest.raises(ValueError, match="even batch_size, got 33"):
        tiny(mixup=0.8, batch_size=33)
    tiny(batch_size=33)  # odd is fine without mixup
    # 25 images: batches of 8 leave an odd last batch of 1, which is dropped with mixup on
    small = write_render_h5(tmp_path / "small.h5", n_classes=5, per_class=5, size=32)
    s = pretrain(tiny(epochs=1, batch_size=8, cutmix=1.0), small,
                 tmp_path / "out", progress=False)
    assert s["finished"]
    with pytest.raises(ValueError, match="fewer than one mixup batch of 32"):
        pretrain(tiny(epochs=1, mixup=0.8), small, tmp_path / "o2",
                 progress=False)


def test_mixup_and_randaugment_path_runs(render, tmp_path):
    cfg = tiny(epochs=1, mixup=0.8, cutmix=1.0,
                            randaugment="rand-m9-mstd0.5-inc1")
    s = pretrain(cfg, render, tmp_path, progress=False)
    assert s["finished"] and torch.isfinite(torch.tensor(s["final_loss"]))


def test_paper_randaugment_posterizes_to_zero_bits_without_failing():
    # The paper's rand-m9-mstd0.5-inc1 reaches magnitude 10, where increasing posterize keeps 0
    # bits: black, as Pillow < 13 gave (Pillow 13 raises ValueError in the loader's worker).
    import numpy as np
    from PIL import Image
    from timm.data import auto_augment

    train_transform(32, randaugment="rand-m9-mstd0.5-inc1")
    img = Image.fromarray(np.full((8, 8, 3), 200, np.uint8))
    for name in ("PosterizeIncreasing", "Posterize"):
        out = np.asarray(auto_augment.AugmentOp(name, prob=1.0, magnitude=10 if "Incr" in name else 0)(img))
        assert out.shape == (8, 8, 3) and out.max() == 0, name
    kept = np.asarray(auto_augment.AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=5)(img))
    assert kept.max() == 192  # 2 bits kept: 200 -> 0b11000000


def test_incomplete_render_is_refused(tmp_path):
    p = write_render_h5(tmp_path / "images.h5", n_classes=2, per_class=2, size=32, complete=False)
    with pytest.raises(DataError, match="incomplete"):
        pretrain(tiny(), p, tmp_path / "out", progress=False)


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


@pytest.mark.parametrize("size,channels,target", [(28, 1, 64), (24, 3, 64), (32, 1, 32), (48, 3, 20)])
def test_eval_batches_are_the_per_image_transform_byte_for_byte(tmp_path, size, channels, target):
    """Whole-batch resizing (grayscale resized before it becomes RGB; up, down and same size)
    gives exactly the bytes the per-image transform and the DataLoader's collation give."""
    from torch.utils.data import DataLoader

    task = write_task_h5(tmp_path / "t.h5", n_train=37, n_test=5, size=size, channels=channels)
    idx = [3, 0, 36, 7, 8, 9, 20]
    for ds in (EvalImages(task, "train", target), EvalImages(task, "train", target, indices=idx)):
        got = list(ds.batches(4))
        want = list(DataLoader(H5ImageDataset(task, "train", eval_transform(target), indices=ds.indices), 4))
        assert len(got) == len(want) == -(-len(ds) // 4)
        for (xa, ya), (xb, yb) in zip(got, want):
            assert xa.dtype == xb.dtype == torch.uint8 and xa.shape == xb.shape
            assert xa.shape[1:] == (3, target, target) and xa.is_contiguous()
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_cli_trains_and_rejects_bad_params(render, tmp_path, capsys):
    from task2sim.cli import pretrain as cli

    config = json.dumps(TINY | {"epochs": 1})
    assert cli.main(["--images", str(render), "--out-dir", str(tmp_path / "ok"), "--config", config,
                     "--runtime", '{"in_memory": false}', "--device", "cpu", "--no-progress"]) == 0
    assert (tmp_path / "ok" / "model.pt").is_file()
    meta = json.loads((tmp_path / "ok" / "model.meta.json").read_text())
    # the record holds the resolved dataclass: schema defaults filled in, runtime keys included
    assert meta["stage"] == "pretrain" and meta["params"]["model"] == "t2s_resnet18_w8"
    assert meta["params"]["weight_decay"] == section_defaults("pretrain")["weight_decay"]
    assert meta["params"]["in_memory"] is False and str(render) in meta["inputs"]
    assert meta["outputs"] == [str(tmp_path / "ok" / "model.pt"), str(tmp_path / "ok" / "history.tsv")]
    capsys.readouterr()
    assert cli.main(["--images", str(render), "--out-dir", str(tmp_path / "bad"),
                     "--config", '{"epochz": 1}']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: pretrain: unknown key 'epochz'")
    assert cli.main(["--images", str(render), "--out-dir", str(tmp_path / "bad"),
                     "--config", '{"epochs": "five"}']) == 2
    assert "pretrain.epochs: 'five' is not of type 'integer'" in capsys.readouterr().err
    assert cli.main(["--images", str(tmp_path / "missing.h5"), "--out-dir", str(tmp_path / "bad"),
                     "--config", "{}"]) == 2
    assert not (tmp_path / "bad" / "model.pt").exists()


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="pretrain: unknown key 'lrr'"):
        tiny(lrr=0.1)


def test_benchmarks_report_consistent_ratios(render, tmp_path):
    from task2sim.bench.pretrain import bench_knn, bench_pipeline

    r = bench_pipeline(render, "t2s_resnet18_w8", batch=32, steps=2, repeats=1)
    for k in ("in_memory_w0", "lazy_h5_w0", "in_memory_w1"):
        # each ratio is its pipeline rate over the bare step rate measured beside it
        assert r[f"{k}_ratio"] == pytest.approx(r[f"{k}_images_per_s"] / r["bare_images_per_s"])
    assert r["image_size"] == 32 and r["batch"] == 32 and r["transform_ms_per_image"] > 0
    k = bench_knn(n_train=2000, n_test=300, dim=16, repeats=1)
    assert k["knn_over_matmul"] == pytest.approx(k["knn_seconds"] / k["matmul_seconds"])
    assert k["peak_chunk_mb"] == pytest.approx(1024 * 2000 * 4 / 2**20)
    from task2sim.bench.linear import bench_linear

    lin = bench_linear(n=100, dim=8, n_classes=3, epochs=2, repeats=1)
    assert lin["identical"] and lin["ratio"] > 0  # the same head, bit for bit
    from task2sim.bench.eval_images import bench_eval_images

    ev = bench_eval_images(write_task_h5(tmp_path / "t.h5", n_train=20, n_test=10), size=32, batch=8, repeats=1)
    assert ev["identical"] and ev["images"] == 30 and ev["ratio"] > 0  # the same bytes


def test_lazy_dataset_in_worker_processes(render):
    from torch.utils.data import DataLoader

    ds = H5ImageDataset(render, None, eval_transform(32), in_memory=False)
    ds[0]  # an open handle in the parent must not break the forked workers
    batches = list(DataLoader(ds, batch_size=40, num_workers=2))
    labels = torch.cat([y for _, y in batches])
    assert len(labels) == 128 and torch.equal(labels, torch.as_tensor(ds.labels))
