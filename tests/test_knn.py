"""Weighted 5-NN (docs/algorithms.md) against a brute-force numpy reference, and feature extraction."""

import json

import numpy as np
import pytest
import torch
from fixtures_h5 import write_task_h5

from task2sim.backbones.features import load_source
from task2sim.reward.knn import compute_reward, knn_accuracy, knn_loo_accuracy, knn_predict


def random_init_reward(task, cache, seed=0):
    bb = load_source("scratch", model_name="t2s_resnet18_w8", image_size=32, seed=seed)
    return compute_reward(bb, task, k=5, temperature=0.07, cache=cache, progress=False)


def brute_force(train, ytr, test, n_classes, k=5, t=0.07):
    preds = []
    for q in test:
        sims = train @ q
        order = np.argsort(-sims, kind="stable")[:k]
        votes = np.zeros(n_classes)
        for j in order:
            votes[ytr[j]] += np.exp(sims[j] / t)
        preds.append(int(np.argmax(votes)))
    return np.array(preds)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("chunk", [7, 1024])
def test_knn_matches_brute_force(chunk):
    rng = np.random.default_rng(0)
    n_classes, d = 6, 16
    centres = rng.normal(size=(n_classes, d))
    ytr = rng.integers(0, n_classes, 300)
    yte = rng.integers(0, n_classes, 101)
    train = unit(centres[ytr] + 1.5 * rng.normal(size=(300, d))).astype(np.float32)
    test = unit(centres[yte] + 1.5 * rng.normal(size=(101, d))).astype(np.float32)
    ref = brute_force(train.astype(np.float64), ytr, test.astype(np.float64), n_classes)
    got = knn_predict(train, ytr, test, n_classes=n_classes, chunk=chunk)
    np.testing.assert_array_equal(got, ref)
    acc = knn_accuracy(train, ytr, test, yte, n_classes=n_classes, chunk=chunk)
    assert acc == pytest.approx(100 * np.mean(ref == yte))
    assert 100 / n_classes < acc < 100  # informative but not trivial data


@pytest.mark.parametrize("chunk", [7, 1024])
def test_leave_one_out_knn_matches_brute_force_without_the_image_itself(chunk):
    rng = np.random.default_rng(1)
    n_classes, d, n = 5, 12, 120
    y = rng.integers(0, n_classes, n)
    x = unit(rng.normal(size=(n_classes, d))[y] + 1.2 * rng.normal(size=(n, d))).astype(np.float32)
    ref = np.array([brute_force(np.delete(x, i, 0).astype(np.float64), np.delete(y, i), x[i:i + 1].astype(np.float64),
                                n_classes)[0] for i in range(n)])
    np.testing.assert_array_equal(knn_predict(x, y, None, n_classes=n_classes, chunk=chunk), ref)
    acc = knn_loo_accuracy(x, y, n_classes=n_classes, chunk=chunk)
    assert acc == pytest.approx(100 * np.mean(ref == y))
    # with the image itself as a neighbour every prediction would be right: left out, it is not
    assert knn_accuracy(x, y, x, y, n_classes=n_classes, chunk=chunk) == 100.0 and acc < 100.0


def test_weighting_can_overrule_majority():
    # Three far neighbours of class 0 against two very close ones of class 1: exp(sim/0.07) wins.
    q = np.array([[1.0, 0.0]], np.float32)
    ang = np.array([0.01, 0.02, 0.9, 0.95, 1.0])
    train = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
    y = np.array([1, 1, 0, 0, 0])
    assert knn_predict(train, y, q, n_classes=2)[0] == 1
    # with a huge temperature the weights flatten and the majority decides
    assert knn_predict(train, y, q, n_classes=2, temperature=1e6)[0] == 0


def test_compute_reward_on_fixture_task_and_cache(tmp_path):
    task = write_task_h5(tmp_path / "data.h5", n_classes=4, n_train=64, n_test=32)
    cache = tmp_path / "feat.npz"
    r1 = random_init_reward(task, cache)
    assert cache.is_file()
    assert r1["n_train"] == 64 and r1["n_test"] == 32 and r1["feature_dim"] == 64
    assert r1["knn5_top1"] > 25  # random-init features of coloured stripes still beat chance
    mtime = cache.stat().st_mtime_ns
    torch.manual_seed(1)  # the global RNG must not matter: the random init is seeded (seed=0)
    r2 = random_init_reward(task, cache)
    assert cache.stat().st_mtime_ns == mtime and r2["knn5_top1"] == r1["knn5_top1"]
    with np.load(cache) as z:
        key0, f0 = str(z["key"]), z["train"].copy()
    # another init seed is another network: its own cache key, so the cache is recomputed
    random_init_reward(task, cache, seed=1)
    with np.load(cache) as z:
        assert str(z["key"]) != key0 and not np.allclose(z["train"], f0)


def test_amp_features_have_their_own_cache_key_and_stay_close(tmp_path, monkeypatch):
    """reward.amp: bf16 features (on a CPU that computes bf16 natively; forced here) are cached
    under their own key, so an fp32 cache is never read as bf16 or the other way; the fp32 key is
    the one of before amp existed; the features stay close to fp32's."""
    from task2sim.backbones import features as feats
    from task2sim.backbones import runtime

    task = write_task_h5(tmp_path / "data.h5", n_classes=4, n_train=64, n_test=32)
    bb = load_source("scratch", model_name="t2s_resnet18_w8", image_size=32, seed=0)
    fp32 = feats.features(bb, task, tmp_path / "fp32.npz", progress=False, device="cpu")
    assert feats.features(bb, task, tmp_path / "off.npz", progress=False, device="cpu", amp=False).train.tobytes() \
        == fp32.train.tobytes()
    with np.load(tmp_path / "fp32.npz") as z:
        assert str(z["key"]) == feats.cache_key(bb.name, None, task, 32, bb.mean, bb.std, 0)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda *a: True)
    cache = tmp_path / "fp32.npz"
    bf16 = feats.features(bb, task, cache, progress=False, device="cpu", amp=True)  # fp32 cache: not read
    with np.load(cache) as z:
        key = str(z["key"])
    assert key == feats.cache_key(bb.name, None, task, 32, bb.mean, bb.std, 0, torch.bfloat16)
    assert bf16.train.tobytes() != fp32.train.tobytes()
    cos = (feats.l2_normalise(bf16.train) * feats.l2_normalise(fp32.train)).sum(1)
    assert cos.min() > 0.99


def test_random_init_feature_model_is_seeded():
    a, b, c = (load_source("scratch", model_name="t2s_resnet18_w8", image_size=32, seed=s).model for s in (3, 3, 4))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_reward_cli_knn_and_aggregate(tmp_path, capsys):
    from task2sim.cli import reward as cli
    from task2sim.reward.table import read_reward_db, read_table_tsv
    from task2sim.backbones.models import create_backbone, save_backbone

    task = write_task_h5(tmp_path / "data.h5", n_classes=3, n_train=30, n_test=15)
    model_dir = tmp_path / "pre"
    torch.manual_seed(0)
    save_backbone(model_dir / "model.pt", create_backbone("t2s_resnet18_w8", num_classes=5), "t2s_resnet18_w8",
                  32, (0.5,) * 3, (0.25,) * 3)
    config = ["--config", '{"k": 5, "temperature": 0.07}']
    task2 = write_task_h5(tmp_path / "data2.h5", n_classes=2, n_train=20, n_test=10, seed=4)
    outs = []
    for bits in ("00000000", "10000001"):
        out, out2 = tmp_path / "rw" / bits / "t.json", tmp_path / "rw" / bits / "u.json"
        assert cli.main(["knn", "--model", str(model_dir / "model.pt"), "--task-h5", str(task), str(task2),
                         "--bits", bits, "--task", "t", "u", "--out", str(out), str(out2), "--device", "cpu",
                         *config]) == 0
        rec = json.loads(out.read_text())
        assert set(rec) == {"bits", "task", "knn5_top1", "knn5_train_loo", "k", "temperature", "feature_dim",
                            "n_train", "n_test"}
        assert json.loads(out2.read_text())["n_test"] == 10 and rec["n_test"] == 15
        meta = json.loads(out.with_suffix(".meta.json").read_text())
        assert meta["params"]["image_size"] == 32 and meta["params"]["model_name"] == "t2s_resnet18_w8"
        assert meta["params"]["batch_size"] == 64  # the schema default, resolved
        outs += [str(out), str(out.with_suffix(".meta.json")), str(out2)]  # sidecars are skipped
    assert cli.main(["aggregate", "--tsv", str(tmp_path / "table.tsv"), "--png", str(tmp_path / "t.png"),
                     "--reward-db", str(tmp_path / "db.json"), "--measured-tsv", str(tmp_path / "loo.tsv"),
                     *outs]) == 0
    # the training-split table: same layout, the JSONs' knn5_train_loo
    loo = read_table_tsv(tmp_path / "loo.tsv")
    rec = json.loads((tmp_path / "rw" / "10000001" / "t.json").read_text())
    assert loo.keys() == {"t", "u"} and loo["t"]["10000001"] == pytest.approx(rec["knn5_train_loo"], abs=1e-4)
    assert read_table_tsv(tmp_path / "table.tsv")["t"].keys() == {"00000000", "10000001"}
    assert read_table_tsv(tmp_path / "table.tsv").keys() == {"t", "u"}
    db, tsv = read_reward_db(tmp_path / "db.json"), read_table_tsv(tmp_path / "table.tsv")
    assert db.keys() == tsv.keys() and all(db["t"][b] == pytest.approx(tsv["t"][b], abs=1e-4) for b in db["t"])
    assert (tmp_path / "table.meta.json").is_file()
    # mismatched lists, a model file without its pretrained_cfg: one line, exit 2
    capsys.readouterr()
    assert cli.main(["knn", "--model", str(model_dir / "model.pt"), "--task-h5", str(task), "--bits", "00000000",
                     "--task", "t", "u", "--out", str(tmp_path / "z.json"), *config]) == 2
    assert "must have one entry per task" in capsys.readouterr().err
    torch.save(create_backbone("t2s_resnet18_w8", num_classes=5).state_dict(), tmp_path / "plain.pt")
    assert cli.main(["knn", "--model", str(tmp_path / "plain.pt"), "--task-h5", str(task), "--bits",
                     "00000000", "--task", "t", "--out", str(tmp_path / "x.json"), *config]) == 2
    assert "no pretrained_cfg" in capsys.readouterr().err
