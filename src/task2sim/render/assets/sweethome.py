"""Sweet Home 3D furniture (Debian ``sweethome3d-furniture``): catalogue parsing and OBJ loading.

Each ``*.sh3f`` file is a zip archive with ``PluginFurnitureCatalog.properties`` (``name#N``,
``category#N``, ``model#N``, ``creator#N``, ``modelRotation#N``, ``width#N`` ...) and OBJ+MTL models.
Classes are the last word of the model's English name ("Round table" -> table).
"""

from __future__ import annotations

import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from .debian import fetch_package
from .types import Material

PACKAGE = "sweethome3d-furniture"
FURNITURE_DIR = "usr/share/sweethome3d/furniture"
MIN_MODELS = 3
# Plural or odd last words that name the same thing as a singular.
_SINGULAR = {"shelves": "shelf", "panes": "window", "couch": "sofa", "socket": "plug", "light": "lamp"}
# Last words that do not name one kind of object (or name flat marks with no shape to learn).
EXCLUDED = {"slot": "parking-slot lines on the ground", "bill": "flat banknotes",
            "unit": "toilets / air-conditioning / intercom units", "game": "card, dart and playground games",
            "stand": "knife and TV stands", "board": "white, chopping and diving boards"}


@dataclass(frozen=True)
class Model:
    catalogue: str        # sh3f file stem
    index: int            # N in the properties keys
    name: str
    category: str
    model: str            # path inside the zip
    creator: str
    licence: str          # the catalogue's licence line
    rotation: tuple[float, ...] | None   # 3x3 row-major, or None
    size: tuple[float, float, float]     # width (x), height (y), depth (z) in cm

    @property
    def key(self) -> str:
        return f"{self.catalogue}/{Path(self.model).stem}"

    @property
    def attribution(self) -> str:
        return (f'"{self.name}" by {self.creator}; {self.licence}; Sweet Home 3D furniture library '
                f"({self.catalogue}.sh3f, Debian {PACKAGE})")


def _unescape(s: str) -> str:
    s = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), s)
    return re.sub(r"\\(.)", r"\1", s)


def parse_properties(text: str) -> dict[str, str]:
    """Java .properties (key=value, '\\' line continuations, \\uXXXX escapes)."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        line = line.lstrip()
        if not line or line[0] in "#!":
            continue
        while line.endswith("\\") and not line.endswith("\\\\"):
            line = line[:-1] + next(lines, "").lstrip()
        m = re.match(r"((?:[^=:\\\s]|\\.)+)\s*[=:]?\s*(.*)$", line)
        if m:
            out[_unescape(m.group(1))] = _unescape(m.group(2))
    return out


def class_of(name: str) -> str | None:
    """Class = last word of the name, lower case, without digits or parenthesised notes."""
    words = re.findall(r"[a-z]+", re.sub(r"\(.*?\)", " ", name.lower()))
    if not words:
        return None
    return _SINGULAR.get(words[-1], words[-1])


def read_catalogue(root: Path) -> list[Model]:
    models: list[Model] = []
    for sh3f in sorted((root / FURNITURE_DIR).glob("*.sh3f")):
        with zipfile.ZipFile(sh3f) as z:
            props = parse_properties(z.read("PluginFurnitureCatalog.properties").decode("latin-1"))
        licence = props.get("license", "see the catalogue").strip()
        idx = sorted(int(k.split("#")[1]) for k in props if k.startswith("model#"))
        for n in idx:
            rot = props.get(f"modelRotation#{n}")
            models.append(Model(
                catalogue=sh3f.stem, index=n, name=props.get(f"name#{n}", "").strip(),
                category=props.get(f"category#{n}", ""), model=props[f"model#{n}"].lstrip("/"),
                creator=props.get(f"creator#{n}", "unknown").strip(), licence=licence,
                rotation=tuple(float(v) for v in rot.split()) if rot else None,
                size=tuple(float(props.get(f"{k}#{n}", "0") or 0) for k in ("width", "height", "depth"))))
    return models


def sweethome_classes(cache_dir: Path) -> dict[str, list[Model]]:
    """{class: models} for classes with >= MIN_MODELS models (fetches the package if needed)."""
    root = fetch_package(PACKAGE, cache_dir, members=(FURNITURE_DIR,))
    by_class: dict[str, list[Model]] = {}
    for m in read_catalogue(root):
        c = class_of(m.name)
        if c and len(c) > 1 and c not in EXCLUDED:
            by_class.setdefault(c, []).append(m)
    return {c: sorted(ms, key=lambda m: m.key) for c, ms in sorted(by_class.items()) if len(ms) >= MIN_MODELS}


_zips: dict[str, zipfile.ZipFile] = {}
_zlock = threading.Lock()


def _zip(path: Path) -> zipfile.ZipFile:
    with _zlock:
        if str(path) not in _zips:
            _zips[str(path)] = zipfile.ZipFile(path)
        return _zips[str(path)]


def load_model(model: Model, cache_dir: Path, work_dir: Path) -> list[tuple[trimesh.Trimesh, Material]]:
    """The model's material groups as (mesh, Material) pieces: SH3D frame (Y up, front +Z),
    rotated by modelRotation and scaled to the catalogue's width/height/depth like SH3D does."""
    root = fetch_package(PACKAGE, cache_dir, members=(FURNITURE_DIR,))
    z = _zip(root / FURNITURE_DIR / f"{model.catalogue}.sh3f")
    folder = str(Path(model.model).parent)
    prefix = "" if folder == "." else folder + "/"
    # A model folder holds the OBJ, its MTL and textures; root-level models take their siblings.
    members = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")
               and (prefix or "/" not in n)]
    for n in members:
        z.extract(n, work_dir)
    scene = trimesh.load(work_dir / model.model, force="scene")
    pieces, by_name = [], {}
    for geom in scene.dump(concatenate=False):
        if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
            continue
        mat = _material_of(geom, model)
        if mat.texture is None:  # untextured groups with one MTL name share one part
            mat = by_name.setdefault(mat.name, mat)
        pieces.append((geom, mat))
    if not pieces:
        raise ValueError(f"{model.key}: no triangles in {model.model}")
    R = np.asarray(model.rotation, float).reshape(3, 3) if model.rotation else None
    allv = np.concatenate([g.vertices for g, _ in pieces])
    if R is not None:
        allv = allv @ R.T
    ext = np.ptp(allv, axis=0)
    want = np.asarray(model.size, float)
    scale = np.where((want > 0) & (ext > 1e-9), want / np.maximum(ext, 1e-9), 1.0)
    if not np.all(want > 0):
        scale[:] = 1.0  # no size given: keep the model's own proportions
    for g, _ in pieces:
        T = np.eye(4)
        T[:3, :3] = np.diag(scale) @ (R if R is not None else np.eye(3))
        g.apply_transform(T)
    return pieces


def _material_of(geom: trimesh.Trimesh, model: Model) -> Material:
    mat = getattr(geom.visual, "material", None)
    name = getattr(mat, "name", None) or "default"
    kd = np.array([0.8, 0.8, 0.8])
    tex = None
    if mat is not None:
        if hasattr(mat, "diffuse") and mat.diffuse is not None:
            kd = np.asarray(mat.diffuse[:3], float) / 255.0
        elif getattr(mat, "baseColorFactor", None) is not None:
            kd = np.asarray(mat.baseColorFactor[:3], float) / 255.0
        img = getattr(mat, "image", None)
        uv = getattr(geom.visual, "uv", None)
        if img is not None and uv is not None and len(uv) == len(geom.vertices):
            img = img.convert("RGB")
            img.thumbnail((128, 128))
            tex = np.asarray(img, np.uint8).copy()
    ks = getattr(mat, "specular", None)
    spec = float(np.mean(np.asarray(ks, float).ravel()[:3]) / 255.0) if ks is not None else 0.1
    gloss = float(getattr(mat, "glossiness", 0) or 0)
    rough = float(np.clip(1.0 - gloss / 128.0, 0.05, 1.0)) if gloss else 0.7
    return Material(name=f"{model.key}:{name}", base_colour=tuple(float(v) for v in kd),
                    specular=float(np.clip(spec, 0, 1)), roughness=rough, metallic=0.0, texture=tex)
