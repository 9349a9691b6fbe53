"""Measure the renderer: images/s at 64 px with all 8 bits on, render-only vs render + HDF5 write.

    python -m task2sim.bench.render [--classes 24] [--images-per-class 120] [--repeats 3] [--json out.json]

Everything runs in one process on one warm RenderSession, interleaved (A B C D A B C D ...), so load
from other processes hits every line alike:
  render-only   the same specs and meshes render_dataset renders, pixels discarded (the configured
                blur_method, default layered)
  render+write  render_dataset itself up to the closed, renamed images.h5 (scene sampling,
                rendering, chunked HDF5 writes); its preview.png and provenance record are not counted
  no blur       render-only with focus blur off (bits 11111011): the blur's cost
  thinlens 8    render-only with ``blur_method: thinlens``, 8 passes
Reported: images/s of each, and write overhead = 1 - (render+write img/s) / (render-only img/s).
Blur fidelity: median PSNR of 128 blurred images against a 256-sample thin lens (lens and pixel
area), for the configured blur, thinlens with 8 and 16 passes, and no blur at all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ..config import config_from_dict
from ..render.dataset import RenderConfig, RenderSession, render_dataset
from ..render.gl import GLBackend


def render_only(session: RenderSession, bits: str, seed: int = 0) -> float:
    cfg = session.cfg
    n = cfg.classes * cfg.images_per_class
    t0 = time.perf_counter()
    for start in range(0, n, 256):
        pairs = [session.scene(i // cfg.images_per_class, i % cfg.images_per_class, i, seed, bits)
                 for i in range(start, min(n, start + 256))]
        session.render([p[0] for p in pairs], [p[1] for p in pairs])
    return n / (time.perf_counter() - t0)


def blur_fidelity(session: RenderSession, n: int = 128, reference_passes: int = 256) -> dict:
    """Median PSNR (dB) of blurred images against a ``reference_passes`` thin-lens reference."""
    pairs = []
    i = 0
    while len(pairs) < n:
        c = i % len(session.library.classes)
        spec, mesh = session.scene(c, i, i, 0, "11111111")
        if spec.aperture > 0:
            pairs.append((spec, mesh))
        i += 1
    specs, meshes = [p[0] for p in pairs], [p[1] for p in pairs]
    size = session.cfg.image_size
    kw = {"materials": session.materials, "environments": session.environments}
    out = {}
    ref_backend = GLBackend(**kw, blur_passes=reference_passes, blur_method="thinlens")
    ref = ref_backend.render(specs, meshes, size).astype(np.float64)
    ref_backend.close()
    cfg = session.cfg
    candidates = {f"{cfg.blur_method}_{cfg.blur_passes}": (cfg.blur_passes, cfg.blur_method),
                  "thinlens_8": (8, "thinlens"), "thinlens_16": (16, "thinlens"), "no_blur": (1, "thinlens")}
    for name, (passes, method) in candidates.items():
        backend = GLBackend(**kw, blur_passes=passes, blur_method=method)
        img = backend.render(specs, meshes, size).astype(np.float64)
        backend.close()
        mse = ((img - ref) ** 2).mean(axis=(1, 2, 3))
        out[name] = round(float(np.median(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-9)))), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m task2sim.bench.render", description=__doc__.split("\n")[0])
    # Unset keys take the schema's render defaults (the default run's settings).
    p.add_argument("--classes", type=int)
    p.add_argument("--images-per-class", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--blur-passes", type=int)
    p.add_argument("--blur-method")
    p.add_argument("--cache-dir")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args(argv)
    given = {k: getattr(a, k) for k in ("classes", "images_per_class", "image_size", "blur_passes",
                                        "blur_method", "cache_dir")}
    cfg = config_from_dict(RenderConfig, {k: v for k, v in given.items() if v is not None}, "render")
    session = RenderSession(cfg)
    configured = session.backend
    thinlens = GLBackend(session.materials, session.environments, blur_passes=8, blur_method="thinlens")
    render_only(session, "11111111")  # warm-up: mesh uploads, shader compilation
    res = {"render_only": [], "render_write": [], "no_blur": [], "thinlens_8": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            res["render_only"].append(render_only(session, "11111111"))
            out = Path(tmp) / f"r{r}"
            summary = render_dataset(cfg, "11111111", out / "images.h5", out / "preview.png", session=session)
            res["render_write"].append(summary["images"] / summary["h5_total_s"])
            res["no_blur"].append(render_only(session, "11111011"))
            session.backend = thinlens
            res["thinlens_8"].append(render_only(session, "11111111"))
            session.backend = configured
    thinlens.close()
    fidelity = blur_fidelity(session)
    backend_version = session.backend.version()
    session.close()
    med = {k: statistics.median(v) for k, v in res.items()}
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "backend": backend_version,
        "images": cfg.classes * cfg.images_per_class, "image_size": cfg.image_size,
        "blur_method": cfg.blur_method, "blur_passes": cfg.blur_passes,
        "img_s_median": {k: round(v, 1) for k, v in med.items()},
        "write_overhead": round(1 - med["render_write"] / med["render_only"], 3),
        "blur_cost_ratio": round(med["render_only"] / med["no_blur"], 3),
        "thinlens_8_ratio": round(med["thinlens_8"] / med["render_only"], 3),
        "blur_psnr_vs_256_sample_thin_lens_db": fidelity,
        "runs": {k: [round(x, 1) for x in v] for k, v in res.items()},
    }
    print(json.dumps(summary, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
