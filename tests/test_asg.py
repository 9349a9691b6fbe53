"""ASG: proxy-guidance KL, frozen BatchNorm statistics, the REINFORCE update, the policy's scales
in the optimiser, class matching by name, and the CLI end to end on a tiny model."""

import json

import h5py
import pytest
import timm
import torch
from fixtures_h5 import write_render_h5, write_task_h5

from task2sim.asg.data import ClassMismatch, Split, load_renders, load_target, match_classes
from task2sim.asg.model import ASGNet, asg_loss, backbone_groups, layer_groups, proxy_kl
from task2sim.asg.policy import SCALES, LRPolicy, MovingBaseline, observation, reinforce_update, returns_to_go
from task2sim.asg.train import ASGConfig, Fit, PolicyDriver, RandomDriver
from task2sim.backbones.models import load_backbone
from task2sim.config import config_from_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = {"model": "resnet10t", "input_size": 32, "epochs": 1, "batch_size": 8, "lr": 0.05,
        "probe_size": 32, "policy_window": 2, "policy_unroll": 2, "policy_episodes": 1,
        "policy_episode_epochs": 1, "eval_batch_size": 64}



def tiny_imagenet(n_out=20, seed=0):
    torch.manual_seed(seed)
    return timm.create_model("resnet10t", num_classes=n_out).eval()


def tiny_cfg(**kw):
    return config_from_dict(ASGConfig, {**TINY, **kw}, "asg", device="cpu")


def toy_split(n=32, n_classes=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8),
                 torch.arange(n) % n_classes)


def test_kl_is_zero_at_init_and_positive_after_a_backbone_step():
    net = ASGNet(tiny_imagenet(), n_classes=4)
    x = torch.randn(6, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    out = net(x)
    assert float(proxy_kl(out["imagenet_logits"], out["teacher_logits"]).detach()) == pytest.approx(0.0, abs=1e-6)
    loss, _ = asg_loss(out, y, kl_lambda=0.1)
    opt = torch.optim.SGD(net.backbone_parameters(), lr=0.5)
    loss.backward()
    opt.step()
    with torch.no_grad():
        out = net(x)
    assert float(proxy_kl(out["imagenet_logits"], out["teacher_logits"])) > 1e-4
    # the teacher and the ImageNet head did not move
    for a, b in zip(net.teacher.get_classifier().parameters(), net.student.get_classifier().parameters()):
        assert torch.equal(a, b)


def test_kl_direction_is_teacher_to_student():
    s, t = torch.randn(3, 7), torch.randn(3, 7)
    ps, pt = s.softmax(1), t.softmax(1)
    expected = (pt * (pt.log() - ps.log())).sum(1).mean()
    assert float(proxy_kl(s, t)) == pytest.approx(float(expected), rel=1e-5)


def test_batchnorm_statistics_stay_frozen_during_training():
    cfg = tiny_cfg()
    fit = Fit(tiny_imagenet(), 4, cfg, "proxy", 0.1, toy_split(), seed=0, device=torch.device("cpu"))
    fit.net.train()  # must not switch BatchNorm to batch statistics
    bufs = {k: v.clone() for k, v in fit.net.student.state_dict().items() if "running" in k}
    w0 = fit.net.student.conv1[0].weight.detach().clone()
    for _ in range(3):
        fit.step()
    after = fit.net.student.state_dict()
    assert bufs and all(torch.equal(v, after[k]) for k, v in bufs.items())
    assert not torch.equal(w0, fit.net.student.conv1[0].weight)
    assert not any(m.training for m in fit.net.modules())


def test_layer_groups_follow_resolution_changes():
    names = [g for g, _ in backbone_groups(tiny_imagenet())]
    assert names == ["stem", "layer1", "layer2", "layer3", "layer4"]
    eff = timm.create_model("efficientnet_lite0", num_classes=10)
    assert [g for g, _ in backbone_groups(eff)] == ["stem", "s4", "s8", "s16", "s32", "head"]
    net = ASGNet(tiny_imagenet(), 4)
    groups = layer_groups(net)
    assert groups[-1][0] == "new_head"
    ids = [id(p) for _, ps in groups for p in ps]
    clf = {id(p) for p in net.student.get_classifier().parameters()}
    assert len(ids) == len(set(ids)) and not clf & set(ids)
    assert set(ids) | clf == {id(p) for p in net.student.parameters()} | {id(p) for p in net.new_head.parameters()}


def test_reinforce_moves_probability_toward_the_better_action():
    torch.manual_seed(0)
    pol = LRPolicy(n_groups=1)
    opt = torch.optim.Adam(pol.parameters(), lr=0.05)
    base = MovingBaseline(length=4, momentum=0.5)
    obs = observation(1.0, 0.1, 0.0, torch.zeros(2, 2), [1.0])
    best = len(SCALES) - 1

    def p_best():
        with torch.no_grad():
            return float(pol.distributions(obs)[0][0].probs[best])

    p0 = p_best()
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        logps, ents, rewards, state = [], [], [], None
        for _ in range(4):
            scales, lp, ent, state = pol.act(obs, state, generator=gen)
            logps.append(lp)
            ents.append(ent)
            rewards.append(1.0 if scales[0] == SCALES[best] else 0.0)
        reinforce_update(opt, base, logps, ents, rewards)
    assert p_best() > p0 + 0.2


def test_returns_to_go():
    assert returns_to_go([1.0, 2.0, 3.0]).tolist() == [6.0, 5.0, 3.0]


def test_base_rates_of_each_method():
    cfg = tiny_cfg(lr=0.1, backbone_lr_scale=0.1)

    def rates(method):
        fit = Fit(tiny_imagenet(), 4, cfg, method, 0.0, toy_split(), seed=0, device=torch.device("cpu"))
        return [pg["lr"] for pg in fit.opt.param_groups]

    assert rates("all_lr") == pytest.approx([0.1] * 6)
    assert rates("split_lr") == rates("proxy") == pytest.approx([0.01] * 5 + [0.1])
    assert rates("head_only") == pytest.approx([0.0] * 5 + [0.1])


@pytest.mark.parametrize("method", ["asg", "random_lr"])
def test_policy_actions_set_every_group_rate_to_one_base_times_its_scale(method):
    cfg = tiny_cfg(lr=0.1, backbone_lr_scale=0.1)
    fit = Fit(tiny_imagenet(), 4, cfg, method, 0.1, toy_split(), seed=0, device=torch.device("cpu"))
    assert fit.base_lrs == pytest.approx([0.1] * 6)     # one base rate shared by the groups
    gen = torch.Generator().manual_seed(1)
    if method == "asg":
        probe = (toy_split().images[:8], toy_split().labels[:8])
        drv = PolicyDriver(LRPolicy(len(fit.groups)), fit, probe, total_steps=10, greedy=False, generator=gen)
    else:
        drv = RandomDriver(fit, gen)
    seen = set()
    for step in range(0, 40, 5):
        with torch.no_grad():
            drv.act(step, drv.probe_loss())
        chosen = drv.schedule[-1]
        assert all(chosen[g] in SCALES for g in fit.group_names)
        for pg, name in zip(fit.opt.param_groups, fit.group_names):
            assert pg["name"] == name and pg["lr"] == pytest.approx(0.1 * chosen[name])
        seen.update(chosen[g] for g in fit.group_names)
    assert len(seen) > 3          # the actions vary: the rates are not one fixed schedule


def test_head_only_freezes_the_backbone():
    cfg = tiny_cfg()
    fit = Fit(tiny_imagenet(), 4, cfg, "head_only", 0.0, toy_split(), seed=0, device=torch.device("cpu"))
    before = {k: v.clone() for k, v in fit.net.student.state_dict().items()}
    fit.step()
    assert all(torch.equal(v, fit.net.student.state_dict()[k]) for k, v in before.items())


def test_class_name_mismatch_is_one_line(tmp_path):
    with pytest.raises(ClassMismatch) as e:
        match_classes(["0", "1", "2"], ["0", "1", "7"], "target.h5")
    assert "\n" not in str(e.value) and "target.h5" in str(e.value) and "'7'" in str(e.value)
    assert match_classes(["a", "b", "c"], ["c", "a", "b"], "t").tolist() == [2, 0, 1]


def digit_source(path, n_classes=4, per_class=10):
    write_render_h5(path, n_classes=n_classes, per_class=per_class, size=32)
    with h5py.File(path, "a") as f:
        del f["class_names"]
        f.create_dataset("class_names", data=[str(i) for i in range(n_classes)], dtype=h5py.string_dtype())
    return path


def test_target_labels_follow_source_class_order(tmp_path):
    task = write_task_h5(tmp_path / "task.h5", n_classes=3, n_train=12, n_test=9)
    with h5py.File(task, "a") as f:   # target names in another order than the source's
        del f["class_names"]
        f.create_dataset("class_names", data=["2", "0", "1"], dtype=h5py.string_dtype())
        raw = f["test/labels"][()]
    src = load_renders(digit_source(tmp_path / "src.h5", n_classes=3), 32, 0.25, seed=0)
    tgt = load_target(task, src.class_names, 32)
    assert tgt.images.shape == (9, 3, 32, 32) and tgt.images.dtype == torch.uint8
    assert tgt.labels.tolist() == [[2, 0, 1][r] for r in raw]
    assert len(src.val.labels) == 6 and len(src.train.labels) == 24   # round(0.25 * 10) per class


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("asg")
    src = digit_source(d / "src.h5")
    task = write_task_h5(d / "task.h5", n_classes=4, n_train=8, n_test=16)
    with h5py.File(task, "a") as f:
        del f["class_names"]
        f.create_dataset("class_names", data=["0", "1", "2", "3"], dtype=h5py.string_dtype())
    ckpt = d / "resnet10t.pth"
    torch.save(tiny_imagenet(1000).state_dict(), ckpt)
    return d, src, task, ckpt


def test_cli_policy_finetune_summary(cli_files, capsys):
    from task2sim.asg.report import read_metrics_tsv
    from task2sim.cli import asg as cli

    d, src, task, ckpt = cli_files
    conf = json.dumps({**{k: v for k, v in TINY.items() if k != "eval_batch_size"}, "checkpoint": str(ckpt)})
    rt = json.dumps({"eval_batch_size": 64})
    assert cli.main(["policy", "--source", str(src), "--out", str(d / "policy.pt"), "--figure", str(d / "policy.png"),
                     "--config", conf, "--runtime", rt, "--device", "cpu", "--threads", "1"]) == 0
    assert (d / "policy.meta.json").is_file() and (d / "policy.png").is_file()
    out = d / "run" / "digits"
    assert cli.main(["finetune", "--source", str(src), "--policy", str(d / "policy.pt"), "--target", "digits",
                     "digits_again", "--target-h5", str(task), str(task), "--out-root", str(d / "run"),
                     "--config", conf, "--runtime", rt, "--device", "cpu", "--threads", "1"]) == 0
    again = d / "run" / "digits_again"
    assert (again / "asg" / "metrics.tsv").read_text() == (out / "asg" / "metrics.tsv").read_text()
    for m in ("all_lr", "split_lr", "proxy", "asg", "random_lr", "head_only"):
        rows = read_metrics_tsv(out / m / "metrics.tsv")
        assert [r["epoch"] for r in rows] == [0, 1]
        assert rows[0]["imagenet_agreement"] == 100.0
        meta = json.loads((out / m / "model.meta.json").read_text())
        assert meta["params"]["method"] == m
        ck = torch.load(out / m / "model.pt", map_location="cpu", weights_only=True)
        assert ck["pretrained_cfg"]["new_head"]["class_names"] == ["0", "1", "2", "3"]
        assert ck["new_head"]["weight"].shape[0] == 4
    student, pcfg = load_backbone(out / "asg" / "model.pt")  # the one loader rebuilds the student
    assert pcfg["method"] == "asg" and student.num_classes == 1000
    assert rows[-1]["imagenet_agreement"] == 100.0      # head_only never moves the backbone
    assert (out / "curves.png").is_file() and (out / "schedule.png").is_file()
    assert (out / "asg" / "schedule.tsv").read_text().startswith("step\tstem\t")
    metrics = [str(p) for p in sorted((d / "run").glob("*/*/metrics.tsv"))]
    assert cli.main(["summary", "--root", str(d / "run"), "--out", str(d / "summary.md"), *metrics]) == 0
    text = (d / "summary.md").read_text()
    assert "(d) ASG" in text and "| method |" in text
    assert "**1 run** (default)" in text and "(n 1, no interval)" in text
    assert (d / "summary.meta.json").is_file()


def test_cli_rejects_mismatched_target_in_one_line(cli_files, tmp_path, capsys):
    from task2sim.cli import asg as cli

    _, src, _, ckpt = cli_files
    bad = write_task_h5(tmp_path / "bad.h5", n_classes=4, n_train=8, n_test=8)   # names c0..c3
    conf = json.dumps({**TINY, "checkpoint": str(ckpt), "methods": ["proxy"]})
    capsys.readouterr()
    assert cli.main(["finetune", "--source", str(src), "--target", "bad", "--target-h5", str(bad),
                     "--out-root", str(tmp_path / "o"), "--config", conf, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "class names differ" in err[-1] and str(bad) in err[-1]


def _finetune(d, src, task, policy, out_root, conf, *extra):
    from task2sim.cli import asg as cli

    assert cli.main(["finetune", "--source", str(src), "--policy", str(policy), "--target", "digits",
                     "--target-h5", str(task), "--out-root", str(out_root), "--config", json.dumps(conf),
                     "--device", "cpu", "--threads", "1", *extra]) == 0
    metas = {m: out_root / "digits" / m / "model.meta.json" for m in conf["methods"]}
    return {m: json.loads(p.read_text())["extra"] for m, p in metas.items() if p.is_file()}


@pytest.fixture(scope="module")
def resume_setup(cli_files):
    """Two methods x 2 epochs of 4 steps; the policy acts every 3 steps, so a resume at an epoch
    boundary lands inside one of its windows."""
    from task2sim.cli import asg as cli

    d, src, task, ckpt = cli_files
    conf = {**{k: v for k, v in TINY.items() if k != "eval_batch_size"}, "checkpoint": str(ckpt), "epochs": 2,
            "policy_window": 3, "methods": ["all_lr", "asg"], "policy_act": "sample"}
    policy = d / "resume_policy.pt"
    assert cli.main(["policy", "--source", str(src), "--out", str(policy), "--figure", str(d / "resume_policy.png"),
                     "--config", json.dumps(conf), "--device", "cpu", "--threads", "1"]) == 0
    full = _finetune(d, src, task, policy, d / "full", conf)
    return d, src, task, policy, conf, full


def test_interrupted_finetune_resumes_to_identical_outputs(resume_setup):
    from task2sim.asg.train import CHECKPOINT_DIR

    d, src, task, policy, conf, full = resume_setup
    assert {m: (r["resumed_from_epoch"], r["epochs_run"]) for m, r in full.items()} == {"all_lr": (0, 2),
                                                                                       "asg": (0, 2)}
    cut = d / "cut"
    # stopped after 3 epochs: all_lr trained, asg after its first epoch
    assert _finetune(d, src, task, policy, cut, conf, "--stop-after-epoch", "3") == {}
    assert sorted(p.name for p in (cut / CHECKPOINT_DIR).iterdir()) == ["all_lr.pt", "asg.pt"]
    resumed = _finetune(d, src, task, policy, cut, conf)
    assert {m: (r["resumed_from_epoch"], r["epochs_run"]) for m, r in resumed.items()} == {"all_lr": (2, 0),
                                                                                          "asg": (1, 1)}
    assert not (cut / CHECKPOINT_DIR).exists()
    for m in conf["methods"]:
        # metrics.tsv holds no wall-clock column (timing lives in benchmarks/ and model.meta.json), so
        # a resumed run's metrics are byte-identical too and a summary's provenance hashes match
        for f in ("model.pt", "metrics.tsv", "schedule.tsv") if m == "asg" else ("model.pt", "metrics.tsv"):
            assert (cut / "digits" / m / f).read_bytes() == (d / "full" / "digits" / m / f).read_bytes(), (m, f)


def test_a_method_trains_the_same_whichever_methods_run_beside_it(resume_setup, tmp_path):
    """Each method seeds its own head, data order and policy sampler: asg alone gives the very
    weights, metrics and schedule it gives after all_lr in one job (so a seed's methods may run as
    separate jobs)."""
    import torch

    d, src, task, policy, conf, _ = resume_setup
    _finetune(d, src, task, policy, tmp_path, {**conf, "methods": ["asg"]})
    for f in ("metrics.tsv", "schedule.tsv"):
        assert (tmp_path / "digits" / "asg" / f).read_bytes() == (d / "full" / "digits" / "asg" / f).read_bytes(), f
    a, b = (torch.load(r / "digits" / "asg" / "model.pt", weights_only=True) for r in (tmp_path, d / "full"))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert all(torch.equal(a["new_head"][k], b["new_head"][k]) for k in a["new_head"])


def test_finetune_checkpoint_of_other_config_is_ignored(resume_setup, tmp_path):
    d, src, task, policy, conf, _ = resume_setup
    _finetune(d, src, task, policy, tmp_path, conf, "--stop-after-epoch", "1")
    other = _finetune(d, src, task, policy, tmp_path, {**conf, "lr": 0.02})
    assert {m: (r["resumed_from_epoch"], r["epochs_run"]) for m, r in other.items()} == {"all_lr": (0, 2),
                                                                                        "asg": (0, 2)}


def _planted_runs(diff, seeds=6, sd=1.0):
    """metrics of six seeds where (c) - (b) has mean ``diff`` and (d) - (c) none."""
    import numpy as np
    rng = np.random.default_rng(0)
    runs = {}
    for k in range(seeds):
        b = 50 + 5 * rng.standard_normal()
        acc = {"split_lr": b, "proxy": b + diff + sd * rng.standard_normal(), "random_lr": b}
        acc["asg"] = acc["proxy"] + sd * rng.standard_normal()
        for m, a in acc.items():
            row = {"epoch": 1, "step": 10, "target_acc": a, "target_mean_class_acc": a, "source_val_acc": 90.0,
                   "imagenet_agreement": 50.0}
            runs[(f"seed{k}", "digits", m)] = [{**row, "epoch": 0, "step": 0, "target_acc": 10.0}, row]
    return runs


def test_summary_states_its_runs_and_intervals_cover_a_planted_difference(tmp_path):
    from task2sim.asg.report import plot_seed_curves, summary_markdown
    from task2sim.stats import paired_interval

    text = summary_markdown(_planted_runs(4.0), "planted")
    assert "**6 runs** (seed0, seed1, seed2, seed3, seed4, seed5)" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("- (c)"))
    assert "holds" in line
    lo, hi = (float(x) for x in line.split("[")[1].split("]")[0].split(","))
    assert lo < 4.0 < hi
    # no effect planted: the interval covers 0 in about 95 % of draws
    import numpy as np
    rng = np.random.default_rng(1)
    covered = sum(paired_interval(rng.standard_normal(5) + 2.0).covers(2.0) for _ in range(400))
    assert 360 <= covered <= 397
    assert plot_seed_curves(_planted_runs(4.0), tmp_path / "c.png").is_file()


def test_silhouette_digits_are_white_on_black_and_shaded_renders_keep_their_fingerprint(tmp_path):
    from pathlib import Path

    from task2sim.asg.data import DIGIT_CLASSES
    from task2sim.render import dataset as ds
    from task2sim.render import gl

    ok, why = gl.available()
    if not ok:
        pytest.skip(f"no headless EGL renderer: {why}")
    cache = Path(__file__).resolve().parents[1] / ".cache" / "assets"
    cfg = config_from_dict(ds.RenderConfig, {"classes": 10, "meshes_per_class": 1, "images_per_class": 2,
                                             "image_size": 32, "blur_passes": 4, "cache_dir": str(cache)}, "render")
    shaded = ds.RenderSession(cfg, classes=DIGIT_CLASSES)
    sil = ds.RenderSession(cfg, classes=DIGIT_CLASSES, style="silhouette")
    try:
        pairs = [sil.scene(c, 0, 2 * c, 0, "00000000") for c in range(10)]
        img = sil.render([p[0] for p in pairs], [p[1] for p in pairs])
        assert img.dtype.name == "uint8" and img.shape == (10, 32, 32, 3)
        assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()   # grey
        for x in img[..., 0]:
            assert x[0, 0] == 0 and x.max() == 255 and 0.03 < (x > 127).mean() < 0.6  # a glyph on black
        # the style is part of a render's identity; shaded renders keep the fingerprint they had
        fp = {s.style: ds.render_fingerprint(cfg, "00000000", 0, s) for s in (shaded, sil)}
        assert fp["shaded"] != fp["silhouette"]
        sil.style = "shaded"
        assert ds.render_fingerprint(cfg, "00000000", 0, sil) == fp["shaded"]
    finally:
        shaded.close()
        sil.close()
    with pytest.raises(ValueError, match="moderngl"):
        ds.RenderSession(config_from_dict(ds.RenderConfig, {"backend": "mitsuba", "cache_dir": str(cache)}, "render"),
                         style="silhouette")
