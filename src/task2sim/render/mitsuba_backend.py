"""Mitsuba 3 backend (optional, ``scalar_rgb``): a path-traced cross-check of the default renderer.

Same SceneSpec, same meshes, materials and environments as the moderngl backend, at low sample
counts (16 spp by default). One Mitsuba scene per mesh, built once with its parts kept as separate
shapes (``optimize=False``); every image then only updates parameters through ``mi.traverse``:

  0 rotation   the parts' vertex positions and normals, rotated pitch, yaw, roll (world axes)
  1 distance   the camera moves along its ray to distance_factor * camera distance (the same
               image as moving the object: the environment is at infinity)
  2/3/4 light  a directional emitter: irradiance = default * intensity * colour, direction from
               light yaw/pitch (the direction *towards* the light, as in the other backends)
  5 blur       thin-lens camera: aperture_radius = spec.aperture (object radii), focus distance =
               focus_distance_factor * object distance; a pinhole is a negligible lens radius
  6 background environment emitter from ``environments[background_id]``, rotated so the camera
               looks along the spec's view yaw/pitch
  7 materials  per part: principled BSDF of ``materials[id]`` (or the part's own for -1): base
               colour x texture as one fixed-size bitmap, roughness, metallic, specular

Every backend's seed-independence holds here too: the Monte Carlo sampler is seeded with the
spec's image seed, so a spec renders the same pixels every time.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from .backends import srgb_to_linear
from .camera import CAMERA_DISTANCE, CAMERA_FOV_DEG, light_direction, rotation_matrix
from .spec import SceneSpec

VARIANT = "scalar_rgb"
TEX_SIZE = 64           # every base-colour bitmap is resampled to this, so updates stay in place
ENV_SIZE = (128, 256)   # environment maps resampled to (H, W)
SUN_IRRADIANCE = 2.0    # default directional irradiance (relative intensity 1)
ENV_SCALE = 0.6         # environment radiance scale (ambient light and background)
PINHOLE_RADIUS = 1e-5   # thin-lens radius standing in for a pinhole (Mitsuba rejects 0)
MAX_DEPTH = 4
SCENE_CACHE = 8         # meshes whose scenes stay loaded


def _import_mitsuba():
    try:
        import mitsuba as mi
    except ImportError as e:  # the factory turns this into a clear line
        raise ImportError(f"mitsuba is not installed: {e}") from e
    if mi.variant() != VARIANT:
        mi.set_variant(VARIANT)
    return mi


def available() -> tuple[bool, str]:
    try:
        _import_mitsuba()
    except ImportError as e:
        return False, str(e)
    return True, ""


def _linear_to_srgb8(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    y = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)


def _resize(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from skimage.transform import resize

    return resize(img, hw + img.shape[2:], order=1, anti_aliasing=True,
                  preserve_range=True).astype(np.float32)


def base_colour_bitmap(material: Any) -> np.ndarray:
    """Linear base colour x texture as a (TEX, TEX, 3) float32 bitmap."""
    colour = np.asarray(material.base_colour, dtype=np.float32)
    if material.texture is None:
        return np.broadcast_to(colour, (TEX_SIZE, TEX_SIZE, 3)).astype(np.float32)
    tex = srgb_to_linear(np.asarray(material.texture, dtype=np.float32)[..., :3] / 255.0)
    return (_resize(tex, (TEX_SIZE, TEX_SIZE)) * colour).astype(np.float32)


class MitsubaBackend:
    """Path-traced renders of SceneSpecs; see the module docstring for the mapping of the bits."""

    name = "mitsuba"

    def __init__(self, materials: Sequence[Any], environments: Sequence[Any], spp: int = 16,
                 fov_deg: float = CAMERA_FOV_DEG, camera_distance: float = CAMERA_DISTANCE) -> None:
        self.mi = _import_mitsuba()
        if not materials or not environments:
            raise ValueError("the mitsuba backend needs at least one material and one environment")
        self.materials = list(materials)
        self.spp = int(spp)
        self.fov_deg = float(fov_deg)
        self.camera_distance = float(camera_distance)
        self._material_bitmaps = [base_colour_bitmap(m) for m in self.materials]
        self._env_images = [_resize(np.asarray(e.image, dtype=np.float32), ENV_SIZE)
                            for e in environments]
        # Mitsuba keeps its envmap data in its own padded layout: take it from a loaded plugin
        # per environment, so switching environments is an in-place update of the same shape.
        self._env_data = [self.mi.traverse(self.mi.load_dict(
            {"type": "envmap", "bitmap": self.mi.Bitmap(img)}))["data"]
            for img in self._env_images]
        self._scenes: OrderedDict[tuple[int, int], tuple[Any, Any, Any]] = OrderedDict()

    @classmethod
    def from_config(cls, cfg, materials: Sequence[Any], environments: Sequence[Any]) -> "MitsubaBackend":
        """From the render config (``RenderConfig``): its ``mitsuba_spp``."""
        return cls(materials, environments, spp=cfg.mitsuba_spp)

    @staticmethod
    def available() -> tuple[bool, str]:
        return available()

    def version(self) -> str:
        return f"mitsuba-{self.mi.__version__}-{VARIANT}"

    # -- scene construction ------------------------------------------------------------------

    def _bsdf(self, material: Any) -> dict:
        mi = self.mi
        return {"type": "principled",
                "base_color": {"type": "bitmap", "raw": True,
                               "bitmap": mi.Bitmap(base_colour_bitmap(material)),
                               "to_uv": mi.ScalarTransform4f().scale(
                                   [material.texture_scale, material.texture_scale, 1.0])},
                "roughness": float(material.roughness), "metallic": float(material.metallic),
                "specular": float(material.specular)}

    def _load(self, mesh: Any, image_size: int):
        mi = self.mi
        scene_dict: dict[str, Any] = {
            "type": "scene",
            "integrator": {"type": "path", "max_depth": MAX_DEPTH},
            "sensor": {"type": "thinlens", "fov": self.fov_deg, "fov_axis": "y",
                       "aperture_radius": PINHOLE_RADIUS, "focus_distance": self.camera_distance,
                       "film": {"type": "hdrfilm", "width": image_size, "height": image_size,
                                "rfilter": {"type": "box"}, "pixel_format": "rgb"},
                       "sampler": {"type": "independent", "sample_count": self.spp}},
            "env": {"type": "envmap", "bitmap": mi.Bitmap(self._env_images[0]),
                    "scale": ENV_SCALE},
            "sun": {"type": "directional", "direction": [0.0, -1.0, 0.0],
                    "irradiance": {"type": "rgb", "value": [SUN_IRRADIANCE] * 3}},
        }
        for i, part in enumerate(mesh.parts):
            props = mi.Properties()
            props["bsdf"] = mi.load_dict(self._bsdf(part.material))
            m = mi.Mesh(f"part{i}", len(part.vertices), len(part.faces), props=props,
                        has_vertex_normals=True, has_vertex_texcoords=True)
            p = mi.traverse(m)
            p["vertex_positions"] = np.ascontiguousarray(part.vertices, np.float32).ravel()
            p["vertex_normals"] = np.ascontiguousarray(part.normals, np.float32).ravel()
            p["vertex_texcoords"] = np.ascontiguousarray(part.uvs, np.float32).ravel()
            p["faces"] = np.ascontiguousarray(part.faces, np.uint32).ravel()
            p.update()
            scene_dict[f"part{i}"] = m
        scene = mi.load_dict(scene_dict, optimize=False)  # keep the parts separate
        return scene, mi.traverse(scene)

    def _scene_for(self, mesh: Any, image_size: int):
        key = (id(mesh), int(image_size))
        if key in self._scenes:
            self._scenes.move_to_end(key)
            return self._scenes[key][1:]
        scene, params = self._load(mesh, image_size)
        self._scenes[key] = (mesh, scene, params)  # holding mesh keeps id(mesh) unique
        while len(self._scenes) > SCENE_CACHE:
            self._scenes.popitem(last=False)
        return scene, params

    # -- per image ---------------------------------------------------------------------------

    def _apply(self, spec: SceneSpec, mesh: Any, params: Any) -> None:
        mi = self.mi
        if len(spec.materials) != len(mesh.parts):
            raise ValueError(f"spec has {len(spec.materials)} part materials, mesh {mesh.name!r} "
                             f"has {len(mesh.parts)} parts")
        rot = rotation_matrix(*spec.rotation)
        for i, part in enumerate(mesh.parts):
            params[f"part{i}.vertex_positions"] = (part.vertices @ rot.T).astype(np.float32).ravel()
            params[f"part{i}.vertex_normals"] = (part.normals @ rot.T).astype(np.float32).ravel()
            mid = spec.materials[i]
            mat = part.material if mid < 0 else self.materials[mid]
            bitmap = base_colour_bitmap(mat) if mid < 0 else self._material_bitmaps[mid]
            pre = f"part{i}.bsdf."
            params[pre + "base_color.data"] = mi.TensorXf(bitmap)
            params[pre + "base_color.to_uv"] = mi.ScalarTransform3f().scale(
                [mat.texture_scale, mat.texture_scale])
            params[pre + "roughness.value"] = float(mat.roughness)
            params[pre + "metallic.value"] = float(mat.metallic)
            params[pre + "specular"] = float(mat.specular)
        # camera along +Z looking at the object at the origin
        dist = self.camera_distance * spec.distance_factor
        params["sensor.to_world"] = mi.ScalarTransform4f().look_at(
            origin=[0.0, 0.0, dist], target=[0.0, 0.0, 0.0], up=[0.0, 1.0, 0.0])
        params["sensor.focus_distance"] = float(spec.focus_distance_factor * dist)
        params["sensor.aperture_radius"] = float(max(spec.aperture, PINHOLE_RADIUS))
        # light: towards-light vector -> propagation direction
        d = -light_direction(spec.light_yaw, spec.light_pitch)
        params["sun.to_world"] = mi.ScalarTransform4f().look_at(
            origin=[0.0, 0.0, 0.0], target=d.tolist(),
            up=[0.0, 0.0, 1.0] if abs(d[1]) > 0.99 else [0.0, 1.0, 0.0])
        params["sun.irradiance.value"] = mi.Color3f(
            *(SUN_IRRADIANCE * spec.light_intensity * np.asarray(spec.light_colour)))
        # background: rotate the environment opposite to the view direction
        params["env.data"] = self._env_data[spec.background_id]
        params["env.to_world"] = (mi.ScalarTransform4f().rotate([0, 1, 0], -spec.background_yaw)
                                  @ mi.ScalarTransform4f().rotate([1, 0, 0],
                                                                  -spec.background_pitch))
        params.update()

    def render(self, specs: Sequence[SceneSpec], meshes: Sequence[Any],
               image_size: int) -> np.ndarray:
        """One image per spec; ``meshes[i]`` is the mesh ``specs[i]`` shows."""
        if len(specs) != len(meshes):
            raise ValueError(f"{len(specs)} specs but {len(meshes)} meshes")
        out = np.empty((len(specs), image_size, image_size, 3), dtype=np.uint8)
        for i, (spec, mesh) in enumerate(zip(specs, meshes)):
            scene, params = self._scene_for(mesh, image_size)
            self._apply(spec, mesh, params)
            img = np.asarray(self.mi.render(scene, spp=self.spp,
                                            seed=int(spec.image_seed) & 0x7FFFFFFF))
            out[i] = _linear_to_srgb8(img[..., :3])
        return out

    def close(self) -> None:
        self._scenes.clear()
