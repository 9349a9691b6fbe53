"""Choosing a rendering backend by name, and what every backend shares.

All backends take the same call, ``render(specs, meshes, image_size) -> uint8 (N, S, S, 3)``, and
render exactly the SceneSpecs they are given (``task2sim.render.spec`` draws every random value).
The optional ones (mitsuba, tdw) are imported only when chosen, so a missing package fails there,
with one clear line, and nowhere else.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Protocol, Sequence

import numpy as np

from .spec import SceneSpec

BACKENDS = ("moderngl", "mitsuba", "tdw")

# The camera every backend shares: the object (bounding-sphere radius 1) at the origin, the camera
# on +Z looking down -Z from CAMERA_DISTANCE radii (times the spec's distance factor).
CAMERA_FOV_DEG = 40.0  # vertical field of view
CAMERA_DISTANCE = 3.0

# name -> (module, class, pip requirement shown when the import fails)
_REGISTRY = {
    "moderngl": ("task2sim.render.gl", "GLBackend", "moderngl (and Debian libegl1 libegl-mesa0 "
                                                    "libgl1-mesa-dri)"),
    "mitsuba": ("task2sim.render.mitsuba_backend", "MitsubaBackend",
                "mitsuba (pip install 'task2sim[mitsuba]' or mitsuba==3.9.1)"),
    "tdw": ("task2sim.render.tdw_backend", "TDWBackend",
            "tdw (pip install tdw==1.13.0.0 'setuptools<81') and a TDW build you launch"),
}


def rotation_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Pitch about X, then yaw about Y, then roll about Z (world axes), degrees."""
    p, y, r = (math.radians(v) for v in (pitch, yaw, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def light_direction(yaw: float, pitch: float) -> np.ndarray:
    """Unit vector from the object towards the light (+Y up, camera on +Z)."""
    y, p = math.radians(yaw), math.radians(pitch)
    return np.array([math.sin(y) * math.cos(p), math.sin(p), math.cos(y) * math.cos(p)])


def srgb_to_linear(x) -> np.ndarray:
    """sRGB-encoded values in [0, 1] (material colours, textures) to linear light."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run here (missing package, no build...): one clear line."""


class Backend(Protocol):
    """What the render stage calls. ``render``: one image per spec, ``meshes[i]`` the mesh of
    ``specs[i]``; ``version``: stored in the dataset's attrs; ``available()`` (static):
    (ok, reason) without rendering anything."""

    name: str

    @staticmethod
    def available() -> tuple[bool, str]: ...

    def render(self, specs: Sequence[SceneSpec], meshes: Sequence[Any],
               image_size: int) -> np.ndarray: ...

    def version(self) -> str: ...

    def close(self) -> None: ...


def backend_class(name: str) -> type:
    if name not in _REGISTRY:
        raise BackendUnavailable(f"unknown render backend {name!r}; choose one of "
                                 f"{', '.join(BACKENDS)}")
    module, cls, needs = _REGISTRY[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(f"render backend {name!r} needs {needs}: {e}") from e
    return getattr(mod, cls)


def get_backend(name: str, **options: Any) -> Backend:
    """An instance of backend ``name`` built with its own keyword options."""
    return backend_class(name)(**options)


def backend_options(name: str, render_cfg: dict[str, Any], *, materials: Sequence[Any],
                    environments: Sequence[Any]) -> dict[str, Any]:
    """The keyword options of the optional backends from the config's ``render`` section
    (materials/environments: the asset lists the scene sampler indexes)."""
    if name == "mitsuba":
        return {"materials": materials, "environments": environments,
                "spp": int(render_cfg.get("mitsuba_spp", 16))}
    if name == "tdw":
        return {"port": int(render_cfg.get("tdw_port", 1071)),
                "timeout_s": float(render_cfg.get("tdw_timeout_s", 30)),
                "models": dict(render_cfg.get("tdw_models", {}))}
    raise BackendUnavailable(f"no config mapping for backend {name!r} here")
