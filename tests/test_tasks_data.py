"""data.h5 writer/reader, split/cap helpers and settings parsing (no Debian packages needed)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from task2sim.tasks import TaskDataError, balanced_quota, load_task_h5, task_settings, write_task_h5
from task2sim.tasks.prepare import balanced_subsample, stratified_split

ATTRS = {"task": "toy", "source": "unit test", "licence": "CC0", "split": "made up", "kind": "noise",
         "seed": 3}


def _arrays(rng, n_tr=12, n_te=6, shape=(5, 7, 3), n_classes=3):
    xtr = rng.integers(0, 256, (n_tr, *shape), dtype=np.uint8)
    xte = rng.integers(0, 256, (n_te, *shape), dtype=np.uint8)
    return xtr, np.arange(n_tr) % n_classes, xte, np.arange(n_te) % n_classes


def test_round_trip_keeps_arrays_names_and_attrs(tmp_path):
    rng = np.random.default_rng(0)
    xtr, ytr, xte, yte = _arrays(rng)
    names = ["é-accent", "b", "c/with slash"]
    path = write_task_h5(tmp_path / "d" / "data.h5", xtr, ytr, xte, yte, names, ATTRS)
    t = load_task_h5(path)
    np.testing.assert_array_equal(t.train_images, xtr)
    np.testing.assert_array_equal(t.test_labels, yte)
    assert t.train_labels.dtype == np.int64 and t.test_labels.dtype == np.int64
    assert t.class_names == names
    assert t.attrs["task"] == "toy" and t.attrs["seed"] == 3
    assert t.attrs["n_classes"] == 3 and t.attrs["format_version"] == 1
    assert t.summary() == {"n_classes": 3, "n_train": 12, "n_test": 6, "height": 5, "width": 7,
                           "channels": 3}
    with h5py.File(path) as f:  # the documented layout, literally
        assert f["train/images"].dtype == np.uint8 and f["train/labels"].dtype == np.int64
        assert set(f) == {"train", "test", "class_names"}
    assert [p.name for p in path.parent.iterdir()] == ["data.h5"]  # no temp file left


def test_writer_rejects_bad_arrays_and_leaves_no_file(tmp_path):
    rng = np.random.default_rng(0)
    xtr, ytr, xte, yte = _arrays(rng)
    out = tmp_path / "data.h5"
    with pytest.raises(TaskDataError, match="labels outside"):
        write_task_h5(out, xtr, ytr + 5, xte, yte, ["a", "b", "c"], ATTRS)
    with pytest.raises(TaskDataError, match="uint8"):
        write_task_h5(out, xtr.astype(np.float32), ytr, xte, yte, ["a", "b", "c"], ATTRS)
    with pytest.raises(TaskDataError, match="at least 2 classes"):
        write_task_h5(out, xtr, ytr * 0, xte, yte * 0, ["a"], ATTRS)
    with pytest.raises(TaskDataError, match="attrs lack licence"):
        write_task_h5(out, xtr, ytr, xte, yte, ["a", "b", "c"],
                      {k: v for k, v in ATTRS.items() if k != "licence"})
    assert list(tmp_path.iterdir()) == []


def test_reader_names_the_missing_field(tmp_path):
    rng = np.random.default_rng(0)
    path = write_task_h5(tmp_path / "data.h5", *_arrays(rng), ["a", "b", "c"], ATTRS)
    with h5py.File(path, "a") as f:
        del f["test/labels"]
    with pytest.raises(TaskDataError, match=r"missing dataset 'test/labels'"):
        load_task_h5(path)
    with pytest.raises(TaskDataError, match="task file not found"):
        load_task_h5(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(TaskDataError, match="not a readable HDF5 file"):
        load_task_h5(tmp_path / "junk.h5")


@pytest.mark.parametrize("counts,cap,expected", [
    ([10, 10, 10], 9, [3, 3, 3]),
    ([2, 10, 10], 12, [2, 5, 5]),   # a short class gives its slack to the others
    ([1, 1, 1], 100, [1, 1, 1]),
    ([5, 5], 7, [4, 3]),
])
def test_balanced_quota(counts, cap, expected):
    got = balanced_quota(np.array(counts), cap)
    assert got.tolist() == expected


def test_balanced_subsample_and_split_are_seeded_and_stratified():
    labels = np.repeat([0, 1, 2], [50, 30, 5])
    a = balanced_subsample(labels, 3, 30, np.random.default_rng(1))
    b = balanced_subsample(labels, 3, 30, np.random.default_rng(1))
    c = balanced_subsample(labels, 3, 30, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.bincount(labels[a]).tolist() == [13, 12, 5]
    tr, te = stratified_split(labels, 3, 0.3, np.random.default_rng(0), ["x", "y", "z"])
    assert set(tr).isdisjoint(te) and len(tr) + len(te) == len(labels)
    assert np.bincount(labels[te]).tolist() == [15, 9, 2]
    with pytest.raises(TaskDataError, match="class 'z' has 1 image"):
        stratified_split(np.array([0, 0, 1, 1, 2]), 3, 0.3, np.random.default_rng(0), ["x", "y", "z"])


def test_settings_name_the_bad_key():
    assert task_settings({"source": "digits8", "max_train": 10}).max_train == 10
    with pytest.raises(TaskDataError, match="task settings: unknown key 'max_trian'"):
        task_settings({"source": "digits8", "max_trian": 10})
    with pytest.raises(TaskDataError, match=r"task settings\.test_fraction: 1\.5 is greater than or equal"):
        task_settings({"source": "digits8", "test_fraction": 1.5})
    with pytest.raises(TaskDataError, match="'source' is a required property"):
        task_settings({})
