"""Choosing a rendering backend by name, and what every backend shares.

All backends take the same call, ``render(specs, meshes, image_size) -> uint8 (N, S, S, 3)``, and
render exactly the SceneSpecs they are given (``task2sim.render.spec`` draws every random value);
each builds itself from the config's ``render`` section with ``from_config``. The optional ones
(mitsuba, tdw) are imported only when chosen, so a missing package fails there, with one clear
line, and nowhere else. The shared camera and scene geometry live in ``task2sim.render.camera``.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, Sequence

import numpy as np

from .spec import SceneSpec

BACKENDS = ("moderngl", "mitsuba", "tdw")

# name -> (module, class, pip requirement shown when the import fails)
_REGISTRY = {
    "moderngl": ("task2sim.render.gl", "GLBackend", "moderngl (and Debian libegl1 libegl-mesa0 "
                                                    "libgl1-mesa-dri)"),
    "mitsuba": ("task2sim.render.mitsuba_backend", "MitsubaBackend",
                "mitsuba (pip install 'task2sim[mitsuba]' or mitsuba==3.9.1)"),
    "tdw": ("task2sim.render.tdw_backend", "TDWBackend",
            "tdw (pip install tdw==1.13.0.0 'setuptools<81') and a TDW build you launch"),
}


def srgb_to_linear(x) -> np.ndarray:
    """sRGB-encoded values in [0, 1] (material colours, textures) to linear light."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run here (missing package, no build...): one clear line."""


class Backend(Protocol):
    """What the render stage calls. ``from_config``: the backend built from the config's render
    section (``task2sim.render.dataset.RenderConfig``) and the asset lists the scene sampler
    indexes; ``render``: one image per spec, ``meshes[i]`` the mesh of ``specs[i]``; ``version``:
    stored in the dataset's attrs; ``available()`` (static): (ok, reason) without rendering."""

    name: str

    @classmethod
    def from_config(cls, cfg: Any, materials: Sequence[Any], environments: Sequence[Any]) -> "Backend": ...

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


def backend_from_config(cfg: Any, materials: Sequence[Any], environments: Sequence[Any]) -> Backend:
    """The backend ``cfg.backend`` built from the render config (``RenderConfig``)."""
    return backend_class(cfg.backend).from_config(cfg, materials, environments)
