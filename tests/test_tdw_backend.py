"""TDW backend: command lists per bit, checked against the installed tdw package, and the whole
client path (connect, send, decode) against a stand-in for a TDW build speaking TDW's wire format
over a real zmq socket. No real TDW build (a Unity executable) is available offline."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("tdw", reason="the tdw client is not installed (pip install tdw==1.13.0.0)")
zmq = pytest.importorskip("zmq")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
pytestmark = pytest.mark.filterwarnings("ignore:the imp module is deprecated:DeprecationWarning")

from PIL import Image  # noqa: E402

from task2sim.render import tdw_backend as T  # noqa: E402
from task2sim.render.spec import SamplerSpace, sample_scene  # noqa: E402

SPACE = SamplerSpace(n_backgrounds=8, n_materials=12)
N_PARTS = 3


def spec_for(bits: str, image_index: int = 5, mesh_id: int = 3, seed: int = 11):
    return sample_scene(class_id=0, mesh_id=mesh_id, n_parts=N_PARTS, image_index=image_index,
                        seed=seed, bits=bits, space=SPACE)


@pytest.fixture(scope="module")
def catalogue():
    return T.TDWCatalogue()


@pytest.fixture(scope="module")
def chair(catalogue):
    return catalogue.model_for("chair", 3)


def flip(bits: str, k: int) -> str:
    return bits[:k] + ("1" if bits[k] == "0" else "0") + bits[k + 1:]


def changed_types(a: list[dict], b: list[dict]) -> set[str]:
    """$types of commands that differ between two lists (added/removed ones included)."""
    ja = [json.dumps(c, sort_keys=True) for c in a]
    jb = [json.dumps(c, sort_keys=True) for c in b]
    diff = set(ja) ^ set(jb)
    return {json.loads(c)["$type"] for c in diff}


# What each bit may change (docs/algorithms.md, "Simulation parameters"); the relative light
# intensity depends on the skybox's own sun, and the focus plane sits at a fraction of the object
# distance.
ALLOWED = {
    0: {"rotate_object_by"},
    1: {"teleport_object", "set_focus_distance"},
    2: {"adjust_directional_light_intensity_by"},
    3: {"set_directional_light_color"},
    4: {"rotate_directional_light_by"},
    5: {"set_focus_distance", "set_aperture"},
    6: {"add_hdri_skybox", "rotate_hdri_skybox_by", "adjust_directional_light_intensity_by"},
    7: {"set_visual_material"},
}
REQUIRED = {0: {"rotate_object_by"}, 1: {"teleport_object"},
            2: {"adjust_directional_light_intensity_by"}, 3: {"set_directional_light_color"},
            4: {"rotate_directional_light_by"}, 5: {"set_aperture"},
            6: {"rotate_hdri_skybox_by"}, 7: {"set_visual_material"}}


def blur_image_index(bits: str) -> int:
    """An image whose sampled focus blur is on (p = 0.75), so bit 5 has an effect."""
    for i in range(100):
        s = spec_for(flip(bits, 5) if bits[5] == "0" else bits, image_index=i)
        if s.aperture > 0:
            return i
    raise AssertionError("no blurred image in 100 draws")


@pytest.mark.parametrize("base", ["00000000", "11111111", "10110010"])
@pytest.mark.parametrize("k", range(8))
def test_each_bit_changes_only_its_commands(catalogue, chair, base, k):
    idx = blur_image_index(base)
    a = T.scene_commands(spec_for(base, idx), chair, catalogue, object_id=1)
    b = T.scene_commands(spec_for(flip(base, k), idx), chair, catalogue, object_id=1)
    changed = changed_types(a, b)
    assert REQUIRED[k] <= changed, (k, changed)
    assert changed <= ALLOWED[k], (k, changed)


def test_bit_values_reach_the_commands(catalogue, chair):
    idx = blur_image_index("11111111")
    s = spec_for("11111111", idx)
    cmds = T.scene_commands(s, chair, catalogue, object_id=7)
    by = {}
    for c in cmds:
        by.setdefault(c["$type"], []).append(c)
    assert [c["angle"] for c in by["rotate_object_by"]] == pytest.approx(list(s.rotation))
    assert [c["axis"] for c in by["rotate_object_by"]] == ["pitch", "yaw", "roll"]
    cam = T.CameraGeometry()
    pos = by["teleport_object"][0]["position"]
    dist = np.linalg.norm(np.array([pos["x"], pos["y"], pos["z"]]) - np.array(cam.position))
    assert dist == pytest.approx(cam.distance * s.distance_factor)
    col = by["set_directional_light_color"][0]["color"]
    assert (col["r"], col["g"], col["b"]) == pytest.approx(s.light_colour)
    assert [c["angle"] for c in by["rotate_directional_light_by"]] == pytest.approx(
        [s.light_pitch, s.light_yaw])
    assert by["set_focus_distance"][0]["focus_distance"] == pytest.approx(
        s.focus_distance_factor * cam.distance * s.distance_factor)
    assert T.F_NUMBER_RANGE[0] <= by["set_aperture"][0]["aperture"] < T.F_NUMBER_RANGE[1]
    sky = catalogue.skyboxes[s.background_id % len(catalogue.skyboxes)]
    assert by["add_hdri_skybox"][0]["name"] == sky
    sun = catalogue.skybox_sun_intensity(s.background_id)
    assert by["adjust_directional_light_intensity_by"][0]["intensity"] == pytest.approx(
        sun * (s.light_intensity - 1))
    n_slots = sum(n for _, n in chair.substructure)
    assert len(by["set_visual_material"]) == n_slots
    assert by["send_images"] == [{"$type": "send_images", "ids": ["a"], "frequency": "once"}]
    assert all(c.get("id", 7) == 7 for c in cmds)


def test_defaults_when_all_bits_are_off(catalogue, chair):
    s = spec_for("00000000")
    cmds = T.scene_commands(s, chair, catalogue, object_id=1)
    types = [c["$type"] for c in cmds]
    assert "set_visual_material" not in types  # a fresh object keeps its own materials
    aperture = next(c for c in cmds if c["$type"] == "set_aperture")["aperture"]
    assert aperture == T.F_NUMBER_RANGE[1]  # pinhole ~ the narrowest aperture
    adj = next(c for c in cmds if c["$type"] == "adjust_directional_light_intensity_by")
    assert adj["intensity"] == 0.0
    assert next(c for c in cmds if c["$type"] == "add_hdri_skybox")["name"] == \
        catalogue.skyboxes[0]


def test_identical_specs_identical_lists(catalogue, chair):
    for bits in ("00000000", "11111111", "01010101"):
        a = T.scene_commands(spec_for(bits), chair, catalogue, object_id=1)
        b = T.scene_commands(spec_for(bits), chair, catalogue, object_id=1)
        assert json.dumps(a) == json.dumps(b)
    assert json.dumps(T.scene_commands(spec_for("11111111", 1), chair, catalogue, 1)) != \
        json.dumps(T.scene_commands(spec_for("11111111", 2), chair, catalogue, 1))


needs_checkable = pytest.mark.skipif(
    not T.commands_checkable(), reason="this tdw ships no command modules for this Python")


@needs_checkable
def test_every_command_exists_in_installed_tdw(catalogue, chair):
    cmds = T.session_commands(64, catalogue) + T.add_object_commands(chair, 1)
    for bits in ("00000000", "11111111"):
        for i in range(4):
            cmds += T.scene_commands(spec_for(bits, i), chair, catalogue, object_id=1)
    cmds += [{"$type": "destroy_object", "id": 1}, {"$type": "terminate"}]
    T.check_commands(cmds)
    assert {c["$type"] for c in cmds} >= {"rotate_object_by", "set_aperture", "set_focus_distance",
                                         "add_hdri_skybox", "set_visual_material", "send_images"}


@pytest.mark.parametrize("bad, msg", [
    ({"$type": "set_directional_light_intensity", "intensity": 1.0}, "has no command"),
    ({"$type": "set_aperture", "f_stop": 2.0}, "has no parameter"),
    ({"$type": "rotate_object_by", "angle": 3.0}, "missing required"),
])
@needs_checkable
def test_check_commands_rejects_wrong_commands(bad, msg):
    with pytest.raises(T.TDWError, match=msg):
        T.check_commands([bad])


def test_catalogue_errors():
    with pytest.raises(T.TDWError, match="not in its library: no_such_sky"):
        T.TDWCatalogue(skyboxes=("no_such_sky",))
    with pytest.raises(T.TDWError, match="no TDW model mapped to class 'zebra'"):
        T.TDWCatalogue().model_for("zebra", 0)


def test_model_scaled_to_unit_sphere(catalogue, chair):
    cmds = T.add_object_commands(chair, 4)
    assert cmds[0]["name"] == chair.name and cmds[0]["id"] == 4
    s = cmds[1]["scale_factor"]["x"]
    assert s * chair.radius == pytest.approx(1.0)
    assert chair.name in catalogue.models["chair"]


# --------------------------------------------------------------------------------------------
# A stand-in for the TDW build: connects to the controller's port like the real build (REQ
# socket), records every command list and answers with TDW's Images output data (flatbuffers).


def images_message(rgb: np.ndarray, avatar_id: str = "a") -> bytes:
    """TDW's `imag` output data holding one png-encoded _img pass."""
    from tdw.FBOutput import ImagePass as IP
    from tdw.FBOutput import Images as IM
    from tdw.flatbuffers import Builder

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    b = Builder(0)
    png = b.CreateByteVector(buf.getvalue())
    IP.ImagePassStart(b)
    IP.ImagePassAddPassMask(b, 1)   # PassMask._img
    IP.ImagePassAddImage(b, png)
    IP.ImagePassAddExtension(b, 1)  # Extension.png
    pass_off = b.EndObject()
    IM.ImagesStartPassesVector(b, 1)
    b.PrependUOffsetTRelative(pass_off)
    passes = b.EndVector(1)
    av = b.CreateString(avatar_id)
    sn = b.CreateString("SensorContainer")
    IM.ImagesStart(b)
    IM.ImagesAddAvatarId(b, av)
    IM.ImagesAddSensorName(b, sn)
    IM.ImagesAddWidth(b, rgb.shape[1])
    IM.ImagesAddHeight(b, rgb.shape[0])
    IM.ImagesAddPasses(b, passes)
    root = b.EndObject()
    # Finish with the 4-byte file identifier TDW puts after the root offset.
    b.Prep(b.minalign, 8)
    for ch in reversed(b"imag"):
        b.PrependByte(ch)
    b.PrependUOffsetTRelative(root)
    b.finished = True
    return bytes(b.Output())


def colour_of(commands: list[dict]) -> np.ndarray:
    """The stand-in build's 'render': a colour from the skybox and the object rotation sent."""
    sky = next((c["name"] for c in commands if c["$type"] == "add_hdri_skybox"), "")
    rot = sum(c["angle"] for c in commands if c["$type"] == "rotate_object_by")
    return np.array([len(sky) * 9 % 256, int(abs(rot)) % 256, 77], dtype=np.uint8)


class FakeBuild(threading.Thread):
    def __init__(self, port: int, size: int = 16, answer: bool = True):
        super().__init__(daemon=True)
        self.port, self.size, self.answer = port, size, answer
        self.received: list[list[dict]] = []
        self.ctx = zmq.Context()

    def run(self) -> None:
        s = self.ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"tcp://127.0.0.1:{self.port}")
        s.send(b"hello")
        try:
            while True:
                cmds = json.loads(s.recv_multipart()[0])
                self.received.append(cmds)
                if not self.answer and len(self.received) > 1:
                    return  # went silent after the controller's handshake
                frame = len(self.received).to_bytes(4, "little")
                if any(c["$type"] == "send_images" for c in cmds):
                    img = np.broadcast_to(colour_of(cmds), (self.size, self.size, 3)).copy()
                    s.send_multipart([images_message(img), frame])
                else:
                    s.send_multipart([frame])
                if any(c["$type"] == "terminate" for c in cmds):
                    return
        except zmq.ContextTerminated:
            return
        finally:
            s.close(0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class M:  # what the backend reads of our Mesh: its class name
    def __init__(self, class_name: str):
        self.class_name = class_name


def test_images_message_is_tdw_output_data():
    from tdw.output_data import Images, OutputData

    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = images_message(rgb)
    assert OutputData.get_data_type_id(msg) == "imag"
    im = Images(msg)
    assert (im.get_width(), im.get_height(), im.get_pass_mask(0)) == (7, 5, "_img")
    (out,) = T.decode_images([msg, b"\0\0\0\0"])
    np.testing.assert_array_equal(out, rgb)


def test_render_through_a_build_on_a_real_socket(catalogue):
    port = free_port()
    build = FakeBuild(port)
    build.start()
    backend = T.TDWBackend(port=port, timeout_s=10, catalogue=catalogue)
    specs = [spec_for("11111111", i, mesh_id=m) for i, m in enumerate([0, 0, 1, 1, 1])]
    meshes = [M("chair")] * 3 + [M("table")] * 2
    try:
        imgs = backend.render(specs, meshes, image_size=16)
    finally:
        backend.close()
    build.join(5)
    assert imgs.shape == (5, 16, 16, 3) and imgs.dtype == np.uint8
    got = build.received
    # handshake (tdw's own), session set-up, one list per image, terminate
    assert got[0][-1] == {"$type": "load_scene", "scene_name": "ProcGenScene"}
    assert got[1] == T.session_commands(16, catalogue, T.CameraGeometry())
    per_image = got[2:-1]
    assert len(per_image) == 5 and got[-1] == [{"$type": "terminate"}]
    for img, cmds in zip(imgs, per_image):
        np.testing.assert_array_equal(img, np.broadcast_to(colour_of(cmds), img.shape))
    # models: chair 0, chair 0, chair 1, table 1, table 1; the object is swapped only when the
    # model changes, the old one destroyed first
    adds = [[c["name"] for c in cmds if c["$type"] == "add_object"] for cmds in per_image]
    assert [len(a) for a in adds] == [1, 0, 1, 1, 0]
    assert adds[0] == [catalogue.models["chair"][0]] and adds[2] == [catalogue.models["chair"][1]]
    assert adds[3] == [catalogue.models["table"][1]]
    destroys = [[c["id"] for c in cmds if c["$type"] == "destroy_object"] for cmds in per_image]
    assert destroys == [[], [], [1], [2], []]
    # a second backend sends exactly the same lists for the same specs
    again = T.TDWBackend(port=port, catalogue=catalogue, controller=object(), validate=False)
    assert [again.commands_for(s, m.class_name) for s, m in zip(specs, meshes)] == per_image


def test_no_build_times_out_with_a_clear_error():
    port = free_port()
    backend = T.TDWBackend(port=port, timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(T.TDWError, match=rf"no TDW build answered on port {port} within 1 s.*"
                                         r"render.backend: moderngl"):
        backend.render([spec_for("00000000")], [M("chair")], 16)
    assert time.monotonic() - t0 < 8
    # the port is free again (the blocked socket was closed)
    ctx = zmq.Context()
    s = ctx.socket(zmq.REP)
    s.bind(f"tcp://*:{port}")
    s.close(0)
    ctx.term()


def test_build_that_stops_answering_raises():
    port = free_port()
    build = FakeBuild(port, answer=False)
    build.start()
    backend = T.TDWBackend(port=port, timeout_s=1.0)
    with pytest.raises(T.TDWError, match="stopped answering"):
        backend.render([spec_for("00000000")], [M("chair")], 16)
    build.join(5)
    t0 = time.monotonic()
    backend.close()  # no build to terminate: must neither raise nor hang
    assert time.monotonic() - t0 < 5
    build.ctx.term()


def test_available_says_why():
    ok, reason = T.TDWBackend.available()
    assert ok is False and "build" in reason


def test_factory_builds_tdw_from_config(monkeypatch):
    from task2sim.config import config_from_dict
    from task2sim.render import backends
    from task2sim.render.dataset import RenderConfig

    cfg = config_from_dict(RenderConfig, {"backend": "tdw", "tdw_port": 1234, "tdw_timeout_s": 2.5,
                                          "tdw_models": {"Thing": ["brown_leather_side_chair"]}}, "render")
    b = backends.backend_from_config(cfg, materials=[], environments=[])
    assert isinstance(b, T.TDWBackend) and (b.port, b.timeout_s) == (1234, 2.5)
    assert b.catalogue.model_for("thing", 5).name == "brown_leather_side_chair"
    assert b.catalogue.models["chair"]  # defaults kept for the other classes
    with pytest.raises(T.TDWError, match="not in models_core.json: no_such_model"):
        backends.get_backend("tdw", models={"thing": ["no_such_model"]})
    with pytest.raises(backends.BackendUnavailable, match="unknown render backend 'pov'"):
        backends.get_backend("pov")
    # an optional package that is missing fails only when chosen, naming what to install
    monkeypatch.setitem(backends._REGISTRY, "tdw", ("task2sim.render.no_such_module", "X",
                                                    "tdw (pip install tdw==1.13.0.0)"))
    with pytest.raises(backends.BackendUnavailable, match=r"needs tdw \(pip install"):
        backends.get_backend("tdw")
