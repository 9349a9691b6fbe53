"""TDW (ThreeDWorld) backend: turns each SceneSpec into TDW commands for a user-launched build.

TDW is the simulator the Task2Sim paper rendered with. The build itself (a Unity executable) is not
installable here, so this module has two halves:

* ``scene_commands`` / ``session_commands``: pure functions from a SceneSpec (plus a TDW model and a
  catalogue of TDW asset names) to the JSON-like command dicts ``Controller.communicate`` takes.
  Every command name and parameter was checked against the installed ``tdw==1.13.0.0`` package
  (``check_commands`` does that check at run time too).
* ``TDWBackend``: connects to a build the user started, with our own deadline (the tdw Controller
  otherwise waits forever for a build), sends the commands and decodes the returned images.

Mapping of the bits (meanings in task2sim.render.spec; the spec's values are applied as they are, nothing is drawn
here):
  0 rotation   object reset to identity, then ``rotate_object_by`` pitch, yaw, roll (world axes,
               about the centroid)
  1 distance   ``teleport_object`` of the centroid along the camera ray to distance
               ``distance_factor * camera_distance`` (the avatar never moves)
  2 intensity  ``adjust_directional_light_intensity_by`` sun_intensity * (factor - 1); TDW has only
               a relative intensity command, and ``add_hdri_skybox`` (sent first, every image)
               resets the sun to the skybox record's intensity, so the result is absolute
  3 colour     ``set_directional_light_color``
  4 direction  ``reset_directional_light_rotation`` then ``rotate_directional_light_by`` pitch, yaw
  5 blur       ``set_focus_distance`` (factor * object distance, metres) and ``set_aperture`` as an
               f-number N = focal length / (2 * lens radius), clamped to TDW's [0.1, 32]; pinhole
               (aperture 0) = f/32 focused on the object
  6 background ``add_hdri_skybox`` (catalogue skybox ``background_id mod n``) and
               ``rotate_hdri_skybox_by`` the view yaw. TDW rotates skyboxes about the vertical axis
               only, so ``background_pitch`` has no TDW equivalent and is ignored (documented in
               docs/BACKENDS.md)
  7 materials  ``set_visual_material`` for every material slot of TDW sub-object j with catalogue
               material ``materials[j mod n_parts] mod n``; -1 sends nothing (a freshly added object
               carries its own materials)

Objects: TDW cannot load our meshes (that needs its Unity asset-bundle creator), so each of our
classes maps to TDW model-library records (``TDWCatalogue.models``; by default the records of
``models_core.json`` whose WordNet category names the class) and ``mesh_id`` picks one of them.
Every model is scaled so its bounding sphere has radius 1 (TDW units are metres), matching our
normalised meshes; the camera sits ``camera_distance`` radii from the object with the same field of
view as the other backends.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import io
import json
import math
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .camera import CAMERA_DISTANCE, CAMERA_FOV_DEG
from .spec import SceneSpec

AVATAR_ID = "a"
AVATAR_TYPE = "A_Img_Caps_Kinematic"  # TDW's image-capture avatar without a body
OBJECT_ORIGIN = (0.0, 1.0, 0.0)  # canonical object centre, 1 m above TDW's origin
SENSOR_HEIGHT_MM = 24.0  # Unity's default physical sensor (36 x 24 mm); fov is vertical
F_NUMBER_RANGE = (0.1, 32.0)  # the post-processing depth-of-field aperture range
DEFAULT_TIMEOUT_S = 30.0

# Defaults of the catalogue (names from tdw 1.13's metadata libraries, all checked to exist).
DEFAULT_SKYBOXES = (
    "aft_lounge_4k", "bergen_4k", "cabin_4k", "fish_hoek_beach_4k",
    "industrial_sunset_4k", "kiara_1_dawn_4k", "lookout_4k", "indoor_pool_4k",
)
DEFAULT_MATERIALS = (
    "aluminium_brushed", "american_walnut_crown_cut", "anodized_aluminium", "brass",
    "bricks_red_regular", "braided_wool", "black_ash_quarter_cut", "bronze_yellow",
    "acrylic_cotton_brushed", "antique_bronze_darkened", "basalt_brick_wall", "aluminium_scratched",
)
MODEL_LIBRARY = "models_core.json"
SKYBOX_LIBRARY = "hdri_skyboxes.json"
MATERIAL_LIBRARY = "materials_med.json"


class TDWError(RuntimeError):
    """A TDW build could not be reached or answered badly (one clear line)."""


# ----------------------------------------------------------------------------------------------
# TDW metadata (shipped inside the tdw package; no network)


def _tdw_metadata(library: str) -> dict[str, dict]:
    import tdw  # the metadata json files ship inside the package

    path = Path(tdw.__file__).parent / "metadata_libraries" / library
    if not path.is_file():
        raise TDWError(f"TDW metadata library not found: {path}")
    return json.loads(path.read_text())["records"]


@dataclass(frozen=True)
class TDWModel:
    """The parts of a TDW model record this backend needs."""

    name: str
    library: str
    url: str
    radius: float  # bounding-sphere radius in metres (half the bounds diagonal)
    substructure: tuple[tuple[str, int], ...]  # (sub-object name, number of material slots)

    @classmethod
    def from_record(cls, rec: dict, library: str, platform: str = "Linux") -> "TDWModel":
        b = rec["bounds"]
        lo = np.array([b["left"]["x"], b["bottom"]["y"], b["back"]["z"]], dtype=float)
        hi = np.array([b["right"]["x"], b["top"]["y"], b["front"]["z"]], dtype=float)
        radius = float(np.linalg.norm(hi - lo) / 2)
        if not radius > 0:
            raise TDWError(f"TDW model {rec['name']!r} has empty bounds")
        subs = tuple((s["name"], len(s["materials"])) for s in rec.get("substructure", []))
        return cls(name=rec["name"], library=library, url=rec["urls"][platform], radius=radius,
                   substructure=subs)


def default_model_mapping(library: str = MODEL_LIBRARY) -> dict[str, list[str]]:
    """Class name -> TDW model names: every usable record whose WordNet category names the class,
    either exactly or as the last word of one of its comma-separated synonyms ("table lamp" ->
    lamp, "coffee table, cocktail table" -> table)."""
    mapping: dict[str, list[str]] = {}
    for name, rec in sorted(_tdw_metadata(library).items()):
        if rec.get("do_not_use") or rec.get("composite_object"):
            continue
        keys = set()
        for syn in rec["wcategory"].split(","):
            syn = syn.strip().lower()
            if syn:
                keys.add(syn)
                keys.add(syn.split()[-1])
        for k in keys:
            mapping.setdefault(k, []).append(name)
    return mapping


@dataclass
class TDWCatalogue:
    """Which TDW assets stand in for our classes, environments and materials (all configurable)."""

    models: dict[str, list[str]] = field(default_factory=default_model_mapping)
    skyboxes: tuple[str, ...] = DEFAULT_SKYBOXES
    materials: tuple[str, ...] = DEFAULT_MATERIALS
    model_library: str = MODEL_LIBRARY
    skybox_library: str = SKYBOX_LIBRARY
    material_library: str = MATERIAL_LIBRARY

    def __post_init__(self) -> None:
        if not self.skyboxes or not self.materials:
            raise TDWError("the TDW catalogue needs at least one skybox and one material")
        self._model_records = _tdw_metadata(self.model_library)
        self._skybox_records = _tdw_metadata(self.skybox_library)
        material_records = _tdw_metadata(self.material_library)
        for kind, names, records in (("skybox", self.skyboxes, self._skybox_records),
                                     ("material", self.materials, material_records)):
            missing = [n for n in names if n not in records]
            if missing:
                raise TDWError(f"TDW {kind} not in its library: {', '.join(missing)}")
        self._material_urls = {n: material_records[n]["urls"]["Linux"] for n in self.materials}
        unknown = sorted({n for names in self.models.values() for n in names}
                         - set(self._model_records))
        if unknown:
            raise TDWError(f"TDW model(s) not in {self.model_library}: {', '.join(unknown[:5])}")

    def model_for(self, class_name: str, mesh_id: int) -> TDWModel:
        names = self.models.get(class_name.lower())
        if not names:
            raise TDWError(f"no TDW model mapped to class {class_name!r}; map it to TDW model "
                           f"names in render.tdw_models")
        name = names[int(mesh_id) % len(names)]
        if name not in self._model_records:
            raise TDWError(f"TDW model {name!r} (class {class_name!r}) not in {self.model_library}")
        return TDWModel.from_record(self._model_records[name], self.model_library)

    def skybox_command(self, background_id: int) -> dict:
        name = self.skyboxes[int(background_id) % len(self.skyboxes)]
        r = self._skybox_records[name]
        # Same fields as tdw's Controller.get_add_hdri_skybox, taken from the record.
        return {"$type": "add_hdri_skybox", "name": name, "url": r["urls"]["Linux"],
                "exposure": r["exposure"], "initial_skybox_rotation": r["initial_skybox_rotation"],
                "sun_elevation": r["sun_elevation"], "sun_initial_angle": r["sun_initial_angle"],
                "sun_intensity": r["sun_intensity"]}

    def skybox_sun_intensity(self, background_id: int) -> float:
        name = self.skyboxes[int(background_id) % len(self.skyboxes)]
        return float(self._skybox_records[name]["sun_intensity"])

    def material_name(self, material_id: int) -> str:
        return self.materials[int(material_id) % len(self.materials)]

    def add_material_commands(self) -> list[dict]:
        return [{"$type": "add_material", "name": n, "url": self._material_urls[n]}
                for n in self.materials]


# ----------------------------------------------------------------------------------------------
# Command lists (pure functions of their arguments)


@dataclass(frozen=True)
class CameraGeometry:
    """The camera every backend shares: vertical field of view and object distance in radii."""

    fov_deg: float = CAMERA_FOV_DEG
    distance: float = CAMERA_DISTANCE

    @property
    def position(self) -> tuple[float, float, float]:
        # TDW is left-handed with +Z forward: the camera looks along +Z at the object.
        x, y, z = OBJECT_ORIGIN
        return (x, y, z - self.distance)

    @property
    def focal_length_m(self) -> float:
        return SENSOR_HEIGHT_MM / 1000.0 / (2.0 * math.tan(math.radians(self.fov_deg) / 2.0))


def _vec(v: Sequence[float]) -> dict[str, float]:
    return {"x": float(v[0]), "y": float(v[1]), "z": float(v[2])}


def session_commands(image_size: int, catalogue: TDWCatalogue,
                     camera: CameraGeometry = CameraGeometry()) -> list[dict]:
    """Once per connection: empty scene, square screen, the capture avatar, lossless _img pass,
    and every catalogue material loaded (set_visual_material needs them in memory)."""
    return [
        {"$type": "create_empty_environment"},
        {"$type": "set_screen_size", "width": int(image_size), "height": int(image_size)},
        {"$type": "set_render_quality", "render_quality": 5},
        {"$type": "set_post_process", "value": True},
        {"$type": "create_avatar", "type": AVATAR_TYPE, "id": AVATAR_ID},
        {"$type": "teleport_avatar_to", "position": _vec(camera.position), "avatar_id": AVATAR_ID},
        {"$type": "look_at_position", "position": _vec(OBJECT_ORIGIN), "avatar_id": AVATAR_ID},
        {"$type": "set_field_of_view", "field_of_view": float(camera.fov_deg),
         "avatar_id": AVATAR_ID},
        {"$type": "set_pass_masks", "pass_masks": ["_img"], "avatar_id": AVATAR_ID},
        {"$type": "set_img_pass_encoding", "value": True},  # png: no jpeg artefacts
        *catalogue.add_material_commands(),
    ]


def add_object_commands(model: TDWModel, object_id: int) -> list[dict]:
    """Add a model and scale it to bounding-sphere radius 1 (scale_object is relative: once)."""
    s = 1.0 / model.radius
    return [
        {"$type": "add_object", "name": model.name, "url": model.url, "id": int(object_id),
         "position": _vec((0.0, 0.0, 0.0)), "rotation": _vec((0.0, 0.0, 0.0))},
        {"$type": "scale_object", "id": int(object_id), "scale_factor": _vec((s, s, s))},
    ]


def object_position(spec: SceneSpec, camera: CameraGeometry) -> tuple[float, float, float]:
    """Where the object's centre goes: along the camera ray, distance_factor * camera distance."""
    cam = np.array(camera.position)
    forward = np.array(OBJECT_ORIGIN) - cam
    forward /= np.linalg.norm(forward)
    return tuple(float(v) for v in cam + forward * camera.distance * spec.distance_factor)


def f_number(spec: SceneSpec, camera: CameraGeometry) -> float:
    """Thin-lens radius (object radii = metres here) -> f-number, clamped to TDW's range."""
    if spec.aperture <= 0:
        return F_NUMBER_RANGE[1]
    n = camera.focal_length_m / (2.0 * spec.aperture)
    return float(min(max(n, F_NUMBER_RANGE[0]), F_NUMBER_RANGE[1]))


def scene_commands(spec: SceneSpec, model: TDWModel, catalogue: TDWCatalogue, object_id: int,
                   camera: CameraGeometry = CameraGeometry()) -> list[dict]:
    """Per image: every state the bits touch is set absolutely (identical specs -> identical
    lists; a bit at 0 sends the same commands with the default values, except bit 7 at 0 which
    sends no material commands)."""
    oid = int(object_id)
    obj_distance = camera.distance * spec.distance_factor
    pitch, yaw, roll = spec.rotation
    sun = catalogue.skybox_sun_intensity(spec.background_id)
    cmds: list[dict] = [
        # bit 6: environment (also resets the sun's intensity and the skybox rotation)
        catalogue.skybox_command(spec.background_id),
        {"$type": "rotate_hdri_skybox_by", "angle": float(spec.background_yaw % 360.0)},
        # bit 0: canonical pose, then pitch, yaw, roll about world axes through the centroid
        {"$type": "rotate_object_to", "id": oid, "rotation": {"x": 0.0, "y": 0.0, "z": 0.0,
                                                             "w": 1.0}},
        {"$type": "rotate_object_by", "id": oid, "angle": float(pitch), "axis": "pitch",
         "is_world": True, "use_centroid": True},
        {"$type": "rotate_object_by", "id": oid, "angle": float(yaw), "axis": "yaw",
         "is_world": True, "use_centroid": True},
        {"$type": "rotate_object_by", "id": oid, "angle": float(roll), "axis": "roll",
         "is_world": True, "use_centroid": True},
        # bit 1: centroid along the camera ray
        {"$type": "teleport_object", "id": oid, "position": _vec(object_position(spec, camera)),
         "use_centroid": True},
        # bit 2: the skybox just reset the sun to its record's intensity
        {"$type": "adjust_directional_light_intensity_by",
         "intensity": float(sun * (spec.light_intensity - 1.0)), "index": 0},
        # bit 3
        {"$type": "set_directional_light_color", "index": 0,
         "color": {"r": float(spec.light_colour[0]), "g": float(spec.light_colour[1]),
                   "b": float(spec.light_colour[2]), "a": 1.0}},
        # bit 4: absolute direction
        {"$type": "reset_directional_light_rotation", "index": 0},
        {"$type": "rotate_directional_light_by", "angle": float(spec.light_pitch),
         "axis": "pitch", "index": 0},
        {"$type": "rotate_directional_light_by", "angle": float(spec.light_yaw), "axis": "yaw",
         "index": 0},
        # bit 5: post-processing depth of field
        {"$type": "set_focus_distance",
         "focus_distance": float(spec.focus_distance_factor * obj_distance)},
        {"$type": "set_aperture", "aperture": f_number(spec, camera)},
    ]
    # bit 7: per TDW sub-object, the spec's material of part (j mod n_parts)
    if spec.materials and any(m >= 0 for m in spec.materials):
        for j, (sub_name, n_slots) in enumerate(model.substructure):
            m = spec.materials[j % len(spec.materials)]
            if m < 0:
                continue
            mat = catalogue.material_name(m)
            for k in range(n_slots):
                cmds.append({"$type": "set_visual_material", "id": oid, "object_name": sub_name,
                             "material_name": mat, "material_index": k})
    cmds.append({"$type": "send_images", "ids": [AVATAR_ID], "frequency": "once"})
    return cmds


# ----------------------------------------------------------------------------------------------
# Checking commands against the installed tdw package


class _PycFinder(importlib.abc.MetaPathFinder):
    """tdw 1.13's wheel ships tdw/commands only as compiled modules in __pycache__ (no .py), which
    the normal import system does not load; this finder loads them for signature checks."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith("tdw.commands."):
            return None
        pyc = self.folder / f"{fullname.rsplit('.', 1)[1]}.{sys.implementation.cache_tag}.pyc"
        if not pyc.is_file():
            return None
        return importlib.util.spec_from_loader(
            fullname, importlib.machinery.SourcelessFileLoader(fullname, str(pyc)))


def _command_folder() -> Path:
    import tdw

    return Path(tdw.__file__).parent / "commands" / "__pycache__"


def commands_checkable() -> bool:
    """Whether the installed tdw ships its command modules for this Python (3.7 and 3.11 in
    tdw 1.13); elsewhere commands are sent unchecked."""
    return (_command_folder() / f"set_aperture.{sys.implementation.cache_tag}.pyc").is_file()


_SIGNATURES: dict[str, inspect.Signature] = {}
_SIG_LOCK = threading.Lock()


def command_signature(command_type: str) -> inspect.Signature:
    """The constructor signature of tdw's class for ``command_type`` (its JSON fields)."""
    with _SIG_LOCK:
        if command_type in _SIGNATURES:
            return _SIGNATURES[command_type]
        if not commands_checkable():
            raise TDWError(f"tdw {tdw_version()} ships no command modules for "
                           f"{sys.implementation.cache_tag}: cannot check TDW commands")
        finder = _PycFinder(_command_folder())
        sys.meta_path.insert(0, finder)
        try:
            mod = importlib.import_module(f"tdw.commands.{command_type}")
        except ImportError as e:
            raise TDWError(f"tdw {tdw_version()} has no command {command_type!r}") from e
        finally:
            sys.meta_path.remove(finder)
        classes = [c for c in vars(mod).values()
                   if inspect.isclass(c) and c.__module__ == mod.__name__]
        if len(classes) != 1:
            raise TDWError(f"cannot find the class of TDW command {command_type!r}")
        sig = inspect.signature(classes[0].__init__)
        _SIGNATURES[command_type] = sig
        return sig


def check_commands(commands: Sequence[dict]) -> None:
    """Raise TDWError unless every command exists in the installed tdw, sets only parameters it
    has, and sets all parameters that have no default."""
    for cmd in commands:
        ctype = cmd.get("$type")
        if not isinstance(ctype, str):
            raise TDWError(f"command without a $type: {cmd}")
        params = dict(command_signature(ctype).parameters)
        params.pop("self", None)
        unknown = set(cmd) - {"$type"} - set(params)
        if unknown:
            raise TDWError(f"TDW command {ctype!r} has no parameter(s) {sorted(unknown)}")
        required = {n for n, p in params.items() if p.default is inspect.Parameter.empty}
        missing = required - set(cmd)
        if missing:
            raise TDWError(f"TDW command {ctype!r} is missing required {sorted(missing)}")


def tdw_version() -> str:
    try:
        from importlib.metadata import version

        return version("tdw")
    except Exception:  # noqa: BLE001 - only for messages
        return "?"


# ----------------------------------------------------------------------------------------------
# Output data


def decode_images(resp: Sequence[bytes], image_size: int | None = None) -> list[np.ndarray]:
    """The ``_img`` passes of TDW's Images output data in a communicate() response, as uint8
    (H, W, 3) arrays (resized to image_size if the build sent another size)."""
    from PIL import Image
    from tdw.output_data import Images, OutputData

    out = []
    for r in resp[:-1]:  # the last element is the frame number
        if OutputData.get_data_type_id(r) != "imag":
            continue
        images = Images(r)
        for i in range(images.get_num_passes()):
            if images.get_pass_mask(i) != "_img":
                continue
            pil = Image.open(io.BytesIO(images.get_image(i).tobytes())).convert("RGB")
            if image_size is not None and pil.size != (image_size, image_size):
                pil = pil.resize((image_size, image_size), Image.BILINEAR)
            out.append(np.asarray(pil, dtype=np.uint8))
    return out


# ----------------------------------------------------------------------------------------------
# Connection and the backend


def connect(port: int, timeout_s: float = DEFAULT_TIMEOUT_S):
    """A tdw Controller bound to ``port``, once a user-launched build has connected to it.

    The Controller binds and then blocks on its socket until a build connects (forever when none
    does), so its constructor runs in a thread; past the deadline the socket's context is
    destroyed, which ends that blocking call and frees the port, and TDWError says what to do.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tdw imports the deprecated pkg_resources
            from tdw.controller import Controller
        import zmq
    except ImportError as e:
        raise TDWError(f"the TDW backend needs the tdw package (pip install tdw==1.13.0.0 "
                       f"'setuptools<81'): {e}") from e

    ctl = Controller.__new__(Controller)
    failure: list[BaseException] = []

    def init() -> None:
        try:
            # check_version=False: no PyPI request; launch_build=False: the user runs the build.
            Controller.__init__(ctl, port=int(port), check_version=False, launch_build=False)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            failure.append(e)
            sock = getattr(ctl, "socket", None)
            if sock is not None:
                sock.close(linger=0)  # by its own thread: zmq sockets are not thread-safe

    thread = threading.Thread(target=init, name=f"tdw-connect-{port}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive() or failure:
        sock = getattr(ctl, "socket", None)
        if sock is not None:
            # term() makes the blocked recv raise ContextTerminated in its thread, which closes
            # the socket; term returns once it is closed, freeing the port. Bounded, to be safe.
            terminator = threading.Thread(target=sock.context.term, daemon=True)
            terminator.start()
            terminator.join(5.0)
        thread.join(5.0)
        if failure and not isinstance(failure[0], zmq.ContextTerminated):
            raise TDWError(f"TDW connection on port {port} failed: {failure[0]}") from failure[0]
        raise TDWError(
            f"no TDW build answered on port {port} within {timeout_s:g} s; start one with "
            f"`~/tdw_build/TDW/TDW.x86_64 -port {port}` (a TDW {tdw_version()} build, see "
            f"docs/BACKENDS.md) or use render.backend: moderngl")
    # Later calls must not hang either if the build dies.
    ctl.socket.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
    return ctl


class TDWBackend:
    """Renders SceneSpecs with a running TDW build (see the module docstring for the mapping)."""

    name = "tdw"

    def __init__(self, port: int = 1071, timeout_s: float = DEFAULT_TIMEOUT_S,
                 models: dict[str, list[str]] | None = None,
                 catalogue: TDWCatalogue | None = None, camera: CameraGeometry | None = None,
                 controller: Any = None, validate: bool = True,
                 connect_fn: Callable[[int, float], Any] = connect) -> None:
        """``models`` overrides the class -> TDW model mapping per class (render.tdw_models)."""
        self.port = int(port)
        self.timeout_s = float(timeout_s)
        if catalogue is None:
            mapping = default_model_mapping()
            mapping.update({k.lower(): list(v) for k, v in (models or {}).items()})
            catalogue = TDWCatalogue(models=mapping)
        self.catalogue = catalogue
        self.camera = camera if camera is not None else CameraGeometry()
        self.validate = validate
        self._controller = controller
        self._connect_fn = connect_fn
        self._session_size: int | None = None
        self._object: tuple[str, int] | None = None  # (model name, object id) in the scene
        self._next_id = 1

    @classmethod
    def from_config(cls, cfg, materials: Sequence[Any], environments: Sequence[Any]) -> "TDWBackend":
        """From the render config (``RenderConfig``): port, timeout and model overrides. TDW uses its
        own material and skybox catalogues, so the asset lists are not needed."""
        return cls(port=cfg.tdw_port, timeout_s=cfg.tdw_timeout_s, models=dict(cfg.tdw_models))

    @staticmethod
    def available() -> tuple[bool, str]:
        """TDW needs a build that the user launches; nothing here can start or download one."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import tdw.controller  # noqa: F401
        except ImportError as e:
            return False, f"tdw is not installed ({e})"
        return False, ("tdw renders only with a TDW build that you launch yourself "
                       "(not downloadable offline); start it, then use render.backend: tdw")

    def version(self) -> str:
        return f"tdw-{tdw_version()}"

    def _communicate(self, commands: list[dict]) -> list:
        import zmq

        if self.validate and commands_checkable():
            check_commands(commands)
        try:
            return self._controller.communicate(commands)
        except zmq.Again as e:
            raise TDWError(f"the TDW build on port {self.port} stopped answering "
                           f"(no reply within {self.timeout_s:g} s)") from e

    def _ensure_session(self, image_size: int) -> None:
        if self._controller is None:
            self._controller = self._connect_fn(self.port, self.timeout_s)
        if self._session_size != image_size:
            self._communicate(session_commands(image_size, self.catalogue, self.camera))
            self._session_size = image_size

    def commands_for(self, spec: SceneSpec, class_name: str) -> list[dict]:
        """The full list sent for one image: swap the object if the model changes, then the
        scene commands."""
        model = self.catalogue.model_for(class_name, spec.mesh_id)
        cmds: list[dict] = []
        if self._object is None or self._object[0] != model.name:
            if self._object is not None:
                cmds.append({"$type": "destroy_object", "id": self._object[1]})
            oid = self._next_id
            self._next_id += 1
            cmds += add_object_commands(model, oid)
            self._object = (model.name, oid)
        return cmds + scene_commands(spec, model, self.catalogue, self._object[1], self.camera)

    def render(self, specs: Sequence[SceneSpec], meshes: Sequence[Any],
               image_size: int) -> np.ndarray:
        """One image per spec; ``meshes[i]`` (our Mesh) is used only for its class name, which
        picks the TDW model together with ``specs[i].mesh_id``."""
        if len(specs) != len(meshes):
            raise ValueError(f"{len(specs)} specs but {len(meshes)} meshes")
        self._ensure_session(int(image_size))
        out = np.empty((len(specs), image_size, image_size, 3), dtype=np.uint8)
        for i, (spec, mesh) in enumerate(zip(specs, meshes)):
            resp = self._communicate(self.commands_for(spec, mesh.class_name))
            imgs = decode_images(resp, image_size)
            if len(imgs) != 1:
                raise TDWError(f"TDW build sent {len(imgs)} _img images for one scene, expected 1")
            out[i] = imgs[0]
        return out

    def close(self) -> None:
        if self._controller is not None:
            import zmq

            try:
                self._controller.communicate({"$type": "terminate"})
            except zmq.ZMQError:
                pass  # the build is already gone or stopped answering: nothing to terminate
            finally:
                sock = getattr(self._controller, "socket", None)
                if sock is not None:  # used only by this thread since connect() returned
                    sock.close(linger=0)
                    sock.context.term()
                self._controller = None
