"""Render one synthetic pre-training dataset: ``results/renders/{bits}/images.h5``.

Usage::

    cfg = config_from_dict(RenderConfig, {"classes": 24, "image_size": 64}, "render")
    render_dataset(cfg, "10000101", out_h5, preview_png, seed=0)

Image ``i`` of class ``c`` is global index ``c * images_per_class + i``; its scene comes from
``sample_scene(..., image_index=index, seed=seed, bits=bits)`` and its mesh is the class's train
meshes taken round-robin. The file is written to a temporary sibling and renamed only when
complete, with the ``complete`` attribute set last, so an interrupted job leaves nothing that looks
finished (a rerun starts again).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
from tqdm import tqdm

from ..bits import describe, validate_bits
from ..figures import image_grid
from ..io import atomic_path
from .assets import build_library, list_environments, list_materials
from .backends import BACKENDS, backend_from_config
from .spec import SamplerSpace, SceneSpec, sample_scene

FORMAT_VERSION = 1
CHUNK = 256  # images rendered and written per step (one HDF5 chunk)


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

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown render backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")


class RenderSession:
    """Library, material/environment lists and a backend, built once for many renders."""

    def __init__(self, cfg: RenderConfig, library_split: str = "train",
                 classes: dict[str, str] | None = None) -> None:
        """``classes``: catalogue classes to render, renamed (``build_library``); None = the
        first ``cfg.classes`` of the fixed order (the pre-training renders)."""
        cache = Path(cfg.cache_dir)
        self.cfg = cfg
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


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def render_dataset(cfg: RenderConfig, bits: str, out_h5: str | os.PathLike, preview_png: str | os.PathLike,
                   seed: int = 0, session: RenderSession | None = None) -> dict:
    """Render ``cfg.classes * cfg.images_per_class`` images with ``bits``; returns a summary."""
    validate_bits(bits)
    own = session is None
    session = session or RenderSession(cfg)
    lib = session.library
    n = cfg.classes * cfg.images_per_class
    s = cfg.image_size
    t_render = t_write = 0.0
    t_start = time.perf_counter()
    try:
        with atomic_path(out_h5, suffix=".h5.part") as tmp, h5py.File(tmp, "w", track_order=True) as f:
            f.attrs.update({"bits": bits, "backend": cfg.backend, "backend_version": session.backend.version(),
                            "seed": seed, "image_size": s, "n_classes": cfg.classes,
                            "images_per_class": cfg.images_per_class, "format_version": FORMAT_VERSION,
                            "complete": False})
            images = f.create_dataset("images", (n, s, s, 3), dtype="u1", chunks=(min(CHUNK, n), s, s, 3),
                                      track_times=False)
            labels = f.create_dataset("labels", (n,), dtype="i8", track_times=False)
            mesh_ids = f.create_dataset("mesh_ids", (n,), dtype="i8", track_times=False)
            f.create_dataset("class_names", data=np.array(lib.classes, dtype=object),
                             dtype=h5py.string_dtype(), track_times=False)
            scene = f.create_group("scene", track_order=True)
            with tqdm(total=n, desc=f"render {bits}", unit="img", mininterval=2.0) as bar:
                for idx in _chunks(n, CHUNK):
                    t0 = time.perf_counter()
                    pairs = [session.scene(i // cfg.images_per_class, i % cfg.images_per_class, i, seed, bits)
                             for i in idx]
                    specs, meshes = [p[0] for p in pairs], [p[1] for p in pairs]
                    pixels = session.render(specs, meshes)
                    t1 = time.perf_counter()
                    sl = slice(idx.start, idx.stop)
                    images[sl] = pixels
                    labels[sl] = [sp.class_id for sp in specs]
                    mesh_ids[sl] = [sp.mesh_id for sp in specs]
                    for name, col in _scene_columns(specs).items():
                        if name not in scene:
                            shape = (n,) + col.shape[1:]
                            scene.create_dataset(name, shape, dtype=col.dtype, track_times=False)
                        scene[name][sl] = col
                    t_write += time.perf_counter() - t1
                    t_render += t1 - t0
                    bar.update(len(idx))
                    bar.set_postfix(img_s=f"{bar.n / max(t_render + t_write, 1e-9):.0f}")
            f.attrs["complete"] = True
        t_h5 = time.perf_counter() - t_start  # sampling + rendering + HDF5 writing, file closed and renamed
        write_preview(out_h5, preview_png)
    finally:
        if own:
            session.close()
    summary = {"images": n, "render_s": round(t_render, 3), "write_s": round(t_write, 3),
               "h5_total_s": round(t_h5, 3),
               "images_per_s": round(n / max(t_render + t_write, 1e-9), 1), "description": describe(bits)}
    return summary


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
