"""imagefolder and hdf5 sources, bad-input errors and the tasks CLI (fixtures made in tmp_path)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from task2sim.cli import tasks as cli
from task2sim.provenance import meta_path
from task2sim.tasks import TaskDataError, load_task_h5, prepare_task, task_settings, write_task_h5

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 40, 230)}


def _make_folder(root: Path, per_class: int = 6, size=(20, 14), ext: str = ".png",
                 classes=COLOURS) -> Path:
    rng = np.random.default_rng(0)
    for name, rgb in classes.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = np.clip(np.array(rgb) + rng.normal(0, 10, (size[1], size[0], 3)), 0, 255)
            Image.fromarray(arr.astype(np.uint8)).save(d / f"img{i}{ext}")
    return root


def _run_cli(tmp_path, settings: dict, task: str = "mine") -> tuple[int, Path]:
    out = tmp_path / "out" / "data.h5"
    code = cli.main(["--task", task, "--config", json.dumps(settings), "--seed", "0",
                     "--out", str(out), "--preview", str(out.with_name("preview.png"))])
    return code, out


def test_imagefolder_without_split_is_split_stratified(tmp_path):
    root = _make_folder(tmp_path / "imgs", per_class=10)
    # A sub-folder and a hidden file inside a class are fine; mixed formats too.
    (root / "red" / "more").mkdir()
    Image.new("RGB", (20, 14), (200, 0, 0)).save(root / "red" / "more" / "x.jpg")
    (root / "red" / ".DS_Store").write_bytes(b"\0")
    task, inputs = prepare_task("mine", task_settings(dict(source="imagefolder", path=str(root),
                                                     test_fraction=0.3)), seed=0)
    assert task.class_names == ["blue", "green", "red"]
    assert task.image_shape == (14, 20, 3)
    assert np.bincount(task.test_labels).tolist() == [3, 3, 3]
    assert np.bincount(task.train_labels).tolist() == [7, 7, 8]
    # Colours survive: the red class is red.
    red = task.train_images[task.train_labels == 2].reshape(-1, 3).mean(0)
    assert red[0] > 150 and red[1] < 80
    assert len(inputs) == 31 and all(Path(p).is_file() for p in inputs)


def test_imagefolder_with_split_folders_uses_them(tmp_path):
    _make_folder(tmp_path / "ds" / "train", per_class=5)
    _make_folder(tmp_path / "ds" / "test", per_class=2, ext=".bmp")
    task, _ = prepare_task("mine", task_settings(dict(source="imagefolder", path=str(tmp_path / "ds"),
                                                image_size=16)), seed=0)
    assert "own train/ and test/" in task.attrs["split"]
    assert len(task.train_labels) == 15 and len(task.test_labels) == 6
    assert task.image_shape == (16, 16, 3)


def test_imagefolder_grey_images_stay_one_channel_and_mixed_sizes_need_image_size(tmp_path):
    root = tmp_path / "grey"
    for c, v in (("dark", 30), ("light", 220)):
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (10 + i, 10), v).save(root / c / f"{i}.png")
    with pytest.raises(TaskDataError, match="images differ in size .* set 'image_size'"):
        prepare_task("g", task_settings(dict(source="imagefolder", path=str(root))), 0)
    task, _ = prepare_task("g", task_settings(dict(source="imagefolder", path=str(root), image_size=8)), 0)
    assert task.image_shape == (8, 8, 1)


@pytest.mark.parametrize("breakage,message", [
    ("missing", "image folder not found: {root}"),
    ("empty_class", "class folder has no images: {root}/green"),
    ("corrupt", "not a readable image: {root}/red/img0.png"),
    ("text_file", "not an image file: {root}/blue/notes.txt"),
    ("single_class", "path {root}): a task needs at least 2 classes, found 1 (red)"),
    ("test_lacks_class", "class 'red' has no images in {root}/test"),
])
def test_imagefolder_errors_are_one_line_and_leave_no_file(tmp_path, capsys, breakage, message):
    root = tmp_path / "imgs"
    if breakage == "test_lacks_class":
        _make_folder(root / "train")
        _make_folder(root / "test", classes={k: v for k, v in COLOURS.items() if k != "red"})
    elif breakage != "missing":
        _make_folder(root, classes={"red": COLOURS["red"]} if breakage == "single_class" else COLOURS)
    if breakage == "empty_class":
        for f in (root / "green").iterdir():
            f.unlink()
    if breakage == "corrupt":
        (root / "red" / "img0.png").write_bytes(b"\x89PNG not really")
    if breakage == "text_file":
        (root / "blue" / "notes.txt").write_text("hello")
    code, out = _run_cli(tmp_path, {"source": "imagefolder", "path": str(root)})
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message.format(root=root) in err
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_truncated_image_is_named_when_decoded(tmp_path):
    root = _make_folder(tmp_path / "imgs", per_class=3)
    good = (root / "red" / "img1.png").read_bytes()
    (root / "red" / "img1.png").write_bytes(good[: len(good) // 2])  # header fine, data cut
    with pytest.raises(TaskDataError, match=r"not a readable image: .*red/img1.png"):
        prepare_task("t", task_settings(dict(source="imagefolder", path=str(root), max_train=1000)), 0)


@pytest.mark.parametrize("settings,message", [
    ({"source": "imagefolder"}, "source imagefolder needs 'path'"),
    ({"source": "hdf5"}, "source hdf5 needs 'path'"),
    ({"source": "nosuch"}, "source: 'nosuch' is not one of"),
    ({"source": "digits8", "max_trian": 3}, "unknown key 'max_trian'"),
    ({"source": "hdf5", "path": "/nonexistent/t.h5"}, "task file not found: /nonexistent/t.h5"),
])
def test_cli_config_errors(tmp_path, capsys, settings, message):
    code, out = _run_cli(tmp_path, settings)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists()


def test_hdf5_source_validates_and_applies_caps(tmp_path, capsys):
    rng = np.random.default_rng(0)
    xtr = rng.integers(0, 256, (40, 16, 16, 1), dtype=np.uint8)
    xte = rng.integers(0, 256, (20, 16, 16, 1), dtype=np.uint8)
    src = write_task_h5(tmp_path / "in.h5", xtr, np.arange(40) % 4, xte, np.arange(20) % 4,
                        list("abcd"), {"task": "orig", "source": "x", "licence": "CC0",
                                       "split": "given", "kind": "noise", "seed": 0})
    code, out = _run_cli(tmp_path, {"source": "hdf5", "path": str(src), "max_train": 8,
                                    "max_test": 4, "image_size": 8})
    assert code == 0
    t = load_task_h5(out)
    assert t.class_names == list("abcd") and t.attrs["task"] == "mine"
    assert np.bincount(t.train_labels).tolist() == [2, 2, 2, 2]
    assert len(t.test_labels) == 4 and t.image_shape == (8, 8, 1)
    meta = json.loads(meta_path(out).read_text())
    assert meta["params"]["source"] == "hdf5" and meta["seeds"] == {"seed": 0}
    assert str(src) in meta["inputs"] and len(meta["inputs"][str(src)]) == 64
    assert meta["extra"]["n_train"] == 8
    # A file out of layout is refused with its path and the missing field.
    import h5py
    with h5py.File(src, "a") as f:
        del f["class_names"]
    capsys.readouterr()
    code, out2 = _run_cli(tmp_path / "again", {"source": "hdf5", "path": str(src)})
    assert code == 2 and not out2.exists()
    assert f"{src}: missing dataset 'class_names'" in capsys.readouterr().err


def test_cli_writes_all_three_outputs(tmp_path, capsys):
    code, out = _run_cli(tmp_path, {"source": "digits8", "max_train": 50, "max_test": 20}, task="d8")
    assert code == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["data.h5", meta_path(out).name, "preview.png"]
    with Image.open(out.with_name("preview.png")) as im:
        assert im.size[0] > 300 and im.size[1] > 300
    meta = json.loads(meta_path(out).read_text())
    for key in ("stage", "git", "params", "seeds", "inputs", "outputs", "packages", "started", "finished"):
        assert key in meta
    assert meta["stage"] == "tasks" and any(p.endswith("digits.csv.gz") for p in meta["inputs"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n_train"] == 50 and summary["n_classes"] == 10


def test_large_images_are_decoded_reduced_or_refused(tmp_path, monkeypatch):
    from task2sim.tasks import common

    Image.new("RGB", (400, 300), (10, 200, 30)).save(tmp_path / "big.jpg", quality=90)
    Image.new("RGB", (400, 300), (10, 200, 30)).save(tmp_path / "big.png")
    # Thresholds scaled down so the test needs no 100-megapixel fixture.
    monkeypatch.setattr(common, "MAX_DECODE_PIXELS", 10_000)
    monkeypatch.setattr(common, "REFUSE_PIXELS", 50_000)
    small = common.decode_image(tmp_path / "big.jpg", 32)
    assert small.shape == (32, 32, 3) and small[..., 1].mean() > 150
    with pytest.raises(TaskDataError, match=r"too large to decode safely \(400x300\): .*big.png"):
        common.decode_image(tmp_path / "big.png", 32)
    monkeypatch.setattr(common, "REFUSE_PIXELS", 200_000)
    assert common.decode_image(tmp_path / "big.png", None).shape == (300, 400, 3)
