"""Task2Vec (docs/task2vec.md): layout, domain sensitivity, model-sampled labels, determinism, CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from fixtures_h5 import write_task_h5

from task2sim.cli.task2vec import main
from task2sim.config import config_from_dict
from task2sim.backbones.imagenet import imagenet_model
from task2sim.provenance import meta_path
from task2sim.task2vec import (
    Preprocess,
    Task2VecConfig,
    cosine_distance,
    distance_matrix,
    embedding_layout,
    fit_head,
    montecarlo_fisher,
    normalized_cosine_distance,
    probe_features,
    task2vec,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "task2sim" / "task2vec_resnet18_seen.npz"

# Tiny but real: 32 px inputs, 64 Fisher draws, the packaged ImageNet EfficientNet-Lite0.
TINY = {"input_size": 32, "samples": 64, "batch_size": 32, "head_epochs": 3, "head_lr": 0.001}


def cfg(seed=0, **kw):
    return config_from_dict(Task2VecConfig, {**TINY, **kw}, "task2vec", seed=seed, device="cpu")



@pytest.fixture(scope="module")
def probe():
    return imagenet_model()


def digits(classes, n_per_class=20):
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.concatenate([np.flatnonzero(d.target == c)[:n_per_class] for c in classes])
    images = np.clip(np.rint(d.images[idx] * 255 / 16), 0, 255).astype(np.uint8)[..., None]
    labels = np.searchsorted(np.asarray(classes), d.target[idx])
    return images, labels, len(classes)


def textures(n_per_class=20, size=32, seed=0):
    from skimage import data

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c, name in enumerate(("brick", "grass", "gravel")):
        img = getattr(data, name)()
        for _ in range(n_per_class):
            r, col = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
            images.append(img[r:r + size, col:col + size])
            labels.append(c)
    return np.stack(images)[..., None].astype(np.uint8), np.asarray(labels), 3


def test_one_value_per_conv_and_bn_filter_resnet18():
    model = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    names, sizes = embedding_layout(model)
    assert sum(sizes) == 9600 and len(names) == 40  # 20 convs (3 downsample) + 20 BatchNorms
    assert names[:2] == ["conv1", "bn1"] and "fc" not in names
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    res = task2vec(images, np.arange(8) % 2, 2, cfg(input_size=16, samples=4, batch_size=2, head_epochs=1),
                   model=model)
    assert res.embedding.shape == (9600,) and res.embedding.dtype == np.float32
    assert res.layer_sizes == sizes and res.bn_mode == "eval"
    assert np.all(res.embedding >= 0) and res.embedding.max() > 0
    if REFERENCE.is_file():  # the published layout counts the same filters
        with np.load(REFERENCE) as z:
            key = next(k for k in z.files if k.endswith("/hessian"))
            assert z[key].shape == res.embedding.shape


def test_efficientnet_lite0_layout():
    names, sizes = embedding_layout(timm.create_model("efficientnet_lite0", pretrained=False))
    assert sum(sizes) == 42016 and len(names) == 98
    assert "classifier" not in names and names[0] == "conv_stem"


def test_same_source_closer_than_other_domain(probe):
    # 256 draws: at 64 the plain cosine is too noisy to order these reliably (seeds 1, 2 failed).
    c = cfg(samples=256, batch_size=64)
    a = task2vec(*digits([0, 1, 2, 3, 4]), c, model=probe).embedding
    b = task2vec(*digits([5, 6, 7, 8, 9]), c, model=probe).embedding
    t = task2vec(*textures(), c, model=probe).embedding
    for dist in (cosine_distance, normalized_cosine_distance):
        assert dist(a, b) < dist(a, t) and dist(a, b) < dist(b, t), dist.__name__
    m = distance_matrix([a, b, t], "cosine")
    assert np.allclose(m, m.T) and np.all(np.diag(m) == 0) and m[0, 1] == pytest.approx(cosine_distance(a, b))


def _head_and_prep(probe, images, labels, n_classes):
    prep = Preprocess(probe, 32)
    feats = probe_features(probe, images, prep, 32)
    head, _ = fit_head(feats, labels, n_classes, 2, 1e-3, 0.0, 32, seed=0)
    return head, prep


def test_fisher_labels_come_from_the_model_not_the_ground_truth(probe):
    images, labels, n = digits([0, 1, 2, 3], n_per_class=8)
    head, prep = _head_and_prep(probe, images, labels, n)

    def run(y):
        return montecarlo_fisher(probe, head, images, y, n, prep, 32, 16, seed=3)[0]

    # Equal class sizes: the balanced draws are the same whatever the labels; with the head fixed,
    # shuffled ground truth must not change the result (it would if the loss used it).
    shuffled = np.random.default_rng(1).permutation(labels)
    assert not np.array_equal(shuffled, labels)
    assert np.array_equal(run(labels), run(shuffled))
    # A head certain of class 0 samples only class 0: the loss and its gradients vanish, although
    # three quarters of the ground truth disagree with it.
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([60.0, 0.0, 0.0, 0.0]))
    assert np.abs(run(labels)).max() < 1e-20


def test_seeded_and_deterministic(probe):
    images, labels, n = digits([0, 1, 2], n_per_class=10)
    a = task2vec(images, labels, n, cfg(seed=5, samples=32), model=probe).embedding
    b = task2vec(images, labels, n, cfg(seed=5, samples=32), model=probe).embedding
    c = task2vec(images, labels, n, cfg(seed=6, samples=32), model=probe).embedding
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_normalized_cosine_rescales_each_pair():
    a, b = np.array([1.0, 100.0, 0.0]), np.array([3.0, 100.0, 1.0])
    s = a + b + 1e-8
    x, y = a / s, b / s
    assert normalized_cosine_distance(a, b) == pytest.approx(1 - x @ y / np.linalg.norm(x) / np.linalg.norm(y))
    assert cosine_distance(a, b) == pytest.approx(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert cosine_distance(a, 7 * a) == pytest.approx(0.0, abs=1e-12)
    assert normalized_cosine_distance(a, b) > cosine_distance(a, b)  # the large shared filter no longer dominates


def test_cli_embed_and_distances(tmp_path, capsys):
    conf = json.dumps({"input_size": 16, "samples": 8, "batch_size": 4, "head_epochs": 1})
    outs = []
    for i, task in enumerate(("alpha", "beta", "gamma")):
        h5 = write_task_h5(tmp_path / f"tasks/{task}/data.h5", n_classes=3, n_train=12, n_test=6,
                           size=12, channels=1 + 2 * (i == 2), seed=i, task=task)
        out = tmp_path / f"t2v/{task}.npz"
        assert main(["embed", "--task-h5", str(h5), "--task", task, "--out", str(out), "--config", conf,
                     "--seed", "0", "--device", "cpu", "--no-progress"]) == 0
        outs.append(out)
    with np.load(outs[0]) as z:
        assert z["embedding"].dtype == np.float32 and z["embedding"].shape == (42016,)
        assert int(z["layer_sizes"].sum()) == 42016 and len(z["layer_names"]) == len(z["layer_sizes"])
        assert str(z["bn_mode"]) == "eval" and str(z["probe"]) == "efficientnet_lite0"
    rec = json.loads(meta_path(outs[0]).read_text())
    assert rec["stage"] == "task2vec" and rec["params"]["bn_mode"] == "eval" and len(rec["inputs"]) == 2
    tsv, png = tmp_path / "t2v/distances.tsv", tmp_path / "t2v/distances.png"
    files = [str(p) for p in outs] + [str(meta_path(outs[0]))]  # a shell glob also catches records
    assert main(["distances", *files, "--tsv", str(tsv), "--png", str(png), "--seen", "alpha", "beta",
                 "--unseen", "gamma"]) == 0
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    assert rows[0] == ["task_a", "task_b", "cosine", "normalized_cosine"] and len(rows) == 1 + 9
    assert png.stat().st_size > 0 and meta_path(tsv).is_file()
    capsys.readouterr()
    missing = tmp_path / "tasks/none/data.h5"
    assert main(["embed", "--task-h5", str(missing), "--task", "none", "--out", str(tmp_path / "none.npz"),
                 "--config", "{}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {missing}: no such task file"]
