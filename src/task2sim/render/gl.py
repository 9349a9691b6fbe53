"""The default renderer: moderngl on headless EGL (Mesa llvmpipe), many image tiles per framebuffer.

Usage::

    backend = GLBackend(materials=list_materials(), environments=list_environments(cache))
    images = backend.render(specs, meshes, image_size=64)          # uint8 (N, S, S, 3)
    images, alpha = backend.render(specs, meshes, 64, return_alpha=True)

What each SceneSpec field does here (the same meanings as every other backend, ALGORITHMS §1):
  rotation      model matrix Rz(roll) Ry(yaw) Rx(pitch), world axes, degrees
  distance      the object moves along the camera ray to distance_factor * CAMERA_DISTANCE
  light         one directional light: colour * intensity * SUN_IRRADIANCE, from (yaw, pitch)
  focus blur    thin lens: ``blur_passes`` jittered eye positions on a disc of radius ``aperture``
                (object radii), each with an off-axis frustum that keeps the focus plane fixed,
                averaged in linear HDR; background and object blur alike
  background    equirectangular HDR environment ``background_id``, seen along (yaw, pitch); it also
                lights the object (diffuse from a blurred mip level, reflections by roughness)
  materials     per part: material list entry, or the part's own material for -1

Shading is linear HDR (Blinn-Phong lobe + environment reflections + hemispherical diffuse), then
exposure, a filmic (ACES fit) tone curve and sRGB gamma. Images with and without blur go in
separate batches: the first need ``blur_passes`` renders, the second one.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from .backends import CAMERA_DISTANCE, CAMERA_FOV_DEG, light_direction, rotation_matrix, srgb_to_linear
from .spec import SceneSpec

NEAR, FAR = 0.05, 50.0
SUN_IRRADIANCE = 2.0         # default directional light (relative intensity 1)
ENV_MEAN_LUMINANCE = 0.5     # every environment map is scaled to this mean luminance
EXPOSURE = 1.0
ATLAS_SIDE = 1024            # framebuffer side: 256 tiles of 64 px per batch
MESH_CACHE = 64              # meshes whose vertex buffers stay on the "GPU"
BLUR_METHODS = ("thinlens", "gather")
GATHER_TAPS = 48             # neighbours sampled per pixel by the gather blur
GATHER_MAX_RADIUS = 12.0     # pixels at 64 px (scaled with the image size)


class GLUnavailable(RuntimeError):
    """No EGL/OpenGL 3.3 context could be created."""


def available() -> tuple[bool, str]:
    """Whether an EGL context can be created here, and why not."""
    try:
        ctx = _create_context()
    except GLUnavailable as e:
        return False, str(e)
    ctx.release()
    return True, ""


def _create_context():
    try:
        import moderngl
    except ImportError as e:
        raise GLUnavailable(f"moderngl is not installed: {e}") from e
    try:
        return moderngl.create_context(standalone=True, backend="egl", require=330)
    except Exception as e:  # moderngl raises plain Exception subclasses from glcontext
        raise GLUnavailable(
            "no headless EGL OpenGL 3.3 context (install Debian libegl1 libegl-mesa0 "
            f"libgl1-mesa-dri): {e}") from e


# --- geometry (numpy, column vectors; uploaded transposed for GLSL's column-major); camera and
# rotation conventions are shared with the other backends in task2sim.render.backends ----------

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


def camera_matrices(spec: SceneSpec, lens: tuple[float, float] = (0.0, 0.0)):
    """(view-projection, eye position) for one lens sample of a spec; the camera sits on +Z."""
    obj_dist = CAMERA_DISTANCE * spec.distance_factor
    focus = max(spec.focus_distance_factor * obj_dist, NEAR * 2)
    ex, ey = lens[0] * spec.aperture, lens[1] * spec.aperture
    half = NEAR * math.tan(math.radians(CAMERA_FOV_DEG) / 2)
    # Off-axis frustum: shifting the eye by e and the window by -e*near/focus keeps the plane at
    # `focus` fixed on screen, which is the thin-lens model.
    sx, sy = ex * NEAR / focus, ey * NEAR / focus
    proj = frustum(-half - sx, half - sx, -half - sy, half - sy, NEAR, FAR)
    eye = np.array([ex, ey, obj_dist])
    view = np.eye(4)
    view[:3, 3] = -eye
    return proj @ view, eye


_VERTEX = """
#version 330
uniform mat4 u_model;
uniform mat4 u_viewproj;
in vec3 in_pos; in vec3 in_normal; in vec2 in_uv;
out vec3 v_pos; out vec3 v_normal; out vec2 v_uv;
void main() {
    vec4 world = u_model * vec4(in_pos, 1.0);
    v_pos = world.xyz;
    v_normal = mat3(u_model) * in_normal;
    v_uv = in_uv;
    gl_Position = u_viewproj * world;
}
"""

_ENV_LOOKUP = """
uniform sampler2D u_env;
uniform mat3 u_env_rot;      // world -> environment direction
uniform float u_env_scale;
const float PI = 3.14159265358979;
vec3 env(vec3 dir_world, float lod) {
    vec3 d = normalize(u_env_rot * dir_world);
    // row 0 looks up (+Y); azimuth 0 at -Z (straight ahead of the camera), increasing to +X
    float u = atan(d.x, -d.z) / (2.0 * PI) + 0.5;
    float v = acos(clamp(d.y, -1.0, 1.0)) / PI;
    return textureLod(u_env, vec2(u, v), lod).rgb * u_env_scale;
}
"""

_OBJECT_FRAGMENT = """
#version 330
in vec3 v_pos; in vec3 v_normal; in vec2 v_uv;
uniform vec3 u_eye;
uniform vec3 u_light_dir; uniform vec3 u_light_rgb;
uniform vec3 u_base; uniform float u_specular; uniform float u_roughness; uniform float u_metallic;
uniform bool u_textured; uniform sampler2D u_tex; uniform float u_tex_scale;
uniform float u_env_lod_max;
out vec4 f_color;
""" + _ENV_LOOKUP + """
void main() {
    vec3 n = normalize(v_normal);
    vec3 v = normalize(u_eye - v_pos);
    if (!gl_FrontFacing) n = -n;            // meshes with inconsistent winding: shade two-sided
    if (dot(n, v) < 0.0) n = normalize(n - 1.01 * dot(n, v) * v);
    vec3 albedo = u_base;
    if (u_textured) {   // the same sRGB decode as backends.srgb_to_linear
        vec3 t = texture(u_tex, v_uv * u_tex_scale).rgb;
        albedo *= mix(t / 12.92, pow((t + 0.055) / 1.055, vec3(2.4)), step(0.04045, t));
    }
    vec3 l = normalize(u_light_dir);
    float ndl = max(dot(n, l), 0.0);
    vec3 h = normalize(l + v);
    float r = clamp(u_roughness, 0.03, 1.0);
    float shininess = 2.0 / (r * r * r * r) - 2.0;
    vec3 f0 = mix(vec3(0.04 + 0.12 * u_specular), albedo, u_metallic);
    float fres = pow(1.0 - max(dot(n, v), 0.0), 5.0);
    vec3 fr = f0 + (1.0 - f0) * fres * (1.0 - r);
    vec3 spec_sun = fr * (shininess + 8.0) / 8.0 * pow(max(dot(n, h), 0.0), shininess) * ndl;
    vec3 irradiance = env(n, u_env_lod_max);
    vec3 reflected = env(reflect(-v, n), r * u_env_lod_max);
    vec3 diffuse = albedo * (1.0 - u_metallic) * (ndl * u_light_rgb + irradiance);
    vec3 colour = diffuse + spec_sun * u_light_rgb + fr * reflected * (0.25 + 0.75 * u_specular);
    f_color = vec4(colour, 1.0);
}
"""

_QUAD_VERTEX = """
#version 330
in vec2 in_pos;
out vec2 v_ndc;
void main() { v_ndc = in_pos; gl_Position = vec4(in_pos, 0.9999, 1.0); }
"""

_BACKGROUND_FRAGMENT = """
#version 330
in vec2 v_ndc;
uniform mat4 u_inv_viewproj;
out vec4 f_color;
""" + _ENV_LOOKUP + """
void main() {
    vec4 near = u_inv_viewproj * vec4(v_ndc, -1.0, 1.0);
    vec4 far = u_inv_viewproj * vec4(v_ndc, 1.0, 1.0);
    vec3 dir = far.xyz / far.w - near.xyz / near.w;
    f_color = vec4(env(dir, 0.0), 0.0);      // alpha 0: background
}
"""

_COPY_FRAGMENT = """
#version 330
in vec2 v_ndc;
uniform sampler2D u_src;
uniform float u_weight;
out vec4 f_color;
void main() { f_color = texture(u_src, v_ndc * 0.5 + 0.5) * u_weight; }
"""

_GATHER_FRAGMENT = """
#version 330
// Depth-of-field by gathering ("scatter as gather"): every neighbour q inside the disc of the
// largest circle of confusion contributes to this pixel if this pixel lies inside q's own circle,
// weighted by 1 / area of that circle, as a thin lens spreads q's light. One render + this pass
// stands in for many jittered thin-lens passes (see BENCHMARKS.md for how close it comes).
in vec2 v_ndc;
uniform sampler2D u_src;
uniform sampler2D u_depth;
uniform vec2 u_atlas;        // atlas size in pixels
uniform vec4 u_tile;         // tile origin (x, y) and size (w, h) in pixels
uniform float u_near; uniform float u_far;
uniform float u_lens;        // lens radius (world units)
uniform float u_inv_focus;   // 1 / focus distance
uniform float u_px_per_rad;  // pixels per radian at the image centre
uniform float u_radius;      // largest circle of confusion in this tile, pixels
uniform int u_taps;
out vec4 f_color;
const float GOLDEN = 2.39996323;
float coc(vec2 px) {
    float d = texture(u_depth, px / u_atlas).r;
    // the background quad sits at NDC z 0.9999 (window depth 0.99995): treat it as infinity
    float inv_z = d >= 0.99994 ? 0.0 : (u_far + u_near - (2.0 * d - 1.0) * (u_far - u_near)) / (2.0 * u_far * u_near);
    return u_lens * abs(inv_z - u_inv_focus) * u_px_per_rad;
}
void main() {
    vec2 p = u_tile.xy + (v_ndc * 0.5 + 0.5) * u_tile.zw;
    vec2 lo = u_tile.xy + 0.5, hi = u_tile.xy + u_tile.zw - 0.5;
    vec4 sum = vec4(0.0);
    float wsum = 0.0;
    for (int i = 0; i <= u_taps; ++i) {
        float r = i == 0 ? 0.0 : u_radius * sqrt((float(i) - 0.5) / float(u_taps));
        float a = float(i) * GOLDEN;
        vec2 q = clamp(p + r * vec2(cos(a), sin(a)), lo, hi);
        float c = coc(q);
        // q covers this pixel if its circle reaches it (soft over one pixel); the centre always
        float w = (i == 0 ? 1.0 : clamp(c - r + 0.5, 0.0, 1.0)) / max(c * c, 0.25);
        sum += w * texture(u_src, q / u_atlas);
        wsum += w;
    }
    f_color = sum / max(wsum, 1e-6);
}
"""

_TONEMAP_FRAGMENT = """
#version 330
in vec2 v_ndc;
uniform sampler2D u_src;
uniform float u_exposure;
out vec4 f_color;
vec3 aces(vec3 x) {   // Narkowicz's fit of the ACES filmic curve
    return clamp((x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14), 0.0, 1.0);
}
void main() {
    vec4 hdr = texture(u_src, v_ndc * 0.5 + 0.5);
    vec3 ldr = pow(aces(hdr.rgb * u_exposure), vec3(1.0 / 2.2));
    f_color = vec4(ldr, hdr.a);
}
"""


class GLBackend:
    """moderngl renderer of SceneSpecs. Not thread-safe; one per process."""

    name = "moderngl"

    def __init__(self, materials: Sequence[Any], environments: Sequence[Any], blur_passes: int = 8,
                 blur_method: str = "thinlens", atlas_side: int = ATLAS_SIDE) -> None:
        import moderngl

        self._mgl = moderngl
        self.ctx = _create_context()
        self.materials = list(materials)
        self.blur_passes = int(blur_passes)
        if blur_method not in BLUR_METHODS:
            raise ValueError(f"blur_method must be one of {BLUR_METHODS}, got {blur_method!r}")
        self.blur_method = blur_method
        self.atlas_side = int(atlas_side)
        self._obj = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_OBJECT_FRAGMENT)
        self._bg = self.ctx.program(vertex_shader=_QUAD_VERTEX, fragment_shader=_BACKGROUND_FRAGMENT)
        self._copy = self.ctx.program(vertex_shader=_QUAD_VERTEX, fragment_shader=_COPY_FRAGMENT)
        self._tone = self.ctx.program(vertex_shader=_QUAD_VERTEX, fragment_shader=_TONEMAP_FRAGMENT)
        self._gather = self.ctx.program(vertex_shader=_QUAD_VERTEX, fragment_shader=_GATHER_FRAGMENT)
        quad = self.ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4").tobytes())
        self._quads = {p: self.ctx.vertex_array(p, [(quad, "2f", "in_pos")])
                       for p in (self._bg, self._copy, self._tone, self._gather)}
        self.environments = list(environments)
        self._envs = [self._upload_environment(e.image) for e in environments]
        if not self._envs:
            raise ValueError("GLBackend needs at least one environment map")
        self._material_tex: dict[int, Any] = {}
        self._meshes: OrderedDict[int, list[tuple[Any, Any]]] = OrderedDict()
        self._targets: dict[int, tuple[Any, ...]] = {}

    def version(self) -> str:
        with self.ctx:
            info = self.ctx.info
        return f"moderngl {self._mgl.__version__}; {info['GL_RENDERER']}; GL {info['GL_VERSION']}"

    def close(self) -> None:
        self.ctx.release()

    # --- resources ---------------------------------------------------------------------------------
    def _upload_environment(self, image: np.ndarray):
        img = np.ascontiguousarray(image, dtype="f4")
        lum = float((img @ np.array([0.2126, 0.7152, 0.0722], dtype="f4")).mean())
        tex = self.ctx.texture((img.shape[1], img.shape[0]), 3, img.tobytes(), dtype="f4")
        tex.repeat_x, tex.repeat_y = True, False
        tex.build_mipmaps()
        tex.filter = (self._mgl.LINEAR_MIPMAP_LINEAR, self._mgl.LINEAR)
        lod_max = max(0.0, math.log2(max(img.shape[:2])) - 2.0)  # a 4 x 8 level: the irradiance
        return tex, ENV_MEAN_LUMINANCE / max(lum, 1e-6), lod_max

    def _texture(self, key: int, pixels: np.ndarray):
        tex = self._material_tex.get(key)
        if tex is None:
            px = np.ascontiguousarray(pixels[..., :3], dtype="u1")
            tex = self.ctx.texture((px.shape[1], px.shape[0]), 3, px.tobytes())
            tex.build_mipmaps()
            tex.filter = (self._mgl.LINEAR_MIPMAP_LINEAR, self._mgl.LINEAR)
            self._material_tex[key] = tex
        return tex

    def _mesh_arrays(self, mesh) -> list[tuple[Any, Any]]:
        key = id(mesh)
        if key in self._meshes:
            self._meshes.move_to_end(key)
            return self._meshes[key][1]
        vaos = []
        for part in mesh.parts:
            data = np.hstack([part.vertices, part.normals, part.uvs]).astype("f4")
            vbo = self.ctx.buffer(data.tobytes())
            ibo = self.ctx.buffer(np.ascontiguousarray(part.faces, dtype="i4").tobytes())
            vaos.append(self.ctx.vertex_array(
                self._obj, [(vbo, "3f 3f 2f", "in_pos", "in_normal", "in_uv")], index_buffer=ibo))
        # keep the mesh itself alive so its id() is not reused while cached
        self._meshes[key] = (mesh, vaos)
        while len(self._meshes) > MESH_CACHE:
            _, (_, old) = self._meshes.popitem(last=False)
            for vao in old:
                vao.release()
        return vaos

    def _target(self, size: int):
        """HDR pass, HDR accumulation and 8-bit output framebuffers of one tile size."""
        if size not in self._targets:
            side = max(size, (self.atlas_side // size) * size)
            hdr = self.ctx.texture((side, side), 4, dtype="f2")
            depth = self.ctx.depth_texture((side, side))
            depth.compare_func = ""  # sample raw depth values (the gather blur reads them)
            depth.filter = (self._mgl.NEAREST, self._mgl.NEAREST)
            acc = self.ctx.texture((side, side), 4, dtype="f4")
            out = self.ctx.renderbuffer((side, side), 4)
            self._targets[size] = (
                side,
                self.ctx.framebuffer([hdr], depth), hdr, depth,
                self.ctx.framebuffer([acc]), acc,
                self.ctx.framebuffer([out]),
            )
        return self._targets[size]

    # --- rendering ---------------------------------------------------------------------------------
    def render(self, specs: Sequence[SceneSpec], meshes: Sequence[Any], image_size: int,
               return_alpha: bool = False):
        """Render ``specs[i]`` with ``meshes[i]``: uint8 (N, S, S, 3) (and float alpha (N, S, S))."""
        if len(specs) != len(meshes):
            raise ValueError(f"{len(specs)} specs but {len(meshes)} meshes")
        n, s = len(specs), int(image_size)
        images = np.zeros((n, s, s, 3), dtype=np.uint8)
        alpha = np.zeros((n, s, s), dtype=np.float32)
        # Make this backend's context current: several backends may live in one process.
        with self.ctx:
            side = self._target(s)[0]
            per_batch = (side // s) ** 2
            can_blur = self.blur_method == "gather" or self.blur_passes > 1
            blurred = [i for i, sp in enumerate(specs) if sp.aperture > 0 and can_blur]
            sharp = [i for i, sp in enumerate(specs) if not (sp.aperture > 0 and can_blur)]
            blur_passes = "gather" if self.blur_method == "gather" else self.blur_passes
            for group, passes in ((sharp, 1), (blurred, blur_passes)):
                for start in range(0, len(group), per_batch):
                    idx = group[start:start + per_batch]
                    rgba = self._render_batch([specs[i] for i in idx], [meshes[i] for i in idx], s, passes)
                    images[idx] = rgba[..., :3]
                    alpha[idx] = rgba[..., 3].astype(np.float32) / 255.0
        return (images, alpha) if return_alpha else images

    def _render_batch(self, specs, meshes, s: int, passes: int) -> np.ndarray:
        side, fbo_hdr, hdr, depth, fbo_acc, acc, fbo_out = self._target(s)
        cols = side // s
        ctx = self.ctx
        gather = passes == "gather"
        passes = 1 if gather else passes
        lenses = lens_offsets(passes)
        if passes > 1 or gather:
            fbo_acc.use()
            ctx.clear(0.0, 0.0, 0.0, 0.0)
        for p in range(passes):
            fbo_hdr.use()
            ctx.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            for t, (spec, mesh) in enumerate(zip(specs, meshes)):
                ctx.viewport = ((t % cols) * s, (t // cols) * s, s, s)
                self._draw_scene(spec, mesh, tuple(lenses[p]))
            if passes > 1:
                fbo_acc.use()
                ctx.viewport = (0, 0, side, side)
                ctx.disable(self._mgl.DEPTH_TEST)
                ctx.enable(self._mgl.BLEND)
                ctx.blend_func = (self._mgl.ONE, self._mgl.ONE)
                hdr.use(0)
                self._copy["u_src"].value = 0
                self._copy["u_weight"].value = 1.0 / passes
                self._quads[self._copy].render(self._mgl.TRIANGLE_STRIP)
                ctx.disable(self._mgl.BLEND)
        if gather:
            self._gather_blur(specs, s, side, hdr, depth, fbo_acc)
        fbo_out.use()
        ctx.viewport = (0, 0, side, side)
        ctx.disable(self._mgl.DEPTH_TEST)
        (acc if passes > 1 or gather else hdr).use(0)
        self._tone["u_src"].value = 0
        self._tone["u_exposure"].value = EXPOSURE
        self._quads[self._tone].render(self._mgl.TRIANGLE_STRIP)
        rows = math.ceil(len(specs) / cols)
        raw = fbo_out.read(viewport=(0, 0, side, rows * s), components=4)
        atlas = np.frombuffer(raw, dtype=np.uint8).reshape(rows * s, side, 4)
        out = np.empty((len(specs), s, s, 4), dtype=np.uint8)
        for t in range(len(specs)):
            r, c = divmod(t, cols)
            out[t] = atlas[r * s:(r + 1) * s, c * s:(c + 1) * s][::-1]  # GL rows go bottom-up
        return out

    def _gather_blur(self, specs, s: int, side: int, hdr, depth, fbo_acc) -> None:
        """Depth-based thin-lens blur of every tile of the HDR atlas into the accumulation target."""
        ctx, g = self.ctx, self._gather
        fbo_acc.use()
        ctx.disable(self._mgl.DEPTH_TEST)
        hdr.use(0)
        depth.use(2)
        g["u_src"].value, g["u_depth"].value = 0, 2
        g["u_atlas"].value = (float(side), float(side))
        g["u_near"].value, g["u_far"].value = NEAR, FAR
        g["u_taps"].value = GATHER_TAPS
        px_per_rad = (s / 2) / math.tan(math.radians(CAMERA_FOV_DEG) / 2)
        g["u_px_per_rad"].value = px_per_rad
        cols = side // s
        for t, spec in enumerate(specs):
            x, y = (t % cols) * s, (t // cols) * s
            ctx.viewport = (x, y, s, s)
            obj_dist = CAMERA_DISTANCE * spec.distance_factor
            focus = max(spec.focus_distance_factor * obj_dist, NEAR * 2)
            near_obj = max(obj_dist - 1.0, NEAR)
            # the largest circle of confusion in the tile: the background or the object's near side
            worst = spec.aperture * max(1.0 / focus, abs(1.0 / near_obj - 1.0 / focus)) * px_per_rad
            g["u_tile"].value = (float(x), float(y), float(s), float(s))
            g["u_lens"].value = spec.aperture
            g["u_inv_focus"].value = 1.0 / focus
            g["u_radius"].value = float(min(worst, GATHER_MAX_RADIUS * s / 64))
            self._quads[g].render(self._mgl.TRIANGLE_STRIP)

    def _set_env(self, prog, spec: SceneSpec):
        tex, scale, lod_max = self._envs[spec.background_id % len(self._envs)]
        tex.use(1)
        prog["u_env"].value = 1
        rot = environment_rotation(spec.background_yaw, spec.background_pitch)
        prog["u_env_rot"].write(rot.T.astype("f4").tobytes())
        prog["u_env_scale"].value = scale
        return lod_max

    def _draw_scene(self, spec: SceneSpec, mesh, lens: tuple[float, float]) -> None:
        ctx = self.ctx
        viewproj, eye = camera_matrices(spec, lens)
        # Object first (depth test), then the background only where nothing was drawn.
        ctx.enable(self._mgl.DEPTH_TEST)
        prog = self._obj
        lod_max = self._set_env(prog, spec)
        prog["u_env_lod_max"].value = lod_max
        model = np.eye(4)
        model[:3, :3] = rotation_matrix(*spec.rotation)
        prog["u_model"].write(model.T.astype("f4").tobytes())
        prog["u_viewproj"].write(viewproj.T.astype("f4").tobytes())
        prog["u_eye"].value = tuple(float(v) for v in eye)
        prog["u_light_dir"].value = tuple(float(v) for v in light_direction(spec.light_yaw, spec.light_pitch))
        prog["u_light_rgb"].value = tuple(SUN_IRRADIANCE * spec.light_intensity * c for c in spec.light_colour)
        for k, (part, vao) in enumerate(zip(mesh.parts, self._mesh_arrays(mesh))):
            mat_id = spec.materials[k] if k < len(spec.materials) else -1
            mat = part.material if mat_id < 0 else self.materials[mat_id]
            prog["u_base"].value = tuple(float(v) for v in srgb_to_linear(mat.base_colour))
            prog["u_specular"].value = float(mat.specular)
            prog["u_roughness"].value = float(mat.roughness)
            prog["u_metallic"].value = float(mat.metallic)
            textured = mat.texture is not None
            prog["u_textured"].value = textured
            if textured:
                key = mat_id if mat_id >= 0 else -(id(mat) + 1)
                self._texture(key, mat.texture).use(0)
                prog["u_tex"].value = 0
                prog["u_tex_scale"].value = float(getattr(mat, "texture_scale", 1.0))
            vao.render()
        bg = self._bg
        self._set_env(bg, spec)
        bg["u_inv_viewproj"].write(np.linalg.inv(viewproj).T.astype("f4").tobytes())
        ctx.depth_func = "<="
        self._quads[bg].render(self._mgl.TRIANGLE_STRIP)
        ctx.depth_func = "<"
