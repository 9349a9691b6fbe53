"""The backend-independent, seeded scene sampler: ``(object, class, image seed, bits) -> SceneSpec``.

Every rendering backend (moderngl, mitsuba, TDW) renders exactly the SceneSpec it is given; all
randomness lives here, so the bits mean the same thing everywhere and each image's sampled values
can be stored beside it.

Design choice that the per-bit tests rely on: *every* random value is drawn for every image, in a
fixed order, whatever the bits; a bit at 0 then replaces its values by the fixed defaults. So
flipping one bit changes only the values that bit controls, never the others.

Meanings (every backend follows these; docs/BACKENDS.md maps them per backend):
  0 rotation         pitch/yaw/roll each U(-180, 180) deg            | canonical pose (0, 0, 0)
  1 distance         distance factor U(0.4, 1.5) along the camera ray | 1.0
  2 light intensity  1 +- U(0, 0.6) (relative to the default)         | 1.0
  3 light colour     r, g, b each U(0.05, 1)                          | white (1, 1, 1)
  4 light direction  yaw U(0, 360), pitch U(0, 360) deg               | yaw 35, pitch 50 deg
  5 focus blur       with p = 0.75: focus distance factor U(0.5, 2.0)
                     and aperture U(0.02, 0.1) (lens radius in units
                     of the object's radius)                          | in focus, pinhole (aperture 0)
  6 background       environment id (one per group of BG_GROUP
                     consecutive images), view yaw U(0, 360),
                     view pitch U(-30, 30) deg                        | environment 0, yaw 0, pitch 0
  7 materials        one random material id per part per image        | -1 (the part's own material)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np

from ..bits import parse_bits

BG_GROUP = 4  # "a different environment per few images"
MAX_PARTS = 16  # per-part material ids are stored padded to this width (-2 = no such part)

DEFAULT_LIGHT_YAW = 35.0
DEFAULT_LIGHT_PITCH = 50.0
ROTATION_RANGE = (-180.0, 180.0)
DISTANCE_RANGE = (0.4, 1.5)
INTENSITY_DELTA = 0.6
COLOUR_RANGE = (0.05, 1.0)
BLUR_PROBABILITY = 0.75
# At 64 px these give circles of confusion of up to ~3 px on the object and ~6 px on the
# background: clearly blurred, still recognisable.
FOCUS_FACTOR_RANGE = (0.5, 2.0)
APERTURE_RANGE = (0.02, 0.1)
BG_PITCH_RANGE = (-30.0, 30.0)


@dataclass(frozen=True)
class SamplerSpace:
    """What the sampler may choose from: sizes of the environment and material lists."""

    n_backgrounds: int
    n_materials: int

    def __post_init__(self) -> None:
        if self.n_backgrounds < 1 or self.n_materials < 1:
            raise ValueError("need at least one background and one material")


@dataclass(frozen=True)
class SceneSpec:
    """Everything a backend needs to render one image, beyond the mesh itself."""

    class_id: int
    mesh_id: int
    image_seed: int
    bits: str
    rotation: tuple[float, float, float]      # pitch, yaw, roll in degrees (applied in that order)
    distance_factor: float                    # multiplies the canonical camera distance
    light_intensity: float                    # relative to the backend's default intensity
    light_colour: tuple[float, float, float]  # linear rgb in [0, 1]
    light_yaw: float                          # degrees
    light_pitch: float                        # degrees
    focus_distance_factor: float              # focus plane distance / object distance
    aperture: float                           # thin-lens radius in object radii; 0 = pinhole
    background_id: int                        # index into the environment list
    background_yaw: float                     # view direction into the environment, degrees
    background_pitch: float
    materials: tuple[int, ...]                # per part: material id, or -1 = the part's own

    def to_record(self) -> dict[str, Any]:
        """Flat numeric values for storage (materials padded to MAX_PARTS with -2)."""
        rec = asdict(self)
        mats = list(self.materials)[:MAX_PARTS]
        rec["materials"] = mats + [-2] * (MAX_PARTS - len(mats))
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "SceneSpec":
        kw = {f.name: rec[f.name] for f in fields(cls)}
        for name in ("rotation", "light_colour"):
            kw[name] = tuple(float(v) for v in kw[name])
        kw["materials"] = tuple(int(m) for m in kw["materials"] if int(m) != -2)
        for name in ("class_id", "mesh_id", "image_seed", "background_id"):
            kw[name] = int(kw[name])
        kw["bits"] = kw["bits"].decode() if isinstance(kw["bits"], bytes) else str(kw["bits"])
        return cls(**kw)


def image_rng(seed: int, image_index: int) -> np.random.Generator:
    """The generator for one image: independent of every other image and of the bits."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(image_index)]))


@lru_cache(maxsize=4096)
def _group_background(seed: int, group: int, n_backgrounds: int) -> int:
    """The environment changes once per group of images: its own generator, keyed by the group
    (cached: every image of the group asks)."""
    return int(np.random.default_rng(np.random.SeedSequence([seed, group, 6])).integers(0, n_backgrounds))


def sample_scene(*, class_id: int, mesh_id: int, n_parts: int, image_index: int, seed: int,
                 bits: str, space: SamplerSpace) -> SceneSpec:
    """Sample the scene of image ``image_index`` of a dataset rendered with ``seed`` and ``bits``."""
    flags = parse_bits(bits)
    if not 1 <= n_parts:
        raise ValueError(f"a mesh needs at least one part, got n_parts={n_parts}")
    rng = image_rng(seed, image_index)
    # Draw everything in a fixed order, whatever the bits (see module docstring).
    rot = rng.uniform(*ROTATION_RANGE, size=3)
    dist = rng.uniform(*DISTANCE_RANGE)
    intensity = 1.0 + rng.choice((-1.0, 1.0)) * rng.uniform(0.0, INTENSITY_DELTA)
    colour = rng.uniform(*COLOUR_RANGE, size=3)
    light_yaw, light_pitch = rng.uniform(0.0, 360.0, size=2)
    blur_on = rng.uniform() < BLUR_PROBABILITY
    focus = rng.uniform(*FOCUS_FACTOR_RANGE)
    aperture = rng.uniform(*APERTURE_RANGE)
    bg_yaw = rng.uniform(0.0, 360.0)
    bg_pitch = rng.uniform(*BG_PITCH_RANGE)
    mats = rng.integers(0, space.n_materials, size=n_parts)
    bg_id = _group_background(int(seed), int(image_index) // BG_GROUP, space.n_backgrounds)

    rotation, distance, light_i, light_c, light_d, blur, background, materials = flags
    return SceneSpec(
        class_id=int(class_id),
        mesh_id=int(mesh_id),
        image_seed=int(image_index),
        bits=bits,
        rotation=tuple(float(v) for v in rot) if rotation else (0.0, 0.0, 0.0),
        distance_factor=float(dist) if distance else 1.0,
        light_intensity=float(intensity) if light_i else 1.0,
        light_colour=tuple(float(v) for v in colour) if light_c else (1.0, 1.0, 1.0),
        light_yaw=float(light_yaw) if light_d else DEFAULT_LIGHT_YAW,
        light_pitch=float(light_pitch) if light_d else DEFAULT_LIGHT_PITCH,
        focus_distance_factor=float(focus) if (blur and blur_on) else 1.0,
        aperture=float(aperture) if (blur and blur_on) else 0.0,
        background_id=bg_id if background else 0,
        background_yaw=float(bg_yaw) if background else 0.0,
        background_pitch=float(bg_pitch) if background else 0.0,
        materials=tuple(int(m) for m in mats) if materials else (-1,) * n_parts,
    )
