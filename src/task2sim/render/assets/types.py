"""The asset value types shared by every rendering backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


@dataclass(frozen=True, eq=False)
class Material:
    """A simple PBR-ish surface: colour (linear-ish sRGB in [0, 1]) times an optional texture."""

    name: str
    base_colour: tuple[float, float, float]
    specular: float      # strength of the specular lobe, [0, 1]
    roughness: float     # [0, 1]; 0 = mirror-like highlight
    metallic: float      # [0, 1]; 1 = specular tinted by base colour, no diffuse
    texture: np.ndarray | None = None   # uint8 (H, W, 3), multiplied with base_colour
    texture_scale: float = 1.0          # uv repeats per unit of the part's uv coordinates


@dataclass(frozen=True, eq=False)
class Part:
    """One material group of a mesh (vertex arrays are per part, not shared)."""

    vertices: np.ndarray   # float32 (V, 3), in the mesh's normalised frame
    normals: np.ndarray    # float32 (V, 3), unit length
    uvs: np.ndarray        # float32 (V, 2)
    faces: np.ndarray      # int32 (F, 3), indices into this part's vertices
    material: Material     # the part's own material (rendered when bit 7 is 0)


@dataclass(frozen=True, eq=False)
class Mesh:
    """A normalised object: bounding-box centre at the origin, bounding-sphere radius 1 about it,
    up = +Y, canonical front facing +Z (towards a camera on the +Z axis looking down -Z)."""

    name: str
    class_name: str
    source: str          # "sweethome3d:<catalogue>" or "procedural:<family>"
    licence: str
    attribution: str
    parts: tuple[Part, ...]
    faces_original: int = -1   # face count before decimation to the library's face budget (-1: unknown)

    @property
    def n_faces(self) -> int:
        return int(sum(len(p.faces) for p in self.parts))

    @cached_property
    def hull_points(self) -> np.ndarray:
        """float64 (K, 3): the vertices of the mesh's convex hull (all vertices if it is flat). The
        extremes of the mesh under any rotation and perspective projection lie among them."""
        from scipy.spatial import ConvexHull, QhullError

        points = np.concatenate([p.vertices for p in self.parts]).astype(np.float64)
        try:
            return points[ConvexHull(points).vertices]
        except (QhullError, ValueError):
            return points


@dataclass(frozen=True, eq=False)
class Environment:
    """An equirectangular (latitude-longitude) environment map: row 0 looks straight up (+Y), the
    last row straight down; the columns sweep the azimuth once, left to right. The azimuth origin is
    the renderer's choice (SceneSpec.background_yaw rotates it anyway)."""

    name: str
    image: np.ndarray    # float32 (H, W, 3), linear HDR radiance, H = W / 2
    licence: str
    source: str = ""
    extra: dict = field(default_factory=dict)
