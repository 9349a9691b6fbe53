"""Renderer assets: the object library, the material list (bit 7) and environment maps (bit 6).

Usage::

    from task2sim.render.assets import build_library, list_materials, list_environments
    lib = build_library(Path(".cache/assets"), n_classes=24, meshes_per_class=8, heldout_fraction=0.2)
    mesh = lib.meshes(class_id=0)[0]           # Mesh: parts with vertices/normals/uvs/faces/material
    mats = list_materials()                      # fixed list, index = SceneSpec.materials entry
    envs = list_environments(Path(".cache/assets"))  # Environment(name, image HDR (H, W, 3), licence)

Conventions: meshes are centred (bounding-box centre at the origin), scaled to bounding-sphere
radius 1 about it, Y up, canonical front facing +Z (a camera on +Z looking down -Z sees the front).
First use downloads Debian packages (sweethome3d-furniture, blender-data) into the cache with
``apt-get download`` + ``dpkg -x``; converted meshes are cached as .npz, so later builds are fast.
Sources and licences: docs/ASSETS.md and the manifest TSV written into the cache.
"""

from .debian import PackageUnavailable
from .environments import list_environments
from .library import VERSION, AssetError, Library, build_library, class_catalogue
from .materials import list_materials
from .types import Environment, Material, Mesh, Part

__all__ = ["AssetError", "Environment", "Library", "Material", "Mesh", "PackageUnavailable", "Part", "VERSION",
           "build_library", "class_catalogue", "list_environments", "list_materials"]
