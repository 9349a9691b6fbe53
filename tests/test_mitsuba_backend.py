"""Mitsuba backend smoke test: two images of a two-part mesh, skipped without mitsuba."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mitsuba", reason="mitsuba is an optional extra (pip install mitsuba==3.9.1)")
trimesh = pytest.importorskip("trimesh")

from task2sim.render.assets.types import Environment, Material, Mesh, Part  # noqa: E402
from task2sim.config import config_from_dict  # noqa: E402
from task2sim.render.backends import backend_from_config  # noqa: E402
from task2sim.render.dataset import RenderConfig  # noqa: E402
from task2sim.render.spec import SamplerSpace, sample_scene  # noqa: E402


def _part(tm, material: Material) -> Part:
    v = tm.vertices.astype(np.float32)
    return Part(vertices=v, normals=tm.vertex_normals.astype(np.float32),
                uvs=(v[:, :2] * 0.5 + 0.5).astype(np.float32),
                faces=tm.faces.astype(np.int32), material=material)


@pytest.fixture(scope="module")
def scene_inputs():
    red = Material("red", (0.8, 0.1, 0.1), 0.5, 0.4, 0.0)
    checker = (np.indices((16, 16)).sum(0) % 2 * 200 + 30).astype(np.uint8)
    tex = Material("checker", (1.0, 1.0, 1.0), 0.3, 0.6, 0.0,
                   texture=np.repeat(checker[..., None], 3, axis=2), texture_scale=2.0)
    gold = Material("gold", (0.9, 0.7, 0.2), 0.8, 0.2, 1.0)
    box = trimesh.creation.box((0.9, 0.9, 0.9))
    box.apply_translation((0, -0.4, 0))
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.35)
    ball.apply_translation((0, 0.5, 0))
    sphere = trimesh.util.concatenate([box, ball]).bounding_sphere.primitive
    for m in (box, ball):  # normalise like the object library: centred, radius 1
        m.apply_translation(-sphere.center)
        m.apply_scale(1.0 / sphere.radius)
    mesh = Mesh("box_ball", "thing", "procedural:test", "CC0", "test",
                (_part(box, red), _part(ball, tex)))
    sky = np.zeros((32, 64, 3), np.float32)
    sky[:16] = (0.4, 0.6, 1.0)
    sky[16:] = (0.3, 0.25, 0.2)
    envs = [Environment("sky", sky, "CC0"),
            Environment("ramp", np.ones((32, 64, 3), np.float32) * np.linspace(0, 2, 64)[:, None],
                        "CC0")]
    return [red, tex, gold], envs, mesh


def test_two_images(scene_inputs):
    materials, envs, mesh = scene_inputs
    cfg = config_from_dict(RenderConfig, {"backend": "mitsuba", "mitsuba_spp": 8}, "render")
    backend = backend_from_config(cfg, materials, envs)
    assert backend.spp == 8
    space = SamplerSpace(n_backgrounds=len(envs), n_materials=len(materials))
    specs = [sample_scene(class_id=0, mesh_id=0, n_parts=2, image_index=i, seed=5, bits=bits,
                          space=space) for i, bits in enumerate(["00000000", "11111111"])]
    imgs = backend.render(specs, [mesh, mesh], image_size=32)
    assert imgs.shape == (2, 32, 32, 3) and imgs.dtype == np.uint8
    for img in imgs:
        assert img.std() > 5  # an object in front of a background, not a blank frame
    # canonical pose: the centre shows the object (reddish box face), the corner the sky
    centre, corner = imgs[0, 16, 16].astype(int), imgs[0, 1, 1].astype(int)
    assert centre[0] > centre[2] and corner[2] > corner[0]
    assert np.abs(imgs[0].astype(int) - imgs[1].astype(int)).mean() > 5  # all bits changed
    again = backend.render(specs[:1], [mesh], image_size=32)
    np.testing.assert_array_equal(again[0], imgs[0])  # seeded by the spec: same pixels
    assert backend.version().startswith("mitsuba-")
