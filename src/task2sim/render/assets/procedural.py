"""Procedural object families: seeded generators, so "mesh i of class c" is always the same mesh.

Every generator takes a ``numpy.random.Generator`` and returns pieces ``[(trimesh.Trimesh,
Material), ...]`` in a Y-up frame with the object's front towards +Z; the library normalises them.
Families: lathe profiles (``trimesh.creation.revolve``), primitive assemblies, superquadrics, and
extruded glyphs (DejaVu letters and digits, rasterised with PIL and extruded by marching cubes).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np
import trimesh
from trimesh import creation as C

from ...debian_data import DEJAVU_DIR
from .materials import list_materials
from .types import Material

Pieces = list[tuple[trimesh.Trimesh, Material]]

# ---- materials for the parts' own look -------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mats() -> dict[str, Material]:
    return {m.name: m for m in list_materials()}


def _jitter(m: Material, r: np.random.Generator, amount: float = 0.12) -> Material:
    c = np.clip(np.asarray(m.base_colour) * (1 + r.uniform(-amount, amount, 3)), 0, 1)
    return dataclasses.replace(m, base_colour=tuple(float(v) for v in c))


def M(r, *names: str) -> Material:
    """One of the named materials, colour-jittered."""
    return _jitter(_mats()[names[int(r.integers(len(names)))]], r)


PAINTS = ("paint_red", "paint_green", "paint_blue", "paint_yellow", "paint_orange", "paint_purple",
          "paint_white", "paint_teal", "paint_pink", "plastic_red", "plastic_blue", "plastic_green",
          "plastic_yellow")
WOODS = ("wood_light", "wood_dark", "wood_red")
METALS = ("metal_silver", "metal_iron", "metal_aluminium", "metal_chrome", "metal_brass")
CERAMIC = ("paint_white", "marble_white", "paint_teal", "paint_blue", "paint_red", "plastic_white")

# ---- geometry helpers -------------------------------------------------------------------------

_Z_TO_Y = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])


def at(m: trimesh.Trimesh, x=0.0, y=0.0, z=0.0) -> trimesh.Trimesh:
    m.apply_translation([x, y, z])
    return m


def rot(m: trimesh.Trimesh, angle_deg: float, axis) -> trimesh.Trimesh:
    m.apply_transform(trimesh.transformations.rotation_matrix(np.radians(angle_deg), axis))
    return m


def lathe(profile, sections: int = 40) -> trimesh.Trimesh:
    """Revolve (radius, height) points about the +Y axis (bottom to top; r=0 ends close it)."""
    pts = np.asarray(profile, float)
    m = C.revolve(pts, sections=sections)
    m.apply_transform(_Z_TO_Y)
    return m


def smooth_profile(points, n: int = 24) -> np.ndarray:
    """Catmull-Rom-like smoothing of a coarse (r, y) outline into n points per segment count."""
    p = np.asarray(points, float)
    t = np.linspace(0, 1, len(p))
    tt = np.linspace(0, 1, max(n, len(p)))
    from scipy.interpolate import PchipInterpolator  # monotone: no overshoot below r=0
    return np.stack([PchipInterpolator(t, p[:, 0])(tt), PchipInterpolator(t, p[:, 1])(tt)], 1)


def box(sx, sy, sz, x=0.0, y=0.0, z=0.0):
    return at(C.box([sx, sy, sz]), x, y, z)


def cyl(radius, p0, p1, sections=24):
    return C.cylinder(radius=radius, segment=[p0, p1], sections=sections)


def cone_y(radius, height, y=0.0, x=0.0, z=0.0, sections=24):
    return at(rot(C.cone(radius, height, sections=sections), -90, [1, 0, 0]), x, y, z)


def sphere(radius, x=0.0, y=0.0, z=0.0, sub=2):
    return at(C.icosphere(subdivisions=sub, radius=radius), x, y, z)


def ellipsoid(rx, ry, rz, x=0.0, y=0.0, z=0.0):
    m = C.icosphere(subdivisions=3)
    m.apply_scale([rx, ry, rz])
    return at(m, x, y, z)


def torus(R, r, x=0.0, y=0.0, z=0.0, axis="y"):
    m = C.torus(major_radius=R, minor_radius=r, major_sections=32, minor_sections=12)
    if axis == "y":
        rot(m, 90, [1, 0, 0])
    elif axis == "x":
        rot(m, 90, [0, 1, 0])
    return at(m, x, y, z)


def tube(path, radius, sides: int = 10) -> trimesh.Trimesh:
    """A closed tube along a polyline (rings of ``sides`` vertices, parallel-transported frames)."""
    p = np.asarray(path, float)
    tang = np.gradient(p, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    ref = np.array([0, 0, 1.0]) if abs(tang[0][2]) < 0.9 else np.array([1.0, 0, 0])
    n = np.cross(tang[0], ref)
    n /= np.linalg.norm(n)
    rings = []
    ang = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    for i in range(len(p)):
        n = n - tang[i] * np.dot(n, tang[i])
        n /= np.linalg.norm(n)
        b = np.cross(tang[i], n)
        rings.append(p[i] + radius * (np.cos(ang)[:, None] * n + np.sin(ang)[:, None] * b))
    v = np.concatenate(rings + [p[:1], p[-1:]])
    f = []
    for i in range(len(p) - 1):
        for j in range(sides):
            a, b_, c, d = i * sides + j, i * sides + (j + 1) % sides, (i + 1) * sides + j, (i + 1) * sides + (j + 1) % sides
            f += [[a, b_, d], [a, d, c]]
    s0, s1 = len(v) - 2, len(v) - 1
    last = (len(p) - 1) * sides
    for j in range(sides):
        f.append([s0, (j + 1) % sides, j])
        f.append([s1, last + j, last + (j + 1) % sides])
    m = trimesh.Trimesh(v, np.array(f), process=True)
    m.fix_normals()
    return m


def arc(R, a0, a1, n=24, centre=(0, 0, 0), plane="xy"):
    t = np.linspace(np.radians(a0), np.radians(a1), n)
    c = np.asarray(centre, float)
    if plane == "xy":
        return c + np.stack([R * np.cos(t), R * np.sin(t), 0 * t], 1)
    if plane == "zy":
        return c + np.stack([0 * t, R * np.sin(t), R * np.cos(t)], 1)
    return c + np.stack([R * np.cos(t), 0 * t, R * np.sin(t)], 1)


def hull(points) -> trimesh.Trimesh:
    return trimesh.convex.convex_hull(np.asarray(points, float))


def prism(poly2d, depth, z0=0.0) -> trimesh.Trimesh:
    """A convex 2D polygon (x, y) extruded along z."""
    p = np.asarray(poly2d, float)
    return hull(np.concatenate([np.c_[p, np.full(len(p), z0)], np.c_[p, np.full(len(p), z0 + depth)]]))


# ---- lathe family -----------------------------------------------------------------------------


def goblet(r):
    h, cup_r, stem = r.uniform(1.6, 2.4), r.uniform(0.5, 0.8), r.uniform(0.3, 0.5)
    base = r.uniform(0.4, 0.6)
    prof = [(0, 0), (base, 0.02), (base * 0.9, 0.08), (0.07, 0.18), (0.06, h * stem),
            (cup_r * 0.5, h * stem + 0.15), (cup_r, h * 0.8), (cup_r * r.uniform(0.85, 1.1), h),
            (cup_r * 0.95, h), (0, h * stem + 0.2)]
    return [(lathe(prof), M(r, "metal_gold", "metal_silver", "metal_brass", "metal_copper", "paint_red"))]


def bowl(r):
    R, h = r.uniform(0.9, 1.2), r.uniform(0.35, 0.6)
    prof = smooth_profile([(0, 0), (R * 0.45, 0.0), (R * 0.8, h * 0.35), (R, h)], 12)
    inner = [(R * 0.93, h), (R * 0.73, h * 0.4), (R * 0.4, h * 0.1), (0, h * 0.1)]
    return [(lathe(np.concatenate([prof, inner])), M(r, *CERAMIC, *WOODS))]


def mug(r):
    R, h = r.uniform(0.4, 0.55), r.uniform(0.8, 1.3)
    body = lathe([(0, 0), (R, 0), (R * r.uniform(1.0, 1.12), h), (R * 0.9, h), (R * 0.9, 0.08), (0, 0.08)])
    hr = h * 0.3
    handle = tube(arc(hr, -90, 90, 20, centre=(R, h * 0.5, 0)), r.uniform(0.04, 0.07))
    m = M(r, *CERAMIC, *PAINTS)
    return [(body, m), (handle, m)]


def flowerpot(r):
    R, h = r.uniform(0.5, 0.8), r.uniform(0.8, 1.2)
    pot = lathe([(0, 0), (R * 0.7, 0), (R, h * 0.85), (R * 1.12, h * 0.86), (R * 1.12, h), (R * 0.95, h),
                 (R * 0.95, h * 0.92), (0, h * 0.92)])
    plant = [(ellipsoid(R * 0.8, R * r.uniform(0.6, 1.2), R * 0.8, y=h * 1.2), M(r, "paint_green", "plastic_green"))]
    return [(pot, M(r, "sandstone", "paint_orange", "paint_brown", "rust"))] + (plant if r.random() < 0.6 else [])


def jar(r):
    R, h = r.uniform(0.45, 0.7), r.uniform(0.9, 1.6)
    body = lathe(smooth_profile([(0, 0), (R, 0.02), (R * 1.05, h * 0.5), (R, h * 0.85), (R * 0.75, h * 0.95),
                                 (R * 0.75, h), (0, h)], 20))
    lid = lathe([(0, h), (R * 0.82, h), (R * 0.82, h + 0.12), (R * 0.5, h + 0.16), (0, h + 0.16)])
    return [(body, M(r, "gimp_pastel", "paint_white", "clouds_blue", "paint_teal", "marble_green")),
            (lid, M(r, *METALS, "paint_red"))]


def candlestick(r):
    base, h = r.uniform(0.4, 0.6), r.uniform(0.6, 1.1)
    holder = lathe([(0, 0), (base, 0), (base, 0.06), (0.1, 0.15), (0.08, h), (0.22, h + 0.05), (0.22, h + 0.12), (0, h + 0.12)])
    ch = r.uniform(0.6, 1.2)
    candle = cyl(0.12, [0, h + 0.1, 0], [0, h + 0.1 + ch, 0])
    flame = lathe(smooth_profile([(0, 0), (0.06, 0.05), (0.04, 0.14), (0, 0.22)], 10))
    at(flame, y=h + 0.12 + ch)
    return [(holder, M(r, "metal_brass", "metal_silver", "metal_gold")), (candle, M(r, "paint_white", "paint_red", "paint_yellow")),
            (flame, _mats()["paint_orange"])]


def chess_pawn(r):
    s = r.uniform(0.9, 1.1)
    prof = smooth_profile([(0, 0), (0.55, 0), (0.55, 0.1), (0.45, 0.2), (0.28, 0.35), (0.18, 0.8 * s),
                           (0.3, 0.85 * s), (0.16, 0.92 * s)], 16)
    head = sphere(r.uniform(0.22, 0.28), y=0.92 * s + 0.2)
    m = M(r, "paint_black", "paint_white", "wood_light", "wood_dark", "marble_white")
    return [(lathe(prof), m), (head, m)]


def spinning_top(r):
    R, h = r.uniform(0.6, 0.9), r.uniform(0.9, 1.3)
    body = lathe(smooth_profile([(0, 0), (0.1, 0.08), (R, h * 0.5), (R * 0.9, h * 0.65), (0.1, h * 0.7), (0, h * 0.7)], 16))
    stick = cyl(0.06, [0, h * 0.6, 0], [0, h, 0])
    return [(body, M(r, *PAINTS, "stripes_candy", "wood_light")), (stick, M(r, *WOODS))]


def bell(r):
    R, h = r.uniform(0.7, 0.9), r.uniform(0.9, 1.2)
    outer = smooth_profile([(R * 0.45, h * 0.95), (R * 0.55, h * 0.7), (R * 0.75, h * 0.25), (R, 0)], 18)
    # closed outline: apex, outer flank down to the lip, inner flank back up (a hollow bell)
    body = lathe(np.concatenate([[(0, h)], outer, [(R * 0.92, 0.0), (R * 0.5, h * 0.62), (0, h * 0.86)]])[::-1])
    loop = torus(0.12, 0.04, y=h + 0.1, axis="z")
    clapper = sphere(0.14, y=-0.05)
    m = M(r, "metal_brass", "metal_gold", "metal_bronze", "metal_silver")
    return [(body, m), (loop, m), (clapper, M(r, *METALS))]


def hourglass(r):
    R, h = r.uniform(0.45, 0.6), r.uniform(1.6, 2.1)
    glass = lathe(smooth_profile([(0, 0.08), (R, 0.12), (R, h * 0.3), (0.06, h * 0.5), (R, h * 0.7), (R, h - 0.12), (0, h - 0.08)], 28))
    ends = [cyl(R * 1.35, [0, 0, 0], [0, 0.1, 0], 32), cyl(R * 1.35, [0, h - 0.1, 0], [0, h, 0], 32)]
    rods = [cyl(0.04, [R * 1.2 * np.cos(a), 0.1, R * 1.2 * np.sin(a)], [R * 1.2 * np.cos(a), h - 0.1, R * 1.2 * np.sin(a)], 8)
            for a in np.radians([30, 150, 270])]
    w = M(r, *WOODS)
    return [(glass, M(r, "paint_white", "clouds_blue", "sandstone"))] + [(x, w) for x in ends + rods]


def traffic_cone(r):
    R, h = r.uniform(0.35, 0.5), r.uniform(1.3, 1.8)
    base = box(R * 2.6, 0.08, R * 2.6, y=0.04)
    body = lathe([(0, 0.08), (R, 0.08), (R * 0.12, h), (0, h)])
    band = lathe([(R * 0.75 + 0.02, h * 0.3), (R * 0.55 + 0.02, h * 0.55)], 40)
    return [(base, M(r, "paint_orange", "paint_black")), (body, _jitter(_mats()["paint_orange"], r)),
            (band, _mats()["paint_white"])]


def light_bulb(r):
    R = r.uniform(0.5, 0.65)
    glass = lathe(np.concatenate([[(0, 0.6)], smooth_profile([(0.26, 0.6), (0.3, 0.78), (R * 0.85, 1.0 + R * 0.2), (R, 1.0 + R),
                                                             (R * 0.7, 1.0 + 1.7 * R), (0, 1.0 + 2 * R)], 24)]))
    screw = lathe(np.array([(0, 0)] + [(0.27 if i % 2 else 0.23, 0.12 + 0.08 * i) for i in range(7)] + [(0.27, 0.62), (0, 0.62)]))
    tip = cyl(0.1, [0, 0, 0], [0, 0.12, 0])
    return [(glass, M(r, "paint_white", "paint_yellow", "plastic_white")), (screw, M(r, "metal_aluminium", "metal_brass")),
            (tip, _mats()["paint_black"])]


def bucket(r):
    R, h = r.uniform(0.55, 0.7), r.uniform(0.9, 1.2)
    body = lathe([(0, 0), (R * 0.8, 0), (R, h), (R * 0.95, h), (R * 0.76, 0.05), (0, 0.05)])
    handle = tube(arc(R, 0, 180, 24, centre=(0, h, 0)), 0.03)
    rot(handle, r.uniform(-40, 40), [0, 1, 0])
    return [(body, M(r, *METALS, *PAINTS)), (handle, M(r, *METALS))]


def amphora(r):
    R, h = r.uniform(0.5, 0.7), r.uniform(1.8, 2.4)
    body = lathe(smooth_profile([(0, 0), (0.2, 0.02), (0.15, 0.15), (R, h * 0.45), (R * 0.8, h * 0.7), (0.22, h * 0.83),
                                 (0.2, h * 0.95), (0.3, h)], 30))
    handles = [tube([(s * 0.22, h * 0.88, 0), (s * 0.55, h * 0.9, 0), (s * 0.6, h * 0.8, 0), (s * R * 0.85, h * 0.68, 0)], 0.045)
               for s in (-1, 1)]
    m = M(r, "sandstone", "paint_orange", "rust", "paint_brown", "marble_white")
    return [(body, m)] + [(x, m) for x in handles]


def barrel(r):
    R, h = r.uniform(0.6, 0.75), r.uniform(1.3, 1.7)
    body = lathe(smooth_profile([(0, 0), (R * 0.85, 0), (R * 1.1, h * 0.5), (R * 0.85, h), (0, h)], 24), 36)
    hoops = [lathe([(R * 0.86 + 0.25 * R * (1 - (2 * t - 1) ** 2) + 0.02, h * t - 0.03),
                    (R * 0.86 + 0.25 * R * (1 - (2 * t - 1) ** 2) + 0.02, h * t + 0.03)], 36)
             for t in (0.12, 0.35, 0.65, 0.88)]
    return [(body, M(r, *WOODS))] + [(x, M(r, "metal_iron")) for x in hoops[:1]] + [(x, _mats()["metal_iron"]) for x in hoops[1:]]


def teapot(r):
    R, h = r.uniform(0.7, 0.9), r.uniform(0.9, 1.2)
    body = lathe(smooth_profile([(0, 0), (R * 0.7, 0), (R, h * 0.45), (R * 0.65, h * 0.95), (0.3, h)], 24).tolist() + [(0, h)])
    lid = lathe([(0, h), (0.35, h), (0.2, h + 0.12), (0.08, h + 0.15), (0.1, h + 0.25), (0, h + 0.28)])
    spout = tube([(R * 0.8, h * 0.35, 0), (R * 1.2, h * 0.55, 0), (R * 1.45, h * 0.9, 0)], 0.08)
    handle = tube(np.stack([-R * 0.85 - h * 0.3 * np.cos(np.linspace(-1.3, 1.3, 16)), h * 0.5 + h * 0.3 * np.sin(np.linspace(-1.3, 1.3, 16)),
                            np.zeros(16)], 1), 0.06)
    m = M(r, *CERAMIC, *METALS)
    return [(body, m), (lid, m), (spout, m), (handle, m)]


def funnel(r):
    R, h = r.uniform(0.7, 1.0), r.uniform(0.7, 1.0)
    body = lathe([(0.12, 0), (0.12, h * 0.6), (R, h * 0.6 + h), (R * 0.96, h * 0.6 + h), (0.09, h * 0.62), (0.09, 0)])
    return [(body, M(r, *METALS, *PAINTS))]


# ---- primitive assemblies ---------------------------------------------------------------------


def rocket(r):
    R, h = r.uniform(0.25, 0.35), r.uniform(2.0, 2.8)
    body = cyl(R, [0, 0.3, 0], [0, h, 0], 32)
    nose = lathe(np.concatenate([[(0, h)], smooth_profile([(R, h), (R * 0.75, h + 0.35), (0, h + r.uniform(0.6, 0.9))], 12)]))
    nozzle = lathe([(0, 0.3), (R * 0.6, 0.3), (R * 0.85, 0.05), (0, 0.05)])
    nf = int(r.integers(3, 5))
    fins = [rot(prism([(R * 0.9, 0.3), (R * 2.2, 0.0), (R * 2.0, 0.5), (R * 0.9, 1.0)], 0.05, -0.025), 360 * i / nf + 45, [0, 1, 0])
            for i in range(nf)]
    fm = M(r, *PAINTS)
    window = at(C.cylinder(R * 0.35, 0.06), 0, h * 0.7, R)  # a porthole facing +Z
    return [(body, M(r, "paint_white", "metal_aluminium", "metal_silver")), (nose, fm), (nozzle, _mats()["metal_iron"]),
            (window, _mats()["clouds_blue"])] + [(f, fm) for f in fins]


def dumbbell(r):
    L, w = r.uniform(1.2, 1.8), r.uniform(0.35, 0.55)
    bar = cyl(0.07, [-L / 2 - 0.1, 0, 0], [L / 2 + 0.1, 0, 0])
    m = M(r, "paint_black", "metal_iron", "plastic_red", "plastic_blue", "metal_chrome")
    if r.random() < 0.5:
        ends = [sphere(w, x=s * L / 2) for s in (-1, 1)]
    else:
        n = int(r.integers(1, 4))
        ends = [cyl(w * (1 - 0.15 * k), [s * (L / 2 - 0.1 + 0.12 * k), 0, 0], [s * (L / 2 + 0.02 + 0.12 * k), 0, 0], 32)
                for s in (-1, 1) for k in range(n)]
    return [(bar, M(r, "metal_chrome", "metal_silver"))] + [(e, m) for e in ends]


def snowman(r):
    rs = np.sort(r.uniform(0.3, 0.7, 3))[::-1] * [1.0, 0.8, 0.65] / 0.7
    y, parts = 0.0, []
    snow = M(r, "paint_white", "plastic_white")
    centres = []
    for k, rr in enumerate(rs):
        y += rr * (0.85 if k else 1.0)
        parts.append((sphere(rr, y=y, sub=3), snow))
        centres.append(y)
        y += rr * 0.85
    hr = rs[2]
    parts.append((at(C.cone(hr * 0.14, hr * 0.8), 0, centres[2], hr * 0.9), _mats()["paint_orange"]))
    eye = _mats()["paint_black"]
    for s in (-1, 1):
        parts.append((sphere(hr * 0.09, x=s * hr * 0.35, y=centres[2] + hr * 0.3, z=hr * 0.88, sub=1), eye))
    for k in range(3):
        parts.append((sphere(rs[1] * 0.08, y=centres[1] + rs[1] * (0.4 - 0.4 * k), z=rs[1] * 0.97, sub=1), eye))
    if r.random() < 0.7:
        top = y - hr * 0.3
        parts.append((cyl(hr * 1.0, [0, top, 0], [0, top + 0.05, 0]), eye))
        parts.append((cyl(hr * 0.65, [0, top, 0], [0, top + hr * 1.0, 0]), eye))
    return parts


def mushroom(r):
    h, cap = r.uniform(0.6, 1.2), r.uniform(0.6, 1.0)
    stem = lathe(smooth_profile([(0, 0), (0.25, 0), (0.18, h * 0.5), (0.15, h)], 10).tolist() + [(0, h)])
    flat = r.uniform(0.4, 0.9)
    capm = lathe(np.concatenate([[(0, h - 0.05)], smooth_profile([(cap * 0.3, h - 0.05), (cap, h), (cap * 0.7, h + cap * flat * 0.7),
                                                                 (0, h + cap * flat)], 18)]))
    spots = []
    cm = M(r, "paint_red", "paint_brown", "paint_orange", "paint_yellow")
    for k in range(int(r.integers(0, 7))):
        a, el = r.uniform(0, 2 * np.pi), r.uniform(0.25, 0.8)
        d = np.array([np.cos(a) * np.cos(el), np.sin(el) * flat, np.sin(a) * np.cos(el)])
        spots.append((sphere(0.09, *(d * cap * 0.95 + [0, h, 0]), sub=1), _mats()["paint_white"]))
    return [(stem, M(r, "paint_white", "sandstone")), (capm, cm)] + spots


def hammer(r):
    L = r.uniform(1.8, 2.4)
    handle = cyl(0.08, [0, 0, 0], [0, L, 0])
    hw = r.uniform(0.7, 1.0)
    head = box(hw, 0.25, 0.25, y=L)
    claw = prism([(0, -0.1), (0.45, 0.1), (0.4, 0.2), (0, 0.08)], 0.2, -0.1)
    at(claw, -hw / 2 - 0.38, L - 0.05, 0)
    return [(handle, M(r, *WOODS, "plastic_red", "plastic_yellow")), (head, M(r, "metal_iron", "metal_silver")), (claw, _mats()["metal_iron"])]


def ladder(r):
    h, w = r.uniform(2.2, 3.0), r.uniform(0.7, 1.0)
    n = int(r.integers(5, 9))
    m = M(r, *WOODS, "metal_aluminium")
    rails = [box(0.1, h, 0.08, x=s * w / 2, y=h / 2) for s in (-1, 1)]
    rungs = [cyl(0.035, [-w / 2, y, 0], [w / 2, y, 0], 12) for y in np.linspace(0.3, h - 0.25, n)]
    return [(x, m) for x in rails + rungs]


def car(r):
    L, W, H = r.uniform(2.2, 2.8), r.uniform(1.0, 1.2), r.uniform(0.45, 0.6)
    wr = r.uniform(0.22, 0.3)
    body = box(W, H, L, y=wr + H / 2 - 0.05)
    cl = L * r.uniform(0.45, 0.6)
    cab = hull([[sx * W * 0.45, wr + H - 0.05, z] for sx in (-1, 1) for z in (-cl / 2, cl / 2)] +
               [[sx * W * 0.4, wr + H + r.uniform(0.35, 0.5), z] for sx in (-1, 1) for z in (-cl / 3, cl / 4)])
    at(cab, 0, 0, -L * r.uniform(0.0, 0.12))
    wheels = [cyl(wr, [sx * W / 2 - 0.12 * sx, wr, sz * L * 0.32], [sx * W / 2 + 0.05 * sx, wr, sz * L * 0.32], 24)
              for sx in (-1, 1) for sz in (-1, 1)]
    lights = [box(0.2, 0.1, 0.04, x=sx * W * 0.33, y=wr + H * 0.6, z=L / 2) for sx in (-1, 1)]
    paint = M(r, *PAINTS, "metal_silver")
    return [(body, paint), (cab, _mats()["clouds_blue"] if r.random() < 0.5 else paint)] + \
        [(w, _mats()["paint_black"]) for w in wheels] + [(l, _mats()["paint_yellow"]) for l in lights]


def house(r):
    W, D, H = r.uniform(1.6, 2.2), r.uniform(1.4, 2.0), r.uniform(1.0, 1.5)
    walls = box(W, H, D, y=H / 2)
    rh = r.uniform(0.6, 1.0)
    roof = hull([[sx * (W / 2 + 0.1), H, sz * (D / 2 + 0.1)] for sx in (-1, 1) for sz in (-1, 1)] +
                [[sx * (W / 2 + 0.1), H + rh, 0] for sx in (-1, 1)])
    door = box(0.35, 0.65, 0.04, x=r.uniform(-W / 4, W / 4), y=0.325, z=D / 2)
    wins = [box(0.3, 0.3, 0.04, x=sx * W * 0.32, y=H * 0.62, z=D / 2) for sx in (-1, 1)]
    chim = box(0.22, rh, 0.22, x=W * 0.28, y=H + rh * 0.7, z=-D * 0.15)
    return [(walls, M(r, "paint_white", "paint_yellow", "concrete", "sandstone", "wood_light")),
            (roof, M(r, "paint_red", "paint_brown", "paint_grey", "rust")), (door, M(r, *WOODS)),
            (chim, M(r, "concrete", "paint_red"))] + [(w, _mats()["clouds_blue"]) for w in wins]


def windmill(r):
    h = r.uniform(1.6, 2.2)
    tower = lathe([(0, 0), (0.55, 0), (0.35, h), (0, h)], 8)
    cap = cone_y(0.42, 0.4, y=h)
    hub = at(C.cylinder(0.09, 0.2), 0, h - 0.1, 0.42)
    L = r.uniform(1.0, 1.4)
    blades = [rot(box(0.12, L, 0.03, y=L / 2 + 0.1), a, [0, 0, 1]) for a in np.arange(4) * 90 + r.uniform(0, 90)]
    for b in blades:
        at(b, 0, h - 0.1, 0.52)
    bm = M(r, "paint_white", "wood_light")
    return [(tower, M(r, "paint_white", "sandstone", "concrete", "paint_red")), (cap, M(r, "paint_red", "paint_brown", "paint_grey")),
            (hub, _mats()["metal_iron"])] + [(b, bm) for b in blades]


def lollipop(r):
    L = r.uniform(1.5, 2.2)
    stick = cyl(0.05, [0, 0, 0], [0, L, 0], 12)
    if r.random() < 0.5:
        R = r.uniform(0.45, 0.65)
        candy = at(C.cylinder(R, 0.18, sections=40), 0, L + R * 0.9, 0)
        m = M(r, "stripes_candy", "dots_yellow", "checker_red", *PAINTS)
    else:
        R = r.uniform(0.35, 0.5)
        candy = sphere(R, y=L + R * 0.9, sub=3)
        m = M(r, *PAINTS, "stripes_candy")
    return [(stick, _mats()["paint_white"]), (candy, m)]


def axe(r):
    L = r.uniform(1.8, 2.3)
    handle = cyl(0.07, [0, 0, 0], [0, L, 0], 12)
    bw, bh = r.uniform(0.5, 0.8), r.uniform(0.4, 0.7)
    blade = hull([[0, L - 0.1, -0.06], [0, L - 0.1, 0.06], [0, L + 0.15, -0.06], [0, L + 0.15, 0.06],
                  [bw, L - bh / 2, 0], [bw, L + bh / 2 + 0.1, 0], [bw * 0.9, L + bh / 2, 0.01], [bw * 0.9, L - bh / 2, -0.01]])
    return [(handle, M(r, *WOODS)), (blade, M(r, "metal_iron", "metal_silver", "rust"))]


def umbrella(r):
    R, h = r.uniform(1.0, 1.3), r.uniform(1.6, 2.0)
    shaft = cyl(0.035, [0, 0.0, 0], [0, h + 0.15, 0], 10)
    ribs = int(r.integers(6, 10))
    canopy = lathe(np.concatenate([[(0, h + 0.15)], smooth_profile([(0.05, h + 0.15), (R * 0.6, h), (R, h - R * 0.35)], 12),
                                   [(R * 0.98, h - R * 0.36), (0, h + 0.08)]]), ribs)
    hook = tube(arc(0.15, 180, 360, 14, centre=(0.15, 0.0, 0)), 0.04)
    return [(shaft, _mats()["metal_iron"]), (canopy, M(r, *PAINTS, "dots_yellow", "plaid_green", "stripes_blue")),
            (hook, M(r, *WOODS, "paint_black"))]


def sword(r):
    L, w = r.uniform(2.0, 2.6), r.uniform(0.14, 0.22)
    blade = hull([[sx * w / 2, 0.5, 0] for sx in (-1, 1)] + [[sx * w / 2, L * 0.9, 0] for sx in (-1, 1)] + [[0, L, 0]] +
                 [[0, y, sz * 0.03] for y in (0.5, L * 0.9) for sz in (-1, 1)])
    guard = box(r.uniform(0.5, 0.8), 0.08, 0.12, y=0.46)
    grip = cyl(0.05, [0, 0.05, 0], [0, 0.45, 0], 12)
    pommel = sphere(0.09, y=0.02, sub=1)
    gm = M(r, "metal_gold", "metal_brass", "metal_iron")
    return [(blade, M(r, "metal_chrome", "metal_silver")), (guard, gm), (grip, M(r, "paint_brown", "paint_black", "paint_red")), (pommel, gm)]


def airplane(r):
    L, span = r.uniform(2.6, 3.2), r.uniform(2.6, 3.4)
    fus = C.capsule(height=L - 0.5, radius=0.25, count=[24, 12])  # fuselage along z
    wing = hull([[sx * span / 2, 0, z] for sx in (-1, 1) for z in (0.0, -0.35)] + [[0, 0, 0.45], [0, 0, -0.6]])
    wing = hull(np.concatenate([wing.vertices + [0, 0.03, 0], wing.vertices - [0, 0.03, 0]]))
    at(wing, 0, -0.05, r.uniform(0.0, 0.3))
    tail_w = hull([[sx * span * 0.2, 0, z] for sx in (-1, 1) for z in (-L / 2 + 0.05, -L / 2 + 0.3)] + [[0, 0.03, -L / 2 + 0.05]])
    tail_w = hull(np.concatenate([tail_w.vertices + [0, 0.03, 0], tail_w.vertices - [0, 0.03, 0]]))
    at(tail_w, 0, 0.05, 0)
    fin = prism([(0, 0), (0.35, 0), (0.5, 0.55), (0.3, 0.55)], 0.05, -0.025)
    rot(fin, 90, [0, 1, 0])
    at(fin, 0, 0.1, -L / 2 + 0.05)
    m = M(r, "paint_white", "metal_silver", *PAINTS)
    acc = M(r, *PAINTS)
    return [(fus, m), (wing, m), (tail_w, acc), (fin, acc)]


def sailboat(r):
    L, W = r.uniform(2.0, 2.6), r.uniform(0.6, 0.8)
    hullm = hull([[sx * W / 2, 0.35, z] for sx in (-1, 1) for z in (-L / 2, L / 3)] + [[0, 0.4, L / 2 + 0.2],
                  [0, 0, -L / 2 + 0.2], [0, 0, L / 3]])
    mh = r.uniform(1.8, 2.4)
    mast = cyl(0.04, [0, 0.35, 0], [0, 0.35 + mh, 0], 10)
    sail = prism([(0, 0.5), (0, 0.3 + mh), (L * 0.4, 0.5)], 0.02, -0.01)
    rot(sail, -90, [0, 1, 0])
    at(sail, 0, 0, 0.05)
    jib = prism([(0, 0.5), (0, 0.1 + mh * 0.8), (L * 0.35, 0.5)], 0.02, -0.01)
    rot(jib, 90, [0, 1, 0])
    return [(hullm, M(r, *WOODS, "paint_white", "paint_blue", "paint_red")), (mast, M(r, *WOODS)),
            (sail, M(r, "paint_white", "stripes_blue", "plastic_white")), (jib, M(r, "paint_white", "paint_red", "paint_yellow"))]


def robot(r):
    bw, bh = r.uniform(0.8, 1.1), r.uniform(0.9, 1.2)
    legs_h = r.uniform(0.6, 0.9)
    body = box(bw, bh, 0.6, y=legs_h + bh / 2)
    hs = r.uniform(0.45, 0.6)
    head = box(hs * 1.1, hs, hs, y=legs_h + bh + hs / 2 + 0.05) if r.random() < 0.6 else sphere(hs * 0.6, y=legs_h + bh + hs * 0.5, sub=3)
    legs = [box(0.22, legs_h, 0.25, x=s * bw * 0.25, y=legs_h / 2) for s in (-1, 1)]
    arms = [box(0.18, bh * 0.9, 0.2, x=s * (bw / 2 + 0.12), y=legs_h + bh * 0.5) for s in (-1, 1)]
    eyes = [sphere(0.07, x=s * hs * 0.22, y=legs_h + bh + hs * 0.6, z=hs * 0.5 + 0.02, sub=1) for s in (-1, 1)]
    ant = cyl(0.025, [0, legs_h + bh + hs, 0], [0, legs_h + bh + hs + 0.3, 0], 8)
    knob = sphere(0.06, y=legs_h + bh + hs + 0.32, sub=1)
    m = M(r, *METALS, *PAINTS)
    m2 = M(r, "metal_iron", "paint_grey", "paint_black")
    return [(body, m), (head, m)] + [(x, m2) for x in legs + arms] + [(e, _mats()["paint_red"]) for e in eyes] + \
        [(ant, m2), (knob, _mats()["paint_red"])]


def trophy(r):
    h = r.uniform(1.4, 1.9)
    base = box(0.8, 0.3, 0.8, y=0.15)
    cup = lathe([(0, 0.3), (0.35, 0.3), (0.3, 0.38), (0.08, 0.5), (0.08, h * 0.5), (0.55, h * 0.85), (0.6, h), (0.55, h), (0, h * 0.7)])
    handles = [tube([(s * 0.45, h * 0.85, 0), (s * 0.8, h * 0.85, 0), (s * 0.75, h * 0.6, 0), (s * 0.25, h * 0.6, 0)], 0.04) for s in (-1, 1)]
    gm = M(r, "metal_gold", "metal_silver", "metal_bronze")
    return [(base, M(r, *WOODS, "marble_white", "paint_black")), (cup, gm)] + [(x, gm) for x in handles]


def lighthouse(r):
    h, R = r.uniform(2.0, 2.6), r.uniform(0.4, 0.5)
    n = int(r.integers(3, 6))
    ys = np.linspace(0, h, n + 1)
    c1, c2 = M(r, "paint_red", "paint_blue", "paint_black"), _mats()["paint_white"]
    bands = [(lathe([(0, ys[i]), (R * (1 - 0.35 * ys[i] / h), ys[i]), (R * (1 - 0.35 * ys[i + 1] / h), ys[i + 1]), (0, ys[i + 1])], 32),
              c1 if i % 2 == 0 else c2) for i in range(n)]
    gallery = cyl(R * 0.9, [0, h, 0], [0, h + 0.07, 0], 32)
    lamp = cyl(R * 0.5, [0, h + 0.07, 0], [0, h + 0.4, 0], 16)
    roof = cone_y(R * 0.65, 0.3, y=h + 0.4)
    return bands + [(gallery, _mats()["paint_black"]), (lamp, _mats()["paint_yellow"]), (roof, c1)]


def tent(r):
    W, D, H = r.uniform(1.4, 2.0), r.uniform(1.6, 2.4), r.uniform(1.0, 1.5)
    body = hull([[sx * W / 2, 0, sz * D / 2] for sx in (-1, 1) for sz in (-1, 1)] + [[0, H, sz * D / 2] for sz in (-1, 1)])
    door = hull([[sx * W * 0.2, 0, D / 2 + 0.01] for sx in (-1, 1)] + [[0, H * 0.6, D / 2 + 0.01], [0, 0, D / 2 + 0.03]])
    poles = [cyl(0.03, [0, 0, sz * D / 2 + sz * 0.02], [0, H + 0.2, sz * D / 2 + sz * 0.02], 8) for sz in (-1, 1)]
    return [(body, M(r, "paint_orange", "paint_green", "camouflage", "paint_blue", "paint_yellow")), (door, _mats()["paint_black"])] + \
        [(p, _mats()["metal_iron"]) for p in poles]


def signpost(r):
    h = r.uniform(2.0, 2.6)
    post = cyl(0.06, [0, 0, 0], [0, h, 0], 12)
    n = int(r.integers(1, 4))
    signs = []
    for k in range(n):
        w = r.uniform(0.7, 1.1)
        s = prism([(0, -0.12), (w, -0.12), (w + 0.18, 0), (w, 0.12), (0, 0.12)], 0.05, 0.06)
        if r.random() < 0.5:
            s.apply_scale([-1, 1, 1])
        rot(s, r.uniform(-60, 60), [0, 1, 0])
        signs.append(at(s, 0, h - 0.2 - 0.32 * k, 0))
    return [(post, M(r, *WOODS, "metal_iron"))] + [(s, M(r, "paint_white", "paint_green", "paint_yellow", *WOODS)) for s in signs]


def mailbox(r):
    h = r.uniform(1.1, 1.4)
    post = box(0.12, h, 0.12, y=h / 2)
    L, W = r.uniform(0.7, 0.9), r.uniform(0.35, 0.45)
    boxm = box(W, W * 0.6, L, y=h + W * 0.3)
    top = at(C.cylinder(W / 2, L, sections=24), 0, h + W * 0.6, 0)  # rounded lid along z
    flag = box(0.03, 0.35, 0.08, x=W / 2 + 0.02, y=h + W * 0.7, z=-L * 0.2)
    m = M(r, "paint_blue", "paint_black", "paint_red", "metal_silver", "paint_green")
    return [(post, M(r, *WOODS)), (boxm, m), (top, m), (flag, _mats()["paint_red"])]


def anchor(r):
    h = r.uniform(2.0, 2.5)
    shank = cyl(0.08, [0, 0.1, 0], [0, h, 0], 12)
    ring = torus(0.18, 0.045, y=h + 0.2, axis="z")
    stock = cyl(0.06, [-0.5, h - 0.25, 0], [0.5, h - 0.25, 0], 12)
    R = r.uniform(0.7, 1.0)
    arms = tube(arc(R, 200, 340, 24, centre=(0, R + 0.05, 0)), 0.08)
    flukes = [cone_y(0.16, 0.35, x=s * R * np.cos(np.radians(20)), y=R + 0.05 - R * np.sin(np.radians(20)) - 0.05) for s in (-1, 1)]
    m = M(r, "metal_iron", "paint_black", "rust", "metal_brass")
    return [(x, m) for x in [shank, ring, stock, arms] + flukes]


def key(r):
    L = r.uniform(1.8, 2.4)
    bow = torus(0.32, 0.08, y=L - 0.3, axis="z")
    shaft = cyl(0.07, [0, 0, 0], [0, L - 0.6, 0], 12)
    teeth = [box(r.uniform(0.18, 0.35), 0.1, 0.08, x=0.15, y=0.08 + 0.14 * k) for k in range(int(r.integers(2, 5)))]
    m = M(r, "metal_brass", "metal_silver", "metal_gold", "metal_iron")
    return [(bow, m), (shaft, m)] + [(t, m) for t in teeth]


def spring(r):
    turns, R, h = r.uniform(4, 8), r.uniform(0.4, 0.6), r.uniform(1.5, 2.5)
    t = np.linspace(0, 2 * np.pi * turns, int(turns * 24))
    path = np.stack([R * np.cos(t), h * t / t[-1], R * np.sin(t)], 1)
    return [(tube(path, r.uniform(0.04, 0.08), 8), M(r, *METALS, "plastic_red", "plastic_blue"))]


def arrow(r):
    L = r.uniform(2.4, 3.0)
    shaft = cyl(0.04, [0, 0, 0], [0, L, 0], 10)
    head = cone_y(0.13, 0.4, y=L)
    fl = [rot(prism([(0.04, 0), (0.22, 0.05), (0.22, 0.35), (0.04, 0.45)], 0.015, -0.0075), 120 * k, [0, 1, 0]) for k in range(3)]
    fm = M(r, "paint_red", "paint_yellow", "paint_white", "paint_green")
    return [(shaft, M(r, *WOODS)), (head, M(r, "metal_iron", "metal_silver"))] + [(f, fm) for f in fl]


def cactus(r):
    h = r.uniform(1.6, 2.2)
    pot = lathe([(0, 0), (0.4, 0), (0.5, 0.5), (0, 0.5)])
    trunk = C.capsule(height=h, radius=0.22, count=[16, 8])
    rot(trunk, -90, [1, 0, 0])
    at(trunk, 0, 0.5 + h / 2, 0)
    arms = []
    for s in (-1, 1):
        if r.random() < 0.85:
            y0, ah = r.uniform(0.9, 1.3), r.uniform(0.4, 0.7)
            arms.append(tube([(0, y0, 0), (s * 0.35, y0, 0), (s * 0.5, y0 + 0.1, 0), (s * 0.55, y0 + 0.25, 0), (s * 0.55, y0 + 0.25 + ah, 0)], 0.13, 10))
    g = M(r, "paint_green", "plastic_green")
    return [(pot, M(r, "sandstone", "paint_orange", "rust")), (trunk, g)] + [(a, g) for a in arms]


def fire_hydrant(r):
    h = r.uniform(1.0, 1.3)
    body = lathe([(0, 0), (0.4, 0), (0.4, 0.08), (0.3, 0.1), (0.3, h), (0.36, h), (0.36, h + 0.06)] +
                 [(0.34 * np.cos(a), h + 0.06 + 0.3 * np.sin(a)) for a in np.linspace(0, np.pi / 2, 8)])
    noz = [cyl(0.11, [0, h * 0.7, 0], [s * 0.45, h * 0.7, 0], 16) for s in (-1, 1)] + [cyl(0.14, [0, h * 0.55, 0], [0, h * 0.55, 0.42], 16)]
    top = cyl(0.06, [0, h + 0.3, 0], [0, h + 0.42, 0], 6)
    m = M(r, "paint_red", "paint_yellow", "paint_green")
    return [(body, m), (top, _mats()["metal_iron"])] + [(n, _mats()["metal_silver"]) for n in noz]


def pencil(r):
    L = r.uniform(2.4, 3.0)
    body = cyl(0.14, [0, 0.25, 0], [0, L, 0], 6)
    tip = lathe([(0, 0), (0.03, 0.04), (0.14, 0.25), (0, 0.25)], 6)
    lead = cone_y(0.035, 0.06, y=0.0)
    rot(lead, 180, [1, 0, 0])
    at(lead, 0, 0.06, 0)
    ferrule = cyl(0.145, [0, L, 0], [0, L + 0.15, 0], 16)
    eraser = cyl(0.14, [0, L + 0.15, 0], [0, L + 0.35, 0], 16)
    return [(body, M(r, "paint_yellow", "paint_red", "paint_blue", "paint_green", "paint_black")), (tip, _mats()["wood_light"]),
            (ferrule, _mats()["metal_silver"]), (eraser, _mats()["paint_pink"])]


def gift(r):
    s = r.uniform(0.8, 1.2, 3)
    bx = box(*s, y=s[1] / 2)
    rib = [box(s[0] + 0.02, s[1] + 0.02, 0.12, y=s[1] / 2), box(0.12, s[1] + 0.02, s[2] + 0.02, y=s[1] / 2)]
    bows = [rot(torus(0.15, 0.04, axis="z"), a, [0, 1, 0]) for a in (0, 90)]
    for b in bows:
        rot(b, 35, [1, 0, 0])
        at(b, 0, s[1] + 0.1, 0)
    rm = M(r, "paint_red", "metal_gold", "paint_white", "paint_blue")
    return [(bx, M(r, "stripes_candy", "dots_yellow", "checker_red", "plaid_green", *PAINTS))] + [(x, rm) for x in rib + bows]


def fir_tree(r):
    h = r.uniform(2.0, 2.6)
    trunk = cyl(0.12, [0, 0, 0], [0, 0.5, 0], 12)
    n = int(r.integers(2, 5))
    tiers = []
    for k in range(n):
        y0 = 0.4 + k * (h - 0.4) / (n + 0.5)
        R = 0.9 * (1 - k / (n + 1))
        tiers.append(cone_y(R, (h - 0.4) / n * 1.4, y=y0, sections=20))
    g = M(r, "paint_green", "plastic_green", "camouflage")
    return [(trunk, M(r, *WOODS))] + [(t, g) for t in tiers]


def screwdriver(r):
    hl, sl = r.uniform(0.8, 1.1), r.uniform(1.2, 1.6)
    handle = lathe(smooth_profile([(0, 0), (0.17, 0.03), (0.2, hl * 0.5), (0.16, hl * 0.9), (0.1, hl)], 14).tolist() + [(0, hl)], 8)
    shaft = cyl(0.04, [0, hl, 0], [0, hl + sl, 0], 10)
    tip = box(0.16, 0.12, 0.025, y=hl + sl + 0.04)
    return [(handle, M(r, "plastic_red", "plastic_yellow", "plastic_blue", "plastic_black", "plastic_green")),
            (shaft, _mats()["metal_chrome"]), (tip, _mats()["metal_chrome"])]


# ---- superquadrics ----------------------------------------------------------------------------


def _spow(x, e):
    return np.sign(x) * np.abs(x) ** e


def superellipsoid(e1, e2, a=(1, 1, 1), n=48) -> trimesh.Trimesh:
    """Barr's superellipsoid: e1 shapes the vertical profile, e2 the horizontal one."""
    eta = np.linspace(-np.pi / 2, np.pi / 2, n // 2 + 1)
    om = np.linspace(-np.pi, np.pi, n, endpoint=False)
    E, O = np.meshgrid(eta, om, indexing="ij")
    x = a[0] * _spow(np.cos(E), e1) * _spow(np.cos(O), e2)
    z = a[2] * _spow(np.cos(E), e1) * _spow(np.sin(O), e2)
    y = a[1] * _spow(np.sin(E), e1)
    return _grid_mesh(np.stack([x, y, z], -1), wrap=True)


def supertoroid(e1, e2, R=1.0, r=0.35, n=48) -> trimesh.Trimesh:
    eta = np.linspace(-np.pi, np.pi, n // 2, endpoint=False)
    om = np.linspace(-np.pi, np.pi, n, endpoint=False)
    E, O = np.meshgrid(eta, om, indexing="ij")
    rad = R + r * _spow(np.cos(E), e1)
    pts = np.stack([rad * _spow(np.cos(O), e2), r * _spow(np.sin(E), e1), rad * _spow(np.sin(O), e2)], -1)
    return _grid_mesh(pts, wrap=True, wrap_rows=True)


def _grid_mesh(P, wrap=True, wrap_rows=False) -> trimesh.Trimesh:
    nr, nc = P.shape[:2]
    idx = np.arange(nr * nc).reshape(nr, nc)
    rows = range(nr if wrap_rows else nr - 1)
    f = []
    for i in rows:
        i2 = (i + 1) % nr
        for j in range(nc if wrap else nc - 1):
            j2 = (j + 1) % nc
            f += [[idx[i, j], idx[i, j2], idx[i2, j2]], [idx[i, j], idx[i2, j2], idx[i2, j]]]
    m = trimesh.Trimesh(P.reshape(-1, 3), np.array(f), process=True)
    m.remove_unreferenced_vertices()
    m.update_faces(m.nondegenerate_faces())
    trimesh.repair.fix_normals(m)
    return m


def _sq(e1r, e2r, scale_r, mats=PAINTS + ("marble_white", "granite", "metal_gold", "checker_bw", "wood_light")):
    def gen(r):
        a = np.asarray([r.uniform(*s) for s in scale_r])
        return [(superellipsoid(r.uniform(*e1r), r.uniform(*e2r), a), M(r, *mats))]
    return gen


def donut(r):
    m = supertoroid(r.uniform(0.3, 1.2), r.uniform(0.3, 1.2), 1.0, r.uniform(0.25, 0.45))
    return [(m, M(r, *PAINTS, "metal_gold", "stripes_candy", "wood_light"))]


# ---- extruded glyphs --------------------------------------------------------------------------

GLYPH_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
               "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansCondensed-Bold.ttf",
               "DejaVuSerifCondensed.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif-Italic.ttf")


def glyph_available() -> bool:
    return (DEJAVU_DIR / "DejaVuSans.ttf").exists()


def _glyph(ch: str):
    def gen(r):
        from PIL import Image, ImageDraw, ImageFont
        from skimage.measure import marching_cubes
        fonts = [f for f in GLYPH_FONTS if (DEJAVU_DIR / f).exists()]
        font = ImageFont.truetype(str(DEJAVU_DIR / fonts[int(r.integers(len(fonts)))]), 56)
        img = Image.new("L", (96, 96), 0)
        ImageDraw.Draw(img).text((48, 48), ch, fill=255, font=font, anchor="mm")
        mask = np.asarray(img, float) / 255.0
        depth = int(r.integers(6, 16))
        vol = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2, depth + 2))
        vol[1:-1, 1:-1, 1:-1] = mask[:, :, None]
        v, f, _, _ = marching_cubes(vol, 0.5)
        # (row, col, depth) -> x = col, y = -row (image rows go down), z = depth
        v = np.stack([v[:, 1], -v[:, 0], v[:, 2] - depth / 2 - 1], 1)
        m = trimesh.Trimesh(v, f[:, ::-1], process=True)
        trimesh.repair.fix_normals(m)
        if r.random() < 0.3:  # a little italic shear
            m.apply_transform(trimesh.transformations.shear_matrix(np.radians(r.uniform(5, 15)), [1, 0, 0], [0, 0, 0], [0, 1, 0]))
        return [(m, M(r, *PAINTS, *METALS, *WOODS))]
    return gen


# ---- registry ---------------------------------------------------------------------------------

LATHE = {"goblet": goblet, "bowl": bowl, "mug": mug, "flowerpot": flowerpot, "jar": jar, "candlestick": candlestick,
         "chess_pawn": chess_pawn, "spinning_top": spinning_top, "bell": bell, "hourglass": hourglass,
         "traffic_cone": traffic_cone, "light_bulb": light_bulb, "bucket": bucket, "amphora": amphora,
         "barrel": barrel, "teapot": teapot, "funnel": funnel}
ASSEMBLY = {"rocket": rocket, "dumbbell": dumbbell, "snowman": snowman, "mushroom": mushroom, "hammer": hammer,
            "ladder": ladder, "car": car, "house": house, "windmill": windmill, "lollipop": lollipop, "axe": axe,
            "umbrella": umbrella, "sword": sword, "airplane": airplane, "sailboat": sailboat, "robot": robot,
            "trophy": trophy, "lighthouse": lighthouse, "tent": tent, "signpost": signpost, "mailbox": mailbox,
            "anchor": anchor, "key": key, "spring": spring, "arrow": arrow, "cactus": cactus,
            "fire_hydrant": fire_hydrant, "pencil": pencil, "gift": gift, "fir_tree": fir_tree,
            "screwdriver": screwdriver}
SUPERQUADRIC = {
    "blob": _sq((0.7, 1.3), (0.7, 1.3), [(0.7, 1.0)] * 3),
    "rounded_cube": _sq((0.08, 0.35), (0.08, 0.35), [(0.7, 1.0)] * 3),
    "diamond": _sq((1.6, 2.4), (1.6, 2.4), [(0.7, 1.0), (0.8, 1.2), (0.7, 1.0)]),
    "astroid": _sq((2.8, 3.8), (2.8, 3.8), [(0.8, 1.0)] * 3),
    "cushion": _sq((0.25, 0.5), (0.15, 0.4), [(0.9, 1.1), (0.2, 0.35), (0.9, 1.1)],
                   PAINTS + ("plaid_green", "dots_yellow", "checker_red", "stripes_blue")),
    "canister": _sq((0.1, 0.3), (0.9, 1.1), [(0.5, 0.7), (0.9, 1.3), (0.5, 0.7)]),
    "spindle": _sq((1.6, 2.2), (0.9, 1.1), [(0.4, 0.6), (1.0, 1.3), (0.4, 0.6)]),
    "capsule": _sq((0.6, 1.0), (0.9, 1.1), [(0.3, 0.4), (1.0, 1.3), (0.3, 0.4)]),
    "donut": donut,
}
GLYPHS = {f"glyph_{c}": _glyph(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"}

FAMILIES: dict[str, dict[str, Callable]] = {"lathe": LATHE, "assembly": ASSEMBLY, "superquadric": SUPERQUADRIC,
                                             "glyph": GLYPHS}


def generate(family: str, class_name: str, instance: int) -> Pieces:
    """Instance ``instance`` of a procedural class: deterministic, independent of any split seed."""
    rng = np.random.default_rng(np.random.SeedSequence([instance, *class_name.encode()]))
    with np.errstate(invalid="ignore", divide="ignore"):  # trimesh's centre of mass of open shells
        return FAMILIES[family][class_name](rng)
