"""Background environments (bit 6): the 8 CC0 HDRI maps shipped in Debian ``blender-data``.

The .exr files (512x1024, by Greg Zaal / HDRI Haven, CC0) are unpacked from the .deb into the cache
at first use, read with the ``OpenEXR`` wheel, downsampled (2x2 box filter, in linear space) and
cached as .npy. When blender-data cannot be fetched, ``list_environments`` raises unless
``fallback=True``, which returns procedural sky/ground gradients (documented stand-ins).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...io import atomic_path
from .debian import PackageUnavailable, fetch_package
from .types import Environment

log = logging.getLogger(__name__)

PACKAGE = "blender-data"
WORLD_DIR = "usr/share/blender/datafiles/studiolights/world"
NAMES = ("city", "courtyard", "forest", "interior", "night", "studio", "sunrise", "sunset")
LICENCE = "CC0-1.0 (Greg Zaal, HDRI Haven; Debian blender-data)"
HEIGHT = 256  # cached size: 256 x 512


def read_exr(path: Path) -> np.ndarray:
    """float32 (H, W, 3) linear RGB from an OpenEXR file."""
    import OpenEXR
    with OpenEXR.File(str(path)) as f:
        ch = f.channels()
        if "RGB" in ch:
            img = ch["RGB"].pixels
        elif all(c in ch for c in "RGB"):
            img = np.stack([ch[c].pixels for c in "RGB"], -1)
        else:
            raise ValueError(f"{path}: no RGB channels ({sorted(ch)})")
    return np.ascontiguousarray(img[..., :3], np.float32)


def _downsample(img: np.ndarray, height: int) -> np.ndarray:
    f = img.shape[0] // height
    if f <= 1:
        return img
    h, w = img.shape[0] // f * f, img.shape[1] // f * f
    return img[:h, :w].reshape(h // f, f, w // f, f, 3).mean((1, 3)).astype(np.float32)


def _procedural(height: int = HEIGHT) -> list[Environment]:
    """Stand-ins: sky-to-ground gradients with a sun-like blob; only used when asked for."""
    out = []
    rows = np.linspace(0, 1, height)[:, None, None]
    az = np.linspace(0, 2 * np.pi, 2 * height)[None, :, None]
    palettes = [((0.3, 0.5, 1.0), (0.6, 0.5, 0.4)), ((1.0, 0.6, 0.3), (0.3, 0.2, 0.2)),
                ((0.8, 0.8, 0.85), (0.3, 0.3, 0.3)), ((0.05, 0.05, 0.15), (0.02, 0.02, 0.02)),
                ((0.5, 0.7, 0.9), (0.2, 0.4, 0.15)), ((1.0, 1.0, 1.0), (0.8, 0.8, 0.8)),
                ((0.9, 0.4, 0.5), (0.25, 0.15, 0.2)), ((0.4, 0.6, 0.6), (0.35, 0.3, 0.2))]
    for i, (sky, ground) in enumerate(palettes):
        t = np.clip((rows - 0.5) * 8 + 0.5, 0, 1)
        img = (1 - t) * np.asarray(sky) + t * np.asarray(ground)
        img = np.broadcast_to(img, (height, 2 * height, 3))
        sun = np.exp(-(((rows - 0.3) * 12) ** 2 + ((az - 0.8 * i) * 4) ** 2)) * 8.0
        out.append(Environment(f"gradient_{i}", (img + sun).astype(np.float32), "CC0-1.0 (generated)", "procedural"))
    return out


def list_environments(cache_dir: Path, fallback: bool = False, height: int = HEIGHT) -> list[Environment]:
    """The 8 blender-data HDRIs in a fixed order (``NAMES``), linear float32 (height, 2*height, 3)."""
    cache = Path(cache_dir) / "environments"
    paths = [cache / f"{n}_{height}.npy" for n in NAMES]
    if not all(p.exists() for p in paths):
        try:
            root = fetch_package(PACKAGE, Path(cache_dir), members=(WORLD_DIR,))
        except PackageUnavailable as e:
            if fallback:
                log.warning("blender-data unavailable (%s): using procedural gradient environments", e)
                return _procedural(height)
            raise
        for n, p in zip(NAMES, paths):
            if p.exists():
                continue
            img = _downsample(read_exr(root / WORLD_DIR / f"{n}.exr"), height)
            img = np.nan_to_num(np.clip(img, 0, None)).astype(np.float32)
            with atomic_path(p, suffix=".npy", shared=True) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, img)
    return [Environment(n, np.load(p), LICENCE, f"Debian {PACKAGE}: {WORLD_DIR}/{n}.exr") for n, p in zip(NAMES, paths)]
