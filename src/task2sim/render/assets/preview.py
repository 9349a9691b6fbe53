"""Contact sheets of the asset library and the material list (matplotlib, no GPU needed).

    python -m task2sim.render.assets.preview --cache-dir .cache/assets --out-dir results/assets \
        --classes 40 --per-class 3

Meshes are drawn with a small flat-shaded orthographic painter's-algorithm rasteriser on
matplotlib's PolyCollection (enough to check the objects are recognisable; the real renderer is
task2sim.render's backends).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from ...figures import save_figure
from .materials import list_materials, mean_colour
from .types import Mesh

YAW_DEG, PITCH_DEG = 30.0, 20.0   # a three-quarter view from the front (+Z) and slightly above


def _view_matrix(yaw=YAW_DEG, pitch=PITCH_DEG) -> np.ndarray:
    y, p = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rx @ ry  # object turned by yaw, then tilted towards the viewer on +Z


def draw_mesh(ax, mesh: Mesh, yaw=YAW_DEG, pitch=PITCH_DEG) -> None:
    from matplotlib.collections import PolyCollection
    R = _view_matrix(yaw, pitch)
    light = np.array([0.4, 0.6, 0.7])
    light /= np.linalg.norm(light)
    tris, cols, depth = [], [], []
    for p in mesh.parts:
        v = p.vertices @ R.T
        t = v[p.faces]
        n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        shade = 0.35 + 0.65 * np.abs(n @ light)  # abs: some models have inconsistent winding
        base = np.asarray(mean_colour(p.material))
        tris.append(t[:, :, :2])
        cols.append(np.clip(base[None] * shade[:, None], 0, 1))
        depth.append(t[:, :, 2].mean(1))
    t, c, d = np.concatenate(tris), np.concatenate(cols), np.concatenate(depth)
    order = np.argsort(d)  # far (-z) first
    ax.add_collection(PolyCollection(t[order], facecolors=c[order], edgecolors="none", antialiased=False))
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.axis("off")


def library_sheet(lib, out: Path, per_class: int = 3) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(lib.classes)
    groups_per_row = max(1, 12 // per_class)
    cols = groups_per_row * per_class
    rows = int(np.ceil(n / groups_per_row))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.45))
    axes = np.atleast_2d(axes)
    for ax in axes.flat:
        ax.axis("off")
    for c, name in enumerate(lib.classes):
        r, g = divmod(c, groups_per_row)
        for k, mesh in enumerate(lib.meshes(c)[:per_class]):
            ax = axes[r, g * per_class + k]
            draw_mesh(ax, mesh)
            if k == 0:
                cid = c + getattr(lib, "offset", 0)
                ax.set_title(f"{cid}: {name} ({mesh.source.split(':')[0][:5]})", fontsize=7, loc="left")
    save_figure(fig, out, dpi=90, tight={"pad": 0.3})


def materials_sheet(out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mats = list_materials()
    cols = 10
    rows = int(np.ceil(len(mats) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.35))
    yy, xx = np.mgrid[-1:1:96j, -1:1:96j]
    inside = xx ** 2 + yy ** 2 <= 1
    nz = np.sqrt(np.clip(1 - xx ** 2 - yy ** 2, 0, 1))
    nrm = np.stack([xx, -yy, nz], -1)
    light = np.array([-0.4, 0.6, 0.7]) / np.linalg.norm([-0.4, 0.6, 0.7])
    half = (light + [0, 0, 1]) / np.linalg.norm(light + [0, 0, 1])
    for ax, (i, m) in zip(axes.flat, enumerate(mats)):
        if m.texture is not None:  # sphere uvs, repeated by texture_scale
            u = (np.arctan2(xx, nz) / np.pi * 0.5 + 0.5) * m.texture_scale
            v = (yy * 0.5 + 0.5) * m.texture_scale
            th, tw = m.texture.shape[:2]
            tex = m.texture[(v * th).astype(int) % th, (u * tw).astype(int) % tw] / 255.0
        else:
            tex = np.ones((96, 96, 3))
        albedo = tex * np.asarray(m.base_colour)
        diff = np.clip(nrm @ light, 0, 1)[..., None]
        shin = 2.0 / max(m.roughness, 0.03) ** 2
        spec = (np.clip(nrm @ half, 0, 1) ** shin)[..., None] * m.specular
        spec_col = albedo if m.metallic > 0.5 else np.ones(3)
        img = (1 - m.metallic) * albedo * (0.2 + 0.8 * diff) + m.metallic * albedo * 0.35 + spec * spec_col
        img = np.where(inside[..., None], np.clip(img, 0, 1), 1.0)
        ax.imshow(img)
        ax.set_title(f"{i}: {m.name}", fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    save_figure(fig, out, dpi=90, tight={"pad": 0.3})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", type=Path, default=Path(".cache/assets"))
    ap.add_argument("--out-dir", type=Path, default=Path("results/assets"))
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--per-class", type=int, default=3)
    ap.add_argument("--first-class", type=int, default=0, help="start of the class range drawn")
    ap.add_argument("--name", default="library.png")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .library import AssetError, build_library
    try:
        lib = build_library(args.cache_dir, args.first_class + args.classes, args.per_class, 0.2)
    except AssetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.first_class:
        keep = list(range(args.first_class, len(lib.classes)))
        lib = _Subset(lib, keep)
    library_sheet(lib, args.out_dir / args.name, args.per_class)
    materials_sheet(args.out_dir / "materials.png")
    return 0


class _Subset:
    """A view of some classes of a library (for drawing a later range of classes)."""

    def __init__(self, lib, keep):
        self.classes = [lib.classes[c] for c in keep]
        self.offset = keep[0]
        self._lib, self._keep = lib, keep

    def meshes(self, c):
        return self._lib.meshes(self._keep[c])


if __name__ == "__main__":
    sys.exit(main())
