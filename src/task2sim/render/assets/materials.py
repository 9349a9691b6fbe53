"""The fixed material list (bit 7) and the texture sources it draws on.

Textures never come from the photo folders of gimp-data (Stone, Wood, ...): those are the
``materials`` downstream task. We use procedural numpy textures and the GIMP Legacy/ patterns.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from ...debian_data import GIMP_PATTERNS_DIR
from ...gimp_pat import PatError, read_pat
from .types import Material

log = logging.getLogger(__name__)

GIMP_LEGACY_DIR = GIMP_PATTERNS_DIR / "Legacy"
TEX = 128  # side of the procedural textures


# ---- procedural textures (deterministic: fixed seeds) ----------------------------------------

def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Tileable smooth noise in [0, 1]: bicubic-ish interpolation of a random lattice."""
    lat = rng.random((cells, cells))
    t = np.arange(size) * cells / size
    i0 = np.floor(t).astype(int)
    f = t - i0
    f = f * f * (3 - 2 * f)  # smoothstep weights
    i1 = (i0 + 1) % cells
    a = lat[i0][:, i0] * (1 - f)[None, :] + lat[i0][:, i1] * f[None, :]
    b = lat[i1][:, i0] * (1 - f)[None, :] + lat[i1][:, i1] * f[None, :]
    return a * (1 - f)[:, None] + b * f[:, None]


def _fbm(seed: int, size: int = TEX, octaves: int = 5, base: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((size, size))
    amp, tot = 1.0, 0.0
    for o in range(octaves):
        out += amp * _value_noise(rng, size, base * 2 ** o)
        tot += amp
        amp *= 0.5
    return out / tot


def _colourise(v: np.ndarray, c0, c1) -> np.ndarray:
    c0, c1 = np.asarray(c0, float), np.asarray(c1, float)
    img = c0 + (c1 - c0) * np.clip(v, 0, 1)[..., None]
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _wood(seed, c0, c1):
    y, x = np.mgrid[0:TEX, 0:TEX] / TEX
    n = _fbm(seed, octaves=4, base=2)
    rings = np.sin((x * 14 + 3.0 * n) * 2 * np.pi) * 0.5 + 0.5  # grain along y
    fine = _fbm(seed + 1, octaves=3, base=16)
    return _colourise(0.75 * rings ** 1.5 + 0.25 * fine, c0, c1)


def _marble(seed, c0, c1):
    y, x = np.mgrid[0:TEX, 0:TEX] / TEX
    n = _fbm(seed, octaves=5, base=4)
    v = np.abs(np.sin((x + y) * 2 * np.pi * 2 + 6.0 * n))
    return _colourise(v ** 0.35, c1, c0)  # thin dark veins in a light body


def _checker(n, c0, c1):
    y, x = np.mgrid[0:TEX, 0:TEX] * n // TEX
    return _colourise(((x + y) % 2).astype(float), c0, c1)


def _stripes(n, c0, c1, diagonal=False):
    y, x = np.mgrid[0:TEX, 0:TEX]
    t = (x + y) if diagonal else x
    return _colourise(((t * n // TEX) % 2).astype(float), c0, c1)


def _dots(n, c0, c1):
    y, x = (np.mgrid[0:TEX, 0:TEX] * n / TEX) % 1.0
    return _colourise((((x - 0.5) ** 2 + (y - 0.5) ** 2) < 0.09).astype(float), c0, c1)


def _noise(seed, c0, c1, octaves=5, base=8):
    return _colourise(_fbm(seed, octaves=octaves, base=base), c0, c1)


def _speckle(seed, c0, c1):
    rng = np.random.default_rng(seed)
    v = (rng.random((TEX, TEX)) > 0.8).astype(float) * 0.7 + 0.3 * _fbm(seed, base=8)
    return _colourise(v, c0, c1)


def _plaid(seed, c0, c1):
    y, x = np.mgrid[0:TEX, 0:TEX]
    v = 0.5 * (((x // 8) % 3) == 0) + 0.5 * (((y // 8) % 3) == 0)
    return _colourise(v.astype(float), c0, c1)


def _camo(seed, c0, c1):
    n = _fbm(seed, octaves=3, base=4)
    return _colourise(np.digitize(n, [0.42, 0.5, 0.58]) / 3.0, c0, c1)


# name, colour, specular, roughness, metallic, texture factory (or None)
_PLAIN = [
    ("paint_red", (0.80, 0.10, 0.08)), ("paint_green", (0.12, 0.60, 0.15)),
    ("paint_blue", (0.10, 0.25, 0.80)), ("paint_yellow", (0.95, 0.82, 0.10)),
    ("paint_orange", (0.95, 0.45, 0.05)), ("paint_purple", (0.50, 0.15, 0.65)),
    ("paint_white", (0.90, 0.90, 0.88)), ("paint_black", (0.05, 0.05, 0.05)),
    ("paint_grey", (0.45, 0.45, 0.47)), ("paint_pink", (0.95, 0.55, 0.70)),
    ("paint_teal", (0.05, 0.55, 0.55)), ("paint_brown", (0.40, 0.24, 0.12)),
]
_PLASTIC = [
    ("plastic_red", (0.85, 0.05, 0.05)), ("plastic_blue", (0.05, 0.20, 0.90)),
    ("plastic_green", (0.10, 0.75, 0.20)), ("plastic_yellow", (1.0, 0.85, 0.0)),
    ("plastic_white", (0.95, 0.95, 0.95)), ("plastic_black", (0.03, 0.03, 0.03)),
]
_METAL = [
    ("metal_gold", (1.00, 0.77, 0.34), 0.25), ("metal_silver", (0.95, 0.93, 0.88), 0.2),
    ("metal_copper", (0.95, 0.64, 0.54), 0.3), ("metal_brass", (0.89, 0.73, 0.38), 0.35),
    ("metal_chrome", (0.80, 0.80, 0.82), 0.05), ("metal_iron", (0.53, 0.51, 0.49), 0.6),
    ("metal_aluminium", (0.91, 0.92, 0.92), 0.4), ("metal_bronze", (0.70, 0.45, 0.20), 0.45),
]
_TEXTURED = [  # name, specular, roughness, metallic, factory, scale
    ("wood_light", 0.3, 0.6, 0.0, lambda: _wood(11, (0.55, 0.36, 0.18), (0.85, 0.66, 0.42)), 1.0),
    ("wood_dark", 0.3, 0.5, 0.0, lambda: _wood(12, (0.20, 0.10, 0.05), (0.45, 0.26, 0.12)), 1.0),
    ("wood_red", 0.3, 0.5, 0.0, lambda: _wood(13, (0.35, 0.10, 0.06), (0.65, 0.30, 0.18)), 1.0),
    ("marble_white", 0.6, 0.2, 0.0, lambda: _marble(21, (0.92, 0.92, 0.90), (0.35, 0.35, 0.38)), 1.0),
    ("marble_green", 0.6, 0.2, 0.0, lambda: _marble(22, (0.35, 0.60, 0.45), (0.05, 0.15, 0.08)), 1.0),
    ("checker_bw", 0.2, 0.6, 0.0, lambda: _checker(8, (0.05, 0.05, 0.05), (0.95, 0.95, 0.95)), 1.0),
    ("checker_red", 0.2, 0.6, 0.0, lambda: _checker(6, (0.85, 0.10, 0.10), (0.95, 0.90, 0.85)), 1.0),
    ("stripes_blue", 0.2, 0.6, 0.0, lambda: _stripes(10, (0.10, 0.20, 0.70), (0.95, 0.95, 0.95)), 1.0),
    ("stripes_candy", 0.4, 0.4, 0.0, lambda: _stripes(12, (0.90, 0.05, 0.10), (0.98, 0.98, 0.98), True), 1.0),
    ("dots_yellow", 0.2, 0.6, 0.0, lambda: _dots(8, (0.95, 0.80, 0.10), (0.15, 0.15, 0.50)), 1.0),
    ("granite", 0.4, 0.4, 0.0, lambda: _speckle(31, (0.55, 0.50, 0.48), (0.10, 0.08, 0.08)), 1.0),
    ("sandstone", 0.1, 0.9, 0.0, lambda: _noise(32, (0.60, 0.48, 0.30), (0.88, 0.76, 0.55)), 1.0),
    ("rust", 0.2, 0.8, 0.3, lambda: _noise(33, (0.30, 0.12, 0.05), (0.70, 0.35, 0.12), 6, 8), 1.0),
    ("concrete", 0.1, 0.9, 0.0, lambda: _speckle(34, (0.62, 0.62, 0.60), (0.45, 0.45, 0.44)), 1.0),
    ("plaid_green", 0.1, 0.8, 0.0, lambda: _plaid(35, (0.10, 0.35, 0.15), (0.80, 0.15, 0.12)), 1.0),
    ("camouflage", 0.1, 0.9, 0.0, lambda: _camo(36, (0.20, 0.25, 0.10), (0.65, 0.60, 0.40)), 1.0),
    ("clouds_blue", 0.3, 0.5, 0.0, lambda: _noise(37, (0.15, 0.35, 0.85), (0.95, 0.97, 1.0), 5, 4), 1.0),
]
# GIMP 2.0 Legacy/ patterns (not the photo folders): file stem -> material name
_LEGACY = ["3dgreen", "Stripes1px", "Stripes2px", "blue", "bluegrid", "bluesquares", "blueweb",
           "fibers", "nops", "pastel", "qube1", "recessed", "redcube", "sm_squares", "warning"]


def _mean_colour(tex: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in tex.reshape(-1, 3).mean(0) / 255.0)


@functools.lru_cache(maxsize=4)
def _materials(legacy_dir: str) -> tuple[Material, ...]:
    mats: list[Material] = []
    for name, c in _PLAIN:
        mats.append(Material(name, c, specular=0.15, roughness=0.85, metallic=0.0))
    for name, c in _PLASTIC:
        mats.append(Material(name, c, specular=0.6, roughness=0.25, metallic=0.0))
    for name, c, r in _METAL:
        mats.append(Material(name, c, specular=1.0, roughness=r, metallic=1.0))
    for name, spec, rough, metal, make, scale in _TEXTURED:
        mats.append(Material(name, (1.0, 1.0, 1.0), spec, rough, metal, make(), scale))
    for i, stem in enumerate(_LEGACY):
        path = Path(legacy_dir) / f"{stem}.pat"
        try:
            _, tex = read_pat(path)
            src = "gimp"
        except (OSError, PatError):
            # Keep the list's length and order fixed; say loudly that this entry is a stand-in.
            log.warning("GIMP pattern %s unavailable (install Debian gimp-data); using noise", path)
            tex = _noise(100 + i, (0.2, 0.2, 0.2), (0.9, 0.9, 0.9))
            src = "fallback"
        # Small tiles (e.g. 1-px stripes) repeat more so their texel size on screen stays similar.
        scale = float(np.clip(128.0 / max(tex.shape[:2]), 1.0, 8.0)) if src == "gimp" else 1.0
        mats.append(Material(f"gimp_{stem.lower()}", (1.0, 1.0, 1.0), 0.2, 0.6, 0.0, tex, scale))
    for m in mats:
        if m.texture is not None:
            m.texture.setflags(write=False)
    return tuple(mats)


def list_materials(legacy_dir: str | Path = GIMP_LEGACY_DIR) -> list[Material]:
    """The fixed, ordered material list that bit 7 indexes (58 entries; deterministic).

    12 matte paints, 6 glossy plastics, 8 metals, 17 procedural textures (wood, marble, checker,
    stripes, dots, stone, rust, plaid, camouflage, clouds) and 15 GIMP Legacy patterns.
    """
    return list(_materials(str(legacy_dir)))


def mean_colour(m: Material) -> tuple[float, float, float]:
    """The material's average colour (base colour times mean texel), for previews."""
    if m.texture is None:
        return m.base_colour
    t = _mean_colour(m.texture)
    return tuple(a * b for a, b in zip(m.base_colour, t))
