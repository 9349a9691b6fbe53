"""backbones/: the one way a stage loads a feature network (``load_source``) and takes a task's
features from it (``features``), whatever the source: a pre-trained checkpoint, random init or the
ImageNet reference."""

import numpy as np
import pytest
import torch
from fixtures_h5 import write_task_h5

from task2sim.backbones.features import SourceError, features, load_source
from task2sim.backbones.models import create_backbone, save_backbone


def test_a_checkpoint_says_its_architecture_size_and_normalisation(tmp_path):
    torch.manual_seed(0)
    net = create_backbone("t2s_resnet18_w8", num_classes=5)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)  # not ImageNet's: the checkpoint's own must be used
    save_backbone(tmp_path / "model.pt", net, "t2s_resnet18_w8", 24, mean, std, render_bits="00000001")
    bb = load_source("00000001", tmp_path / "model.pt", image_size=99)  # a checkpoint's own size wins
    assert (bb.name, bb.image_size, bb.mean, bb.std) == ("t2s_resnet18_w8", 24, mean, std)
    assert bb.cfg["render_bits"] == "00000001" and bb.checkpoint == str(tmp_path / "model.pt")
    x = torch.rand(2, 3, 24, 24)
    assert bb.model.eval()(x).shape == (2, net.num_features)  # classifier dropped: pooled features


def test_random_init_is_named_by_its_seed_and_features_are_cached_per_backbone(tmp_path):
    h5 = write_task_h5(tmp_path / "t.h5", n_classes=3, n_train=12, n_test=6, size=16, seed=1, task="t")
    a, b = (load_source("scratch", model_name="t2s_resnet18_w8", image_size=16, seed=s) for s in (1, 2))
    cache = tmp_path / "f.npz"
    fa = features(a, h5, cache, device="cpu", progress=False)
    assert fa.train.shape[0] == 12 and fa.test.shape[0] == 6 and fa.n_classes == 3
    net, a.model = a.model, None  # from here a cache hit is the only way seed 1 gets features
    assert np.array_equal(features(a, h5, cache, device="cpu", progress=False).train, fa.train)
    fb = features(b, h5, cache, device="cpu", progress=False)  # seed 2: not seed 1's cache; overwrites it
    assert not np.allclose(fa.train, fb.train)
    with pytest.raises(AttributeError):  # seed 1 misses seed 2's cache and would run its (absent) network
        features(a, h5, cache, device="cpu", progress=False)
    a.model = net
    assert np.array_equal(features(a, h5, device="cpu", progress=False).train, fa.train)


def test_untrained_and_reference_sources_need_an_image_size():
    with pytest.raises(SourceError, match="image size"):
        load_source("scratch", model_name="t2s_resnet18_w8")
    with pytest.raises(SourceError, match="needs its model.pt"):
        load_source("01000100")


def test_the_imagenet_reference_loads_offline_with_its_own_normalisation():
    bb = load_source("imagenet", image_size=32)
    assert bb.name == "efficientnet_lite0" and bb.image_size == 32 and bb.checkpoint is None
    assert len(bb.mean) == 3 and len(bb.std) == 3
    with torch.no_grad():
        assert bb.model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 1280)
