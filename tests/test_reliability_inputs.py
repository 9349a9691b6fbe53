"""Bad inputs at the stage CLIs: one line ``error: ...`` naming the culprit, exit code 2, and no
output written or overwritten (README, Reliability).

Some cases live beside the code they exercise and are not repeated here: image folders with an
empty class, a corrupt image, a non-image file or one class (tests/test_tasks_local.py), a backbone
of the wrong architecture at the library level (tests/test_train.py), Task2Vec files of different
dimensions at the policy CLI (tests/test_policy.py), a TDW port with no build at the backend
(tests/test_tdw_backend.py), typos in config.yaml (tests/test_workflow.py).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO
from fixtures_h5 import write_render_h5, write_task_h5

SENTINEL = b"previous result, must survive a failed run\n"


def one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def sentinel(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SENTINEL)
    return path


def unchanged(*paths: Path) -> bool:
    return all(p.read_bytes() == SENTINEL for p in paths)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if p.is_file()]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny task, a tiny render and a backbone trained one epoch on it."""
    from task2sim.config import config_from_dict
    from task2sim.train.pretrain import PretrainConfig, pretrain

    d = tmp_path_factory.mktemp("inputs")
    render = write_render_h5(d / "render.h5", n_classes=4, per_class=8, size=16, bits="00000001")
    task = write_task_h5(d / "task.h5", n_classes=3, n_train=12, n_test=6, size=16)
    cfg = config_from_dict(PretrainConfig, {"model": "t2s_resnet18_w8", "epochs": 1, "warmup_epochs": 0,
                                            "batch_size": 16, "amp": False}, "pretrain", seed=0, device="cpu")
    pretrain(cfg, render, d / "pre", progress=False)
    return {"dir": d, "render": render, "task": task, "model": d / "pre" / "model.pt"}


# --- configuration -----------------------------------------------------------------------------

def _stage_argv(stage: str, files: dict, tmp: Path, config: str) -> list[str]:
    d = files["dir"]
    if stage == "evaluate" and config == "{}":
        config = '{"val_fraction": 0.3, "epochs": 1, "lrs": [0.1]}'
    return {
        "pretrain": ["--images", str(files["render"]), "--out-dir", str(tmp / "o"), "--config", config],
        "reward": ["knn", "--model", str(files["model"]), "--bits", "00000001", "--task", "t",
                   "--task-h5", str(files["task"]), "--out", str(tmp / "o" / "t.json"), "--config", config],
        "task2vec": ["embed", "--task-h5", str(files["task"]), "--task", "t", "--out", str(tmp / "o" / "t.npz"),
                     "--config", config],
        "evaluate": ["--method", "linear", "--source", "x", "--task", "t", "--task-h5", str(files["task"]),
                     "--model", str(files["model"]), "--out", str(tmp / "o" / "t.json"), "--config", config],
        "render": ["dataset", "--bits", "00000001", "--out", str(tmp / "o" / "images.h5"),
                   "--preview", str(tmp / "o" / "p.png"), "--config", config],
        "tasks": ["--task", "t", "--out", str(tmp / "o" / "data.h5"), "--preview", str(tmp / "o" / "p.png"),
                  "--config", config],
        "asg": ["policy", "--source", str(d / "render.h5"), "--out", str(tmp / "o" / "policy.pt"),
                "--figure", str(tmp / "o" / "f.png"), "--config", config],
    }[stage]


STAGES = ("pretrain", "reward", "task2vec", "evaluate", "render", "tasks", "asg")


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("config,needle", [('{"bogus_key": 1}', "unknown key 'bogus_key'"),
                                           ('{"epochs": "five", "k": "five", "samples": "five", '
                                            '"classes": "five", "max_train": "five"}', "'five'")])
def test_unknown_or_mistyped_key_fails_before_any_work(stage, config, needle, files, tmp_path, capsys):
    import importlib

    mod = importlib.import_module(f"task2sim.cli.{stage}")
    if stage == "tasks" and "bogus" not in config:
        config = '{"source": "digits8", "max_train": "five"}'
    elif stage == "tasks":
        config = '{"source": "digits8", "bogus_key": 1}'
    elif "five" in config:  # only this stage's key, so the message names it
        key = {"pretrain": "epochs", "reward": "k", "task2vec": "samples", "evaluate": "epochs",
               "render": "classes", "asg": "epochs"}[stage]
        config = json.dumps({key: "five"})
    t0 = time.monotonic()
    assert mod.main(_stage_argv(stage, files, tmp_path, config)) == 2
    one_error_line(capsys, needle)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    assert time.monotonic() - t0 < 30


# --- configuration strings ---------------------------------------------------------------------

@pytest.mark.parametrize("bits", ["0101", "0000000x", "000000011"])
def test_malformed_bits_are_refused(bits, files, tmp_path, capsys):
    from task2sim.cli import render, reward

    argv = _stage_argv("render", files, tmp_path, "{}")
    argv[argv.index("--bits") + 1] = bits
    assert render.main(argv) == 2
    one_error_line(capsys, repr(bits))
    argv = _stage_argv("reward", files, tmp_path, "{}")
    argv[argv.index("--bits") + 1] = bits
    assert reward.main(argv) == 2
    one_error_line(capsys, repr(bits))
    assert not (tmp_path / "o").exists()


def test_reward_bits_must_match_the_backbones_render(files, tmp_path, capsys):
    """The backbone was trained on the 00000001 render: scoring it as another configuration would
    put its reward in the wrong cell of the table."""
    from task2sim.cli import reward

    argv = _stage_argv("reward", files, tmp_path, "{}")
    argv[argv.index("--bits") + 1] = "10000000"
    out = sentinel(tmp_path / "o" / "t.json")
    assert reward.main(argv) == 2
    one_error_line(capsys, "10000000", "00000001", str(files["model"]))
    assert unchanged(out)


def test_workflow_refuses_sources_outside_the_run(workflow):
    import yaml

    cfg = yaml.safe_load((workflow.root / "config.yaml").read_text())
    cfg["evaluate"]["sources"] = ["01000000"]  # bit 1 is not varied by the default run
    workflow.write_config(cfg)
    res = workflow.run("-n")
    assert res.returncode != 0
    assert "invalid configuration: evaluate.sources: 01000000 is not one of this run's configurations" in (
        res.stdout + res.stderr)


# --- HDF5 and checkpoints ----------------------------------------------------------------------

def _truncated(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def _foreign(dst: Path) -> Path:
    with h5py.File(dst, "w") as f:
        f.create_dataset("something/else", data=np.zeros(3))
    return dst


@pytest.mark.parametrize("kind", ["truncated", "foreign", "not_hdf5"])
def test_bad_task_file_at_every_reader(kind, files, tmp_path, capsys):
    from task2sim.cli import evaluate, reward, task2vec, tasks

    bad = tmp_path / "bad.h5"
    if kind == "truncated":
        _truncated(files["task"], bad)
    elif kind == "foreign":
        _foreign(bad)
    else:
        bad.write_text("task,label\nx,1\n")
    for mod, stage, out_name in ((reward, "reward", "t.json"), (task2vec, "task2vec", "t.npz"),
                                 (evaluate, "evaluate", "t.json")):
        argv = _stage_argv(stage, files, tmp_path, "{}")
        argv[argv.index("--task-h5") + 1] = str(bad)
        out = sentinel(tmp_path / "o" / out_name)
        assert mod.main(argv) == 2, stage
        one_error_line(capsys, str(bad))
        assert unchanged(out)
    # the hdf5 task source (a user's own file)
    out = sentinel(tmp_path / "o" / "data.h5")
    argv = _stage_argv("tasks", files, tmp_path, json.dumps({"source": "hdf5", "path": str(bad)}))
    assert tasks.main(argv) == 2
    one_error_line(capsys, str(bad))
    assert unchanged(out)


@pytest.mark.parametrize("kind", ["truncated", "foreign", "task_file", "incomplete"])
def test_bad_render_file_at_pretrain(kind, files, tmp_path, capsys):
    from task2sim.cli import pretrain

    bad = tmp_path / "bad.h5"
    if kind == "truncated":
        _truncated(files["render"], bad)
    elif kind == "foreign":
        _foreign(bad)
    elif kind == "task_file":
        bad.write_bytes(files["task"].read_bytes())
    else:
        write_render_h5(bad, n_classes=4, per_class=4, size=16, complete=False)
    model = sentinel(tmp_path / "o" / "model.pt")
    argv = _stage_argv("pretrain", files, tmp_path, '{"model": "t2s_resnet18_w8", "epochs": 1, "warmup_epochs": 0}')
    argv[argv.index("--images") + 1] = str(bad)
    assert pretrain.main(argv) == 2
    one_error_line(capsys, str(bad))
    assert unchanged(model)


@pytest.mark.parametrize("kind", ["wrong_architecture", "truncated", "plain_state_dict"])
def test_bad_checkpoint_at_reward_and_evaluate(kind, files, tmp_path, capsys):
    import torch

    from task2sim.cli import evaluate, reward

    bad = tmp_path / "bad.pt"
    ckpt = torch.load(files["model"], map_location="cpu", weights_only=True)
    if kind == "wrong_architecture":
        ckpt["pretrained_cfg"]["architecture"] = "t2s_resnet18_w32s4"
        torch.save(ckpt, bad)
    elif kind == "truncated":
        _truncated(files["model"], bad)
    else:
        torch.save(ckpt["state_dict"], bad)
    for mod, stage in ((reward, "reward"), (evaluate, "evaluate")):
        argv = _stage_argv(stage, files, tmp_path, "{}")
        argv[argv.index("--model") + 1] = str(bad)
        out = sentinel(tmp_path / "o" / "t.json")
        assert mod.main(argv) == 2, stage
        one_error_line(capsys, str(bad))
        assert unchanged(out)


# --- reward tables and Task2Vec files ------------------------------------------------------------

def _policy_inputs(tmp_path: Path, dims=(8, 8, 8)) -> list[str]:
    from task2sim.reward.table import write_table_tsv

    rng = np.random.default_rng(0)
    write_table_tsv({t: {b: float(rng.uniform(10, 90)) for b in ("00000000", "00000001")} for t in "ab"},
                    tmp_path / "table.tsv")
    paths = []
    for t, d in zip("abc", dims):
        p = tmp_path / f"{t}.npz"
        np.savez(p, embedding=rng.random(d).astype(np.float32), layer_names=np.array(["l0"]),
                 layer_sizes=np.array([d]))
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("damage,needle", [
    ("missing_cell", "b"),
    ("nan", "nan"),
    ("inf", "inf"),
    ("text", "lots"),
])
def test_reward_table_with_holes_or_nan_is_refused(damage, needle, tmp_path, capsys):
    from task2sim.cli import policy

    paths = _policy_inputs(tmp_path)
    table = tmp_path / "table.tsv"
    lines = table.read_text().splitlines()
    if damage == "missing_cell":
        lines = [ln for ln in lines if not ln.startswith("b\t00000001")]
    else:
        value = {"nan": "nan", "inf": "inf", "text": "lots"}[damage]
        lines = [ln if not ln.startswith("b\t00000001") else f"b\t00000001\t{value}" for ln in lines]
    table.write_text("\n".join(lines) + "\n")
    out = sentinel(tmp_path / "p" / "predictions.tsv")
    rc = policy.main(["--table", str(table), "--task2vec", *paths, "--seen", "a", "b", "--unseen", "c",
                      "--out-dir", str(tmp_path / "p"), "--config", '{"methods": ["similarity"]}'])
    assert rc == 2
    line = one_error_line(capsys, str(table))
    assert needle in line
    assert unchanged(out)


def test_task2vec_files_of_different_dimensions_at_distances(tmp_path, capsys):
    from task2sim.cli import task2vec

    paths = _policy_inputs(tmp_path, dims=(8, 8, 9))
    tsv = sentinel(tmp_path / "d.tsv")
    assert task2vec.main(["distances", *paths, "--tsv", str(tsv), "--png", str(tmp_path / "d.png"),
                          "--seen", "a", "b", "--unseen", "c"]) == 2
    one_error_line(capsys, "'c' has 9")
    assert unchanged(tsv)


# --- resources -----------------------------------------------------------------------------------

def _subprocess_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src")}


def test_oversized_png_is_refused_with_bounded_memory(tmp_path):
    """A 9600 x 9600 PNG (92 megapixels, a few hundred KB on disk like openclipart's largest):
    refused by its header, never decoded, so the stage's memory stays far below the 92-270 MB a
    decode would take."""
    from PIL import Image

    root = tmp_path / "imgs"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), 40 + 100 * (c == "b")).save(root / c / f"{i}.png")
    big = root / "a" / "huge.png"
    Image.new("1", (9600, 9600), 1).save(big)
    assert big.stat().st_size < 2_000_000
    out = tmp_path / "o" / "data.h5"
    # the stage's own peak memory, reported by the stage process itself (VmHWM: unlike ru_maxrss
    # it does not carry over the forking parent's peak across exec)
    wrapper = ("import runpy, sys\n"
               "try:\n    runpy.run_module('task2sim.cli.tasks', run_name='__main__')\n"
               "finally:\n    print('peak_kb', next(ln.split()[1] for ln in open('/proc/self/status')"
               " if ln.startswith('VmHWM')), file=sys.stderr)")
    cmd = [sys.executable, "-c", wrapper, "--task", "t", "--out", str(out), "--preview",
           str(tmp_path / "o" / "p.png"), "--config", json.dumps({"source": "imagefolder", "path": str(root),
                                                                  "image_size": 8})]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_subprocess_env(), timeout=600)
    assert res.returncode == 2, res.stderr
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("error:")] == [
        f"error: image too large to decode safely (9600x9600): {big}"], res.stderr
    assert not out.exists()
    peak_mb = int(res.stderr.rsplit("peak_kb ", 1)[1].split()[0]) / 1024
    print(f"stage peak memory with a 92-megapixel PNG: {peak_mb:.0f} MB")
    assert peak_mb < 600, peak_mb


def test_tdw_render_with_no_build_times_out(tmp_path):
    """The whole render stage on the TDW backend with nothing listening: one line, exit 2, in
    seconds (not a hang)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {"backend": "tdw", "tdw_port": port, "tdw_timeout_s": 2, "classes": 2, "images_per_class": 2,
           "image_size": 32, "meshes_per_class": 1}
    out = tmp_path / "o" / "images.h5"
    cmd = [sys.executable, "-m", "task2sim.cli.render", "dataset", "--bits", "00000000", "--out", str(out),
           "--preview", str(tmp_path / "o" / "p.png"), "--config", json.dumps(cfg),
           "--runtime", json.dumps({"cache_dir": str(REPO / ".cache" / "assets")})]
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, env=_subprocess_env(), timeout=600)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(port) in last, last
    assert time.monotonic() - t0 < 90
    assert not out.exists()


def _limit_file_size(limit: int):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


@pytest.mark.parametrize("stage", ["tasks", "reward_aggregate"])
def test_full_disk_while_writing_leaves_no_partial_file(stage, tmp_path):
    """Writes that hit the file-size limit (a full disk, as the stage sees it): one line, exit 2,
    no half-written output and no temporary file left behind."""
    out_dir = tmp_path / "o"
    if stage == "tasks":
        out = out_dir / "data.h5"
        cmd = [sys.executable, "-m", "task2sim.cli.tasks", "--task", "t", "--out", str(out), "--preview",
               str(out_dir / "p.png"), "--config", json.dumps({"source": "digits8", "max_train": 500})]
        limit = 8_000
    else:
        from task2sim.io import write_json

        inputs = []
        for t in range(40):
            for b in ("00000000", "00000001"):
                p = tmp_path / "r" / b / f"task{t}.json"
                write_json(p, {"task": f"task{t}", "bits": b, "knn5_top1": 50.0 + t, "k": 5})
                inputs.append(str(p))
        out = out_dir / "table.tsv"
        cmd = [sys.executable, "-m", "task2sim.cli.reward", "aggregate", "--tsv", str(out), *inputs]
        limit = 1_000
    res = subprocess.run(cmd, capture_output=True, text=True, env=_subprocess_env(), timeout=600,
                         preexec_fn=_limit_file_size(limit))
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "File too large" in last, last
    assert not out.exists()
    assert not out_dir.exists() or no_temp_files(out_dir)
