"""Rendering resumes: an interrupted render_dataset (stopped, crashed or SIGKILLed) continues from
its last finished chunk in images.h5.part, renders only the rest, and ends with a file
byte-identical to an uninterrupted render's; a partial file of another render, or a damaged one,
is discarded."""

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from task2sim.render import gl

REPO = Path(__file__).resolve().parents[1]
SHARED_CACHE = REPO / ".cache" / "assets"  # as tests/test_render.py: the repository's asset cache

ok, why = gl.available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no headless EGL renderer: {why}")

from task2sim.cli.render import main as render_main  # noqa: E402
from task2sim.config import config_from_dict  # noqa: E402
from task2sim.provenance import meta_path  # noqa: E402
from task2sim.render import dataset as ds  # noqa: E402

# 18 images in chunks of 4: four full chunks and a short last one
SMALL = {"classes": 3, "meshes_per_class": 2, "images_per_class": 6, "image_size": 32, "blur_passes": 4,
         "chunk_images": 4}
N, CHUNK = 18, 4


def small_cfg(**over):
    return config_from_dict(ds.RenderConfig, {**SMALL, **over, "cache_dir": str(SHARED_CACHE)}, "render")


@pytest.fixture(scope="module")
def session():
    s = ds.RenderSession(small_cfg())
    yield s
    s.close()


@pytest.fixture
def counted(session, monkeypatch):
    """Counts the images this test's calls hand to the renderer (the work done)."""
    seen = {"images": 0}
    real = ds.RenderSession.render

    def render(self, specs, meshes):
        seen["images"] += len(specs)
        return real(self, specs, meshes)

    monkeypatch.setattr(ds.RenderSession, "render", render)
    return seen


@pytest.fixture(scope="module")
def reference(session, tmp_path_factory):
    """An uninterrupted render (bits 10000111, seed 3): the bytes every resumed file must have."""
    out = tmp_path_factory.mktemp("reference") / "images.h5"
    s = ds.render_dataset(small_cfg(), "10000111", out, out.with_name("preview.png"), seed=3, session=session)
    assert s["finished"] and s["resumed_from_image"] == 0 and s["images_rendered"] == N
    with h5py.File(out, "r") as f:  # the resume bookkeeping is gone from the finished file
        assert f.attrs["complete"] and not set(ds.RESUME_ATTRS) & set(f.attrs)
    return out.read_bytes()


def render(session, out, **kw):
    kw = {"seed": 3, "bits": "10000111", **kw}
    return ds.render_dataset(small_cfg(), kw.pop("bits"), out, out.with_name("preview.png"), session=session, **kw)


def test_stopped_render_resumes_byte_identical_with_only_the_rest_rendered(session, reference, counted, tmp_path):
    out = tmp_path / "images.h5"
    part = ds.partial_path(out)
    s = render(session, out, stop_after_chunk=2)
    assert s == {"finished": False, "images_done": 2 * CHUNK, "resumed_from_image": 0, "images_rendered": 2 * CHUNK}
    assert counted["images"] == 2 * CHUNK
    assert not out.exists() and part.name == "images.h5.part"
    with h5py.File(part, "r") as f:
        assert f.attrs["rows_done"] == 2 * CHUNK and not f.attrs["complete"]
    # all storage is allocated when the file is created, none later: the layout cannot depend on
    # where the calls were cut
    assert part.stat().st_size == len(reference)

    counted["images"] = 0
    s = render(session, out)
    assert counted["images"] == N - 2 * CHUNK  # the resumed call rendered only the missing images
    assert s["finished"] and s["resumed_from_image"] == 2 * CHUNK and s["images_rendered"] == N - 2 * CHUNK
    assert out.read_bytes() == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.h5", "preview.png"]


def test_crash_mid_chunk_keeps_the_finished_chunks(session, reference, counted, tmp_path, monkeypatch):
    out = tmp_path / "images.h5"
    counting = ds.RenderSession.render
    calls = {"n": 0}

    def crashing(self, specs, meshes):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash in the fourth chunk")
        return counting(self, specs, meshes)

    monkeypatch.setattr(ds.RenderSession, "render", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        render(session, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["images.h5.part"]  # no stray temporary either

    monkeypatch.setattr(ds.RenderSession, "render", counting)
    counted["images"] = 0
    s = render(session, out)
    assert s["resumed_from_image"] == 3 * CHUNK and counted["images"] == N - 3 * CHUNK
    assert out.read_bytes() == reference


def test_failure_while_writing_a_chunk_does_not_count_it(session, reference, tmp_path, monkeypatch):
    """rows_done moves only after all of a chunk's rows are written: a write that fails half-way
    through the third chunk (a full disk) leaves rows_done at two chunks."""
    out = tmp_path / "images.h5"
    real = h5py.Dataset.__setitem__
    writes = {"n": 0}

    def failing(self, key, value):
        if self.name == "/mesh_ids":  # written after the chunk's images and labels
            writes["n"] += 1
            if writes["n"] == 3:
                raise OSError("simulated full disk")
        return real(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", failing)
    with pytest.raises(OSError, match="full disk"):
        render(session, out)
    monkeypatch.setattr(h5py.Dataset, "__setitem__", real)
    with h5py.File(ds.partial_path(out), "r") as f:
        assert f.attrs["rows_done"] == 2 * CHUNK
    s = render(session, out)
    assert s["resumed_from_image"] == 2 * CHUNK
    assert out.read_bytes() == reference


KILLED = """
import sys, time
from task2sim.config import config_from_dict
from task2sim.render import dataset as ds
cfg = config_from_dict(ds.RenderConfig, {**json.loads(sys.argv[1]), "cache_dir": sys.argv[2]}, "render")
real = ds.RenderSession.render
def slow(self, specs, meshes):
    time.sleep(0.25)
    return real(self, specs, meshes)
ds.RenderSession.render = slow
ds.render_dataset(cfg, "10000111", sys.argv[3], sys.argv[4], seed=3)
"""


def test_sigkill_mid_render_resumes_from_the_partial_file(session, reference, counted, tmp_path):
    """A real SIGKILL (no cleanup runs) at a random moment after the first chunk: the rerun keeps
    what the partial file vouches for and ends with the uninterrupted bytes."""
    out = tmp_path / "images.h5"
    part = ds.partial_path(out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", "import json\n" + KILLED, json.dumps(SMALL), str(SHARED_CACHE),
                             str(out), str(tmp_path / "preview.png")], env=env)
    try:
        deadline = time.monotonic() + 120
        while not part.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert part.exists(), "the partial file never appeared"
        time.sleep(random.uniform(0.0, 0.6))  # 0.25 s a chunk: somewhere in chunks 2 to 4
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert not out.exists()
    s = render(session, out)
    assert CHUNK <= s["resumed_from_image"] < N and s["resumed_from_image"] % CHUNK == 0
    assert counted["images"] == N - s["resumed_from_image"]
    assert out.read_bytes() == reference


@pytest.mark.parametrize("other", [{"seed": 4}, {"bits": "10000011"}], ids=["seed", "bits"])
def test_partial_file_of_another_render_is_discarded(session, reference, counted, tmp_path, other, caplog):
    out = tmp_path / "images.h5"
    render(session, out, stop_after_chunk=2, **other)
    counted["images"] = 0
    with caplog.at_level(logging.WARNING, logger=ds.__name__):
        s = render(session, out)
    assert "written for another config" in caplog.text
    assert s["resumed_from_image"] == 0 and counted["images"] == N
    assert out.read_bytes() == reference


def damage_truncate(part):
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])


def damage_garbage(part):
    part.write_bytes(b"not an HDF5 file at all" * 100)


def damage_rows_done(part):
    with h5py.File(part, "r+") as f:
        f.attrs.modify("rows_done", N + CHUNK)


@pytest.mark.parametrize("damage", [damage_truncate, damage_garbage, damage_rows_done],
                         ids=["truncated", "not-hdf5", "rows-done-past-the-end"])
def test_damaged_partial_file_is_discarded(session, reference, counted, tmp_path, damage, caplog):
    out = tmp_path / "images.h5"
    render(session, out, stop_after_chunk=3)
    damage(ds.partial_path(out))
    counted["images"] = 0
    with caplog.at_level(logging.WARNING, logger=ds.__name__):
        s = render(session, out)
    assert "discarding" in caplog.text
    assert s["resumed_from_image"] == 0 and counted["images"] == N
    assert out.read_bytes() == reference


def test_fingerprint_covers_what_decides_the_bytes_and_nothing_else(session):
    base = ds.render_fingerprint(small_cfg(), "10000111", 3, session)
    assert base == ds.render_fingerprint(small_cfg(), "10000111", 3, session)
    # runtime keys never change a file
    assert base == ds.render_fingerprint(small_cfg(cache_dir="/elsewhere", tdw_port=9), "10000111", 3, session)
    for cfg, bits, seed in [(small_cfg(chunk_images=6), "10000111", 3), (small_cfg(blur_passes=2), "10000111", 3),
                            (small_cfg(), "10000110", 3), (small_cfg(), "10000111", 0)]:
        assert ds.render_fingerprint(cfg, bits, seed, session) != base


def test_cli_stop_after_chunk_then_rerun_records_the_resume(reference, tmp_path):
    out = tmp_path / "images.h5"
    args = ["dataset", "--bits", "10000111", "--config", json.dumps(SMALL), "--runtime",
            json.dumps({"cache_dir": str(SHARED_CACHE)}), "--seed", "3", "--out", str(out),
            "--preview", str(tmp_path / "preview.png")]
    assert render_main(args + ["--stop-after-chunk", "1"]) == 0
    assert not out.exists() and not meta_path(out).exists() and ds.partial_path(out).exists()
    assert render_main(args) == 0
    extra = json.loads(meta_path(out).read_text())["extra"]
    assert extra["resumed_from_image"] == CHUNK and extra["images_rendered"] == N - CHUNK
    assert out.read_bytes() == reference
