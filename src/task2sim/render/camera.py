"""The camera and scene geometry every backend shares, and the rasteriser's projection and lens maths.

The object (bounding-sphere radius 1) sits at the origin, Y up; the camera is on +Z looking down -Z
from ``CAMERA_DISTANCE`` radii (times the spec's distance factor) with a vertical field of view of
``CAMERA_FOV_DEG``. Matrices are numpy, column vectors; the GL backend uploads them transposed for
GLSL's column-major layout.
"""

from __future__ import annotations

import math

import numpy as np

from .spec import SceneSpec

CAMERA_FOV_DEG = 40.0  # vertical field of view
CAMERA_DISTANCE = 3.0
NEAR, FAR = 0.05, 50.0  # clip planes of the rasteriser's projection


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


def environment_rotation(yaw: float, pitch: float) -> np.ndarray:
    """World direction -> environment-map direction: the camera looks along (yaw, pitch) in it."""
    return (rotation_matrix(0.0, yaw, 0.0) @ rotation_matrix(pitch, 0.0, 0.0))


def frustum(left: float, right: float, bottom: float, top: float, near: float, far: float):
    m = np.zeros((4, 4))
    m[0, 0] = 2 * near / (right - left)
    m[1, 1] = 2 * near / (top - bottom)
    m[0, 2] = (right + left) / (right - left)
    m[1, 2] = (top + bottom) / (top - bottom)
    m[2, 2] = -(far + near) / (far - near)
    m[2, 3] = -2 * far * near / (far - near)
    m[3, 2] = -1.0
    return m


def lens_offsets(n: int) -> np.ndarray:
    """``n`` deterministic points on the unit disc (golden-angle spiral): the lens samples."""
    if n <= 1:
        return np.zeros((1, 2))
    k = np.arange(n) + 0.5
    r = np.sqrt(k / n)
    theta = k * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)


def pixel_offsets(n: int) -> np.ndarray:
    """``n`` deterministic sub-pixel offsets in [-0.5, 0.5)^2 (the R2 sequence); zero for one."""
    if n <= 1:
        return np.zeros((1, 2))
    g = 1.32471795724474602596  # the plastic number
    k = np.arange(n)[:, None] + 0.5
    return (k * np.array([1 / g, 1 / g ** 2])) % 1.0 - 0.5


def camera_matrices(spec: SceneSpec, lens: tuple[float, float] = (0.0, 0.0),
                    pixel: tuple[float, float] = (0.0, 0.0), image_size: int = 64):
    """(view-projection, eye position) for one lens sample of a spec, its window moved by
    ``pixel`` (a fraction of one pixel of ``image_size``); the camera sits on +Z."""
    obj_dist = CAMERA_DISTANCE * spec.distance_factor
    focus = max(spec.focus_distance_factor * obj_dist, NEAR * 2)
    ex, ey = lens[0] * spec.aperture, lens[1] * spec.aperture
    half = NEAR * math.tan(math.radians(CAMERA_FOV_DEG) / 2)
    # Off-axis frustum: shifting the eye by e and the window by -e*near/focus keeps the plane at
    # `focus` fixed on screen, which is the thin-lens model.
    sx = ex * NEAR / focus + pixel[0] * 2 * half / image_size
    sy = ey * NEAR / focus + pixel[1] * 2 * half / image_size
    proj = frustum(-half - sx, half - sx, -half - sy, half - sy, NEAR, FAR)
    eye = np.array([ex, ey, obj_dist])
    view = np.eye(4)
    view[:3, 3] = -eye
    return proj @ view, eye
