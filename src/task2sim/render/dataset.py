"""Render one synthetic pre-training dataset: ``results/renders/{bits}/images.h5``.

Usage::

    cfg = config_from_dict(RenderConfig, {"classes": 24, "image_size": 64}, "render")
    render_dataset(cfg, "10000101", out_h5, preview_png, seed=0)

Image ``i`` of class ``c`` is global index ``c * images_per_class + i``; its scene comes from
``sample_scene(..., image_index=index, seed=seed, bits=bits)`` and its mesh is the class's train
meshes taken round-robin, so an image is the same whichever call renders it.

Images are rendered and written ``chunk_images`` at a time into ``images.h5.part`` beside the
output (``partial_path``), which appears, atomically, once it holds its first chunk. After each
further chunk the rows are flushed and only then is the file's ``rows_done`` advanced, so a job
killed at any point loses at most the chunk in flight. A later call continues from ``rows_done``
when the file's ``resume_fingerprint`` (``render_fingerprint``: every setting that decides the
file's bytes) matches; a partial file of another render, or one that cannot be read, is logged
and discarded. All storage is allocated when the file is created and none later, so a resumed
file is byte-identical to an uninterrupted one. After the last chunk ``complete`` is set, the two
resume attributes are deleted and the file is renamed onto ``images.h5``: nothing that looks
finished exists before that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
from tqdm import tqdm

from ..bits import describe, validate_bits
from ..config import runtime_keys
from ..figures import image_grid
from ..io import atomic_path
from .assets import build_library, list_environments, list_materials
from .backends import BACKENDS, backend_from_config
from .spec import SamplerSpace, SceneSpec, sample_scene

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
RESUME_ATTRS = ("resume_fingerprint", "rows_done")  # on the partial file only


@dataclass
class RenderConfig:
    """The ``render`` section of the config (all its keys but ``vary_bits``, which picks the
    datasets, not their pixels); defaults live in the schema."""

    backend: str
    classes: int
    meshes_per_class: int
    heldout_mesh_fraction: float
    face_budget: int | None
    images_per_class: int
    image_size: int
    blur_passes: int
    blur_method: str
    cache_dir: str           # runtime only
    tdw_port: int            # runtime only
    tdw_timeout_s: float     # runtime only
    tdw_models: dict
    mitsuba_spp: int
    chunk_images: int        # images per step, per HDF5 chunk and per resume point

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown render backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")


STYLES = ("shaded", "silhouette")


class RenderSession:
    """Library, material/environment lists and a backend, built once for many renders."""

    def __init__(self, cfg: RenderConfig, library_split: str = "train",
                 classes: dict[str, str] | None = None, style: str = "shaded") -> None:
        """``classes``: catalogue classes to render, renamed (``build_library``); None = the
        first ``cfg.classes`` of the fixed order (the pre-training renders). ``style``: ``shaded``
        (the backend's image) or ``silhouette`` (its coverage: the object white on black, blur and
        antialiasing kept as grey; moderngl only)."""
        if style not in STYLES:
            raise ValueError(f"unknown render style {style!r}; choose one of {', '.join(STYLES)}")
        if style == "silhouette" and cfg.backend != "moderngl":
            raise ValueError(f"render style silhouette needs the moderngl backend, not {cfg.backend}")
        cache = Path(cfg.cache_dir)
        self.cfg = cfg
        self.style = style
        self.library = build_library(cache, n_classes=cfg.classes, meshes_per_class=cfg.meshes_per_class,
                                     heldout_fraction=cfg.heldout_mesh_fraction, split=library_split,
                                     face_budget=cfg.face_budget, classes=classes)
        self.materials = list_materials()
        self.environments = list_environments(cache)
        self.space = SamplerSpace(n_backgrounds=len(self.environments), n_materials=len(self.materials))
        self.backend = backend_from_config(cfg, self.materials, self.environments)

    def scene(self, class_id: int, index_in_class: int, image_index: int, seed: int, bits: str):
        meshes = self.library.meshes(class_id)
        k = index_in_class % len(meshes)
        mesh = meshes[k]
        spec = sample_scene(class_id=class_id, mesh_id=self.library.manifest_id(class_id, k),
                            n_parts=len(mesh.parts), image_index=image_index, seed=seed, bits=bits,
                            space=self.space)
        return spec, mesh

    def render(self, specs, meshes) -> np.ndarray:
        if self.style == "silhouette":
            _, alpha = self.backend.render(specs, meshes, self.cfg.image_size, return_alpha=True)
            grey = np.round(alpha * 255.0).clip(0, 255).astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=-1)
        return self.backend.render(specs, meshes, self.cfg.image_size)

    def close(self) -> None:
        self.backend.close()


def _scene_columns(specs: list[SceneSpec]) -> dict[str, np.ndarray]:
    recs = [s.to_record() for s in specs]
    cols = {}
    for name in recs[0]:
        if name == "bits":
            continue  # the same for every image: an attribute of the file
        cols[name] = np.asarray([r[name] for r in recs])
    return cols


def _chunks(start: int, stop: int, size: int) -> Iterator[range]:
    for i in range(start, stop, size):
        yield range(i, min(stop, i + size))


def partial_path(out_h5: str | os.PathLike) -> Path:
    """Where an unfinished render keeps its finished chunks: ``images.h5.part`` beside ``images.h5``."""
    out_h5 = Path(out_h5)
    return out_h5.with_name(out_h5.name + ".part")


def render_fingerprint(cfg: RenderConfig, bits: str, seed: int, session: RenderSession) -> str:
    """Hash of everything that decides the bytes of the rendered file: the config's science keys
    (chunk size included: it is the file's layout), bits, seed, backend and its version, the
    classes and meshes of the library, the format version. Runtime keys stay out."""
    skip = runtime_keys("render")
    lib = session.library
    blob = [{k: v for k, v in asdict(cfg).items() if k not in skip}, bits, int(seed), session.backend.version(),
            FORMAT_VERSION, list(lib.classes), [[r["class_id"], r["mesh"], r["index"]] for r in lib.manifest]]
    if session.style != "shaded":  # shaded renders keep the fingerprint they always had
        blob.append(session.style)
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def _rows_done(part: Path, fingerprint: str, n: int, chunk: int) -> int:
    """Rows of the partial file ``part`` that a render with ``fingerprint`` keeps; 0 when there is
    none, and 0 (``part`` deleted, with a warning) when it belongs to another render or is unreadable."""
    if not part.exists():
        return 0
    try:
        with h5py.File(part, "r") as f:
            done = int(f.attrs.get("rows_done", -1))
            if f.attrs.get("resume_fingerprint") != fingerprint:
                why = "written for another config, bits, seed, backend or object library"
            elif f["images"].shape[0] != n or not 0 < done <= n or (done % chunk and done != n):
                why = f"rows_done {done} does not fit {n} images in chunks of {chunk}"
            else:
                why = None
    except Exception as e:  # truncated, not HDF5, a dataset missing: nothing to trust
        why = f"unreadable ({type(e).__name__}: {e})"
    if why:
        log.warning("discarding %s: %s; rendering from the first image", part, why)
        part.unlink()
        return 0
    log.info("resuming %s from image %d of %d", part, done, n)
    return done


def _allocated_now() -> h5py.h5p.PropDCID:
    """Creation properties that allocate a dataset's storage when it is created: later writes only
    fill it in, so the file's layout does not depend on how many calls wrote its rows."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return dcpl


def _create(path: Path, cfg: RenderConfig, bits: str, seed: int, session: RenderSession, fingerprint: str) -> None:
    """The file with every dataset at full size, no rows written (``rows_done`` 0)."""
    n, s = cfg.classes * cfg.images_per_class, cfg.image_size
    first = session.scene(0, 0, 0, seed, bits)[0]  # image 0: the scene fields' shapes and types
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs.update({"bits": bits, "backend": cfg.backend, "backend_version": session.backend.version(),
                        "seed": seed, "image_size": s, "n_classes": cfg.classes,
                        "images_per_class": cfg.images_per_class, "format_version": FORMAT_VERSION,
                        "complete": False, "resume_fingerprint": fingerprint, "rows_done": 0})
        if session.style != "shaded":
            f.attrs["style"] = session.style
        f.create_dataset("images", (n, s, s, 3), dtype="u1", chunks=(min(cfg.chunk_images, n), s, s, 3),
                         track_times=False, dcpl=_allocated_now())
        for name in ("labels", "mesh_ids"):
            f.create_dataset(name, (n,), dtype="i8", track_times=False, dcpl=_allocated_now())
        f.create_dataset("class_names", data=np.array(session.library.classes, dtype=object),
                         dtype=h5py.string_dtype(), track_times=False)
        scene = f.create_group("scene", track_order=True)
        for name, col in _scene_columns([first]).items():
            scene.create_dataset(name, (n,) + col.shape[1:], dtype=col.dtype, track_times=False,
                                 dcpl=_allocated_now())


def _write_rows(path: Path, cfg: RenderConfig, bits: str, seed: int, session: RenderSession, start: int,
                stop: int, timing: dict[str, float], bar: tqdm) -> None:
    """Render images ``start:stop`` into the file at ``path``, advancing ``rows_done`` per chunk."""
    ipc = cfg.images_per_class
    with h5py.File(path, "r+") as f:
        images, labels, mesh_ids, scene = f["images"], f["labels"], f["mesh_ids"], f["scene"]
        for idx in _chunks(start, stop, cfg.chunk_images):
            t0 = time.perf_counter()
            pairs = [session.scene(i // ipc, i % ipc, i, seed, bits) for i in idx]
            specs, meshes = [p[0] for p in pairs], [p[1] for p in pairs]
            pixels = session.render(specs, meshes)
            t1 = time.perf_counter()
            sl = slice(idx.start, idx.stop)
            images[sl] = pixels
            labels[sl] = [sp.class_id for sp in specs]
            mesh_ids[sl] = [sp.mesh_id for sp in specs]
            for name, col in _scene_columns(specs).items():
                scene[name][sl] = col
            f.flush()  # the chunk's rows are on disk before the count that vouches for them
            f.attrs.modify("rows_done", idx.stop)
            f.flush()
            timing["write"] += time.perf_counter() - t1
            timing["render"] += t1 - t0
            bar.update(len(idx))
            bar.set_postfix(img_s=f"{(idx.stop - bar.initial) / max(sum(timing.values()), 1e-9):.0f}")


def _finish(part: Path, out_h5: Path) -> None:
    with h5py.File(part, "r+") as f:
        f.attrs.modify("complete", True)
        for name in RESUME_ATTRS:
            del f.attrs[name]
    os.replace(part, out_h5)


def render_dataset(cfg: RenderConfig, bits: str, out_h5: str | os.PathLike, preview_png: str | os.PathLike,
                   seed: int = 0, session: RenderSession | None = None,
                   stop_after_chunk: int | None = None) -> dict:
    """Render ``cfg.classes * cfg.images_per_class`` images with ``bits``; returns a summary.

    Continues an interrupted render of the same fingerprint from its last finished chunk
    (``partial_path``); the summary's ``resumed_from_image`` counts the images kept from earlier
    calls (0 on a fresh render), ``images_rendered`` those this call rendered.
    ``stop_after_chunk``: return after that many chunks in total, leaving only the partial file (a
    time-limited job, or the interruption in the resume tests); the next call resumes.
    """
    validate_bits(bits)
    if stop_after_chunk is not None and stop_after_chunk < 1:
        raise ValueError(f"stop_after_chunk must be >= 1, got {stop_after_chunk}")
    out_h5 = Path(out_h5)
    own = session is None
    session = session or RenderSession(cfg)
    n, chunk = cfg.classes * cfg.images_per_class, cfg.chunk_images
    timing = {"render": 0.0, "write": 0.0}
    t_start = time.perf_counter()
    try:
        part = partial_path(out_h5)
        fingerprint = render_fingerprint(cfg, bits, seed, session)
        start = _rows_done(part, fingerprint, n, chunk)
        stop = n if stop_after_chunk is None else min(n, max(start, stop_after_chunk * chunk))
        with tqdm(total=n, initial=start, desc=f"render {bits}", unit="img", mininterval=2.0) as bar:
            done = start
            if start == 0:
                # the partial file appears only once it holds a chunk worth resuming from
                with atomic_path(part, suffix=".h5.part") as tmp:
                    _create(tmp, cfg, bits, seed, session, fingerprint)
                    done = min(chunk, n)
                    _write_rows(tmp, cfg, bits, seed, session, 0, done, timing, bar)
            if done < stop:
                _write_rows(part, cfg, bits, seed, session, done, stop, timing, bar)
        if stop < n:
            return {"finished": False, "images_done": stop, "resumed_from_image": start,
                    "images_rendered": stop - start}
        _finish(part, out_h5)
        t_h5 = time.perf_counter() - t_start  # sampling + rendering + HDF5 writing, file closed and renamed
        write_preview(out_h5, preview_png)
    finally:
        if own:
            session.close()
    rendered = n - start
    t_render, t_write = timing["render"], timing["write"]
    return {"finished": True, "images": n, "images_rendered": rendered, "resumed_from_image": start,
            "render_s": round(t_render, 3), "write_s": round(t_write, 3), "h5_total_s": round(t_h5, 3),
            "images_per_s": round(rendered / max(t_render + t_write, 1e-9), 1), "description": describe(bits)}


def open_render(path: str | os.PathLike) -> h5py.File:
    """Open a rendered dataset for reading; refuse one that was never completed."""
    f = h5py.File(path, "r")
    if not f.attrs.get("complete", False):
        f.close()
        raise ValueError(f"{path}: rendered dataset is incomplete (no 'complete' attribute)")
    return f


def write_preview(h5_path: str | os.PathLike, png: str | os.PathLike, per_class: int = 8,
                  max_classes: int = 12) -> Path:
    """Contact sheet: a few images of the first classes, one labelled row each."""
    with open_render(h5_path) as f:
        labels = f["labels"][:]
        names = [n.decode() if isinstance(n, bytes) else n for n in f["class_names"][:]]
        rows = []
        for c in range(min(len(names), max_classes)):
            idx = np.flatnonzero(labels == c)[:per_class]
            rows.append((names[c], f["images"][idx] if len(idx) else np.zeros((0, 1, 1, 3), np.uint8)))
        bits = f.attrs["bits"]
        title = f"{bits} ({describe(bits)}): {len(names)} classes, {len(labels)} images, {f.attrs['image_size']} px"
    return image_grid(rows, png, title=title)


def render_variations(cfg: RenderConfig, png: str | os.PathLike, per_row: int = 5, seed: int = 0,
                      session: RenderSession | None = None) -> Path:
    """The paper's Fig. 17: one row per bit with only that bit on (first row: all off)."""
    from ..bits import BIT_NAMES

    own = session is None
    session = session or RenderSession(cfg)
    try:
        n_cls = len(session.library.classes)
        rows = []
        for b in [None] + list(range(len(BIT_NAMES))):
            bits = "".join("1" if i == b else "0" for i in range(len(BIT_NAMES)))
            pairs = [session.scene((j * 5) % n_cls, j, 1000 + j * 7, seed, bits) for j in range(per_row)]
            pixels = session.render([p[0] for p in pairs], [p[1] for p in pairs])
            rows.append(("all off" if b is None else f"{b}: {BIT_NAMES[b]}", pixels))
    finally:
        if own:
            session.close()
    return image_grid(rows, png, title="One simulation parameter on at a time (same objects, same seeds)")
