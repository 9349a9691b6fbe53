"""The default renderer: moderngl on headless EGL (Mesa llvmpipe), many image tiles per framebuffer.

Usage::

    backend = GLBackend(materials=list_materials(), environments=list_environments(cache))
    images = backend.render(specs, meshes, image_size=64)          # uint8 (N, S, S, 3)
    images, alpha = backend.render(specs, meshes, 64, return_alpha=True)

What each SceneSpec field does here (the same meanings as every other backend, ALGORITHMS §1):
  rotation      model matrix Rz(roll) Ry(yaw) Rx(pitch), world axes, degrees
  distance      the object moves along the camera ray to distance_factor * CAMERA_DISTANCE
  light         one directional light: colour * intensity * SUN_IRRADIANCE, from (yaw, pitch)
  focus blur    thin lens of radius ``aperture`` (object radii) focused at the focus distance, in
                linear HDR; ``blur_method`` picks how (below)
  background    equirectangular HDR environment ``background_id``, seen along (yaw, pitch); it also
                lights the object (diffuse from a blurred mip level, reflections by roughness)
  materials     per part: material list entry, or the part's own material for -1

Shading is linear HDR (Blinn-Phong lobe + environment reflections + hemispherical diffuse), then
exposure, a filmic (ACES fit) tone curve and sRGB gamma. Images with and without blur go in
separate batches.

Focus blur, two methods (BENCHMARKS.md "Renderer" measures both against a 256-sample thin lens):
  thinlens  ``blur_passes`` renders of the whole scene, each from a jittered eye position on the
            lens disc with an off-axis frustum that keeps the focus plane fixed and a sub-pixel
            window shift, averaged: the thin lens integrated over lens and pixel area, up to sampling.
  layered   (default) one render of the object alone at 2 x 2 samples a pixel with its depth, then
            one pass per tile: the environment, at infinity, averaged over ``blur_passes`` lens
            samples (a lens offset only turns the view rays), and the object's pixels spread over
            their circles of confusion, nearer surfaces over farther ones (_LAYERED_FRAGMENT).
            What it leaves out: parallax and view-dependent shading across the lens.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from .backends import srgb_to_linear
from .camera import (CAMERA_DISTANCE, CAMERA_FOV_DEG, FAR, NEAR, camera_matrices, environment_rotation,
                     lens_offsets, light_direction, pixel_offsets, rotation_matrix)
from .spec import SceneSpec

SUN_IRRADIANCE = 2.0         # default directional light (relative intensity 1)
ENV_MEAN_LUMINANCE = 0.5     # every environment map is scaled to this mean luminance
EXPOSURE = 1.0
ATLAS_SIDE = 1024            # framebuffer side: 256 tiles of 64 px per batch
MESH_CACHE = 64              # meshes whose vertex buffers stay on the "GPU"
BLUR_METHODS = ("layered", "thinlens")
MAX_LENS_SAMPLES = 32        # layered blur: most lens samples (the schema's largest blur_passes)
GATHER_RADIUS = 4            # object blur: circles up to this many pixels are gathered at full
                             # resolution, larger ones from 2x2, 4x4 ... blocks (mip levels)
LAYER_SCALE = 2              # the layered blur's object layer: 2 x 2 samples a pixel, averaged
NORM_STEPS = 32              # samples per pixel of circle radius in the kernel-sum lookup table


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


# --- per-value caches of the shared geometry (task2sim.render.camera) as GL uniforms ------------

@lru_cache(maxsize=8192)
def _rotation(angles: tuple[float, float, float]) -> np.ndarray:
    """rotation_matrix(*angles), cached (a batch asks for each spec's rotation more than once)."""
    r = rotation_matrix(*angles)
    r.setflags(write=False)
    return r


@lru_cache(maxsize=8192)
def _model_bytes(rotation: tuple[float, float, float]) -> bytes:
    """The model matrix of a rotation as column-major float32 bytes, cached per value."""
    m = np.eye(4)
    m[:3, :3] = _rotation(rotation)
    return m.T.astype("f4").tobytes()


@lru_cache(maxsize=8192)
def _environment_bytes(yaw: float, pitch: float) -> bytes:
    """environment_rotation(yaw, pitch) as column-major float32 bytes, cached per value."""
    return environment_rotation(yaw, pitch).T.astype("f4").tobytes()


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
vec2 env_uv(vec3 dir_world) {
    vec3 d = normalize(u_env_rot * dir_world);
    // row 0 looks up (+Y); azimuth 0 at -Z (straight ahead of the camera), increasing to +X
    return vec2(atan(d.x, -d.z) / (2.0 * PI) + 0.5, acos(clamp(d.y, -1.0, 1.0)) / PI);
}
vec3 env(vec3 dir_world, float lod) {
    return textureLod(u_env, env_uv(dir_world), lod).rgb * u_env_scale;
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
uniform float u_near; uniform float u_far;
layout(location = 0) out vec4 f_color;
layout(location = 1) out vec4 f_inv_z;     // 1 / eye depth: the layered blur's circle of confusion
""" + _ENV_LOOKUP + """
void main() {
    f_inv_z = vec4((u_far + u_near - (2.0 * gl_FragCoord.z - 1.0) * (u_far - u_near))
                   / (2.0 * u_far * u_near), 0.0, 0.0, 1.0);
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
void main() { f_color = texelFetch(u_src, ivec2(gl_FragCoord.xy), 0) * u_weight; }
"""

_LAYERED_FRAGMENT = """
#version 330
// Layered thin-lens blur, one pass per tile, from a pinhole render of the object alone (2 x 2
// samples a pixel, averaged: coverage in alpha).
// Background: the environment is at infinity, where a lens offset e only turns every view ray by
// -e / focus, so averaging the environment over the lens samples is the thin lens itself (the
// turns are small: they map to the environment map through the mapping's local derivative).
// Object: each covered pixel q spreads its colour uniformly over its circle of confusion (radius
// from its depth), as the thin lens does; this pixel gathers the circles that reach it ("scatter
// as gather"), from mip-level blocks when circles are large. Circles from surfaces nearer than
// this pixel's own go over it; the rest, this pixel's surface included, are averaged under them,
// and the background shows through what neither covers. Beyond the tile's edge the object is
// taken to continue as its edge pixels.
in vec2 v_ndc;
uniform sampler2D u_obj;     // premultiplied linear colour, alpha = coverage (mip-mapped)
uniform sampler2D u_inv_z;   // 1 / eye depth, premultiplied by coverage (mip-mapped)
uniform sampler2D u_inv_norm; // 1 / sum of the full-resolution disc kernel, by radius
uniform float u_norm_steps;  // table texels per pixel of radius; texel 0 is radius 0.5
uniform ivec4 u_tile;        // tile origin (x, y) and size (w, h) in atlas pixels
uniform ivec4 u_reach_box;   // atlas pixels that some circle of the object reaches (x0, y0, x1, y1)
uniform float u_coc_scale;   // aperture * pixels per unit of tan: radius = scale * |1/z - 1/focus|
uniform float u_inv_focus;
uniform float u_radius;      // largest circle of confusion of the object in this tile, pixels
uniform int u_level;         // gather blocks of 2^level pixels
uniform float u_tan_half;    // tan(field of view / 2)
uniform float u_bg_shift;    // aperture / focus: lens sample -> view-ray turn (tan units)
uniform vec2 u_lens[""" + str(MAX_LENS_SAMPLES) + """];  // lens_offsets(u_lens_n), set once
uniform int u_lens_n;
out vec4 f_color;
const int GATHER_RADIUS = """ + str(GATHER_RADIUS) + """;
""" + _ENV_LOOKUP + """
const float NEARER = 1.03;   // 1/z ratio above which a surface counts as in front of another
vec4 front = vec4(0.0);      // circles of nearer surfaces: premultiplied colour, coverage
vec4 behind = vec4(0.0);     // the rest: premultiplied colour, kernel weight
float empty = 0.0;           // weight this pixel's own circle puts on uncovered pixels (unnormalised)
float inv_norm(float c) {    // 1 / sum of the full-resolution kernel of radius c
    return texelFetch(u_inv_norm, ivec2(min(int((c - 0.5) * u_norm_steps + 0.5),
                                            textureSize(u_inv_norm, 0).x - 1), 0), 0).r;
}
// Gather the circles of radius in (c_lo, c_hi] that reach this pixel, from 2^level blocks.
void gather(int level, float window, float c_lo, float c_hi, float own_inv_z, float own_c) {
    vec2 centre = gl_FragCoord.xy;
    float st = exp2(float(level));
    ivec2 lo = ivec2(floor((centre - window) / st)), hi = ivec2(floor((centre + window) / st));
    ivec2 tile_lo = u_tile.xy >> level, tile_hi = ((u_tile.xy + u_tile.zw) >> level) - 1;
    for (int j = lo.y; j <= hi.y; ++j) {
        for (int i = lo.x; i <= hi.x; ++i) {
            ivec2 ij = clamp(ivec2(i, j), tile_lo, tile_hi);
            float d = distance((vec2(i, j) + 0.5) * st, centre);
            vec4 o = texelFetch(u_obj, ij, level);
            if (level == 0 && own_c > 0.0 && o.a < 1.0)
                empty += (1.0 - o.a) * clamp(own_c + 0.5 - d, 0.0, 1.0);
            if (o.a <= 0.0) continue;
            float inv_z = texelFetch(u_inv_z, ij, level).r / o.a;
            float c = u_coc_scale * abs(inv_z - u_inv_focus);
            if (c <= c_lo || c > c_hi) continue;
            c = max(c, 0.5 * st);
            float w = clamp((c + 0.5 * st - d) / st, 0.0, 1.0);
            if (w <= 0.0) continue;
            // kernel sum: exact table at full resolution, the disc's area for blocks
            w *= level == 0 ? inv_norm(c) : st * st / (PI * (c * c + st * st / 12.0));
            if (inv_z > own_inv_z * NEARER) front += w * o; else behind += w * o;
        }
    }
}
void main() {
    ivec2 pix = ivec2(gl_FragCoord.xy);
    if (all(greaterThanEqual(pix, u_reach_box.xy)) && all(lessThanEqual(pix, u_reach_box.zw))) {
        vec4 own = texelFetch(u_obj, pix, 0);
        // 1/z of this pixel's surface; 0 where no object: infinitely far
        float own_inv_z = own.a > 0.0 ? texelFetch(u_inv_z, pix, 0).r / own.a : 0.0;
        float own_c = own_inv_z > 0.0 ? max(u_coc_scale * abs(own_inv_z - u_inv_focus), 0.5) : 0.0;
        // circles up to GATHER_RADIUS at full resolution, larger ones from blocks
        float full = u_level == 0 ? 1e9 : float(GATHER_RADIUS);
        gather(0, min(u_radius, full) + 0.5, -1.0, full, own_inv_z, own_c);
        if (u_level > 0) gather(u_level, u_radius + exp2(float(u_level - 1)), full, 1e9, own_inv_z, own_c);
        // Nearer surfaces cover this pixel first (their circles' summed coverage). The rest fill
        // what they leave: the average colour of the circles reaching here, covering the share of
        // this pixel's own circle that falls on covered pixels (1 inside the object, about half
        // at its silhouette, 0 off it).
        front /= max(front.a, 1.0);
        if (behind.a > 0.0)
            behind = vec4(behind.rgb / behind.a, 1.0) * (behind.a / (behind.a + empty * inv_norm(own_c)));
    }
    vec4 obj = front + (1.0 - front.a) * behind;
    vec3 background = vec3(0.0);
    if (obj.a < 0.999) {
        // The lens turns rays by at most a few degrees: map the turn to environment-map
        // coordinates through the local derivative of the mapping, then one fetch a lens sample.
        vec3 ray = vec3(v_ndc * u_tan_half, -1.0);
        vec2 uv = env_uv(ray);
        const float EPS = 1e-3;
        vec2 du = env_uv(ray + vec3(EPS, 0.0, 0.0)) - uv, dv = env_uv(ray + vec3(0.0, EPS, 0.0)) - uv;
        du.x -= round(du.x);     // across the map's seam
        dv.x -= round(dv.x);
        mat2 jacobian = mat2(du, dv) * (-u_bg_shift / EPS);
        for (int k = 0; k < u_lens_n; ++k)
            background += textureLod(u_env, uv + jacobian * u_lens[k], 0.0).rgb;
        background *= u_env_scale / float(u_lens_n);
    }
    f_color = vec4(obj.rgb + (1.0 - obj.a) * background, obj.a);
}
"""

_DOWNSAMPLE_FRAGMENT = """
#version 330
// The object layer's 2 x 2 samples of a pixel, averaged: one bilinear fetch at their shared corner.
in vec2 v_ndc;
uniform sampler2D u_src_obj;
uniform sampler2D u_src_inv_z;
layout(location = 0) out vec4 f_obj;
layout(location = 1) out vec4 f_inv_z;
void main() {
    vec2 uv = gl_FragCoord.xy * """ + str(LAYER_SCALE) + """.0 / vec2(textureSize(u_src_obj, 0));
    f_obj = texture(u_src_obj, uv);
    f_inv_z = vec4(texture(u_src_inv_z, uv).r, 0.0, 0.0, 1.0);
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
    vec4 hdr = texelFetch(u_src, ivec2(gl_FragCoord.xy), 0);
    vec3 ldr = pow(aces(hdr.rgb * u_exposure), vec3(1.0 / 2.2));
    f_color = vec4(ldr, hdr.a);
}
"""


class GLBackend:
    """moderngl renderer of SceneSpecs. Not thread-safe; one per process."""

    name = "moderngl"

    def __init__(self, materials: Sequence[Any], environments: Sequence[Any], blur_passes: int = 16,
                 blur_method: str = "layered", atlas_side: int = ATLAS_SIDE) -> None:
        import moderngl

        self._mgl = moderngl
        self.ctx = _create_context()
        self.materials = list(materials)
        self.blur_passes = int(blur_passes)
        if blur_method not in BLUR_METHODS:
            raise ValueError(f"blur_method must be one of {BLUR_METHODS}, got {blur_method!r}")
        if self.blur_passes < 1 or (blur_method == "layered" and self.blur_passes > MAX_LENS_SAMPLES):
            raise ValueError(f"blur_passes must be 1..{MAX_LENS_SAMPLES}, got {blur_passes}")
        self.blur_method = blur_method
        self.atlas_side = int(atlas_side)
        self._obj = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_OBJECT_FRAGMENT)
        self._bg = self.ctx.program(vertex_shader=_QUAD_VERTEX, fragment_shader=_BACKGROUND_FRAGMENT)
        self._copy = self.ctx.program(vertex_shader=_QUAD_VERTEX, fragment_shader=_COPY_FRAGMENT)
        self._tone = self.ctx.program(vertex_shader=_QUAD_VERTEX, fragment_shader=_TONEMAP_FRAGMENT)
        self._layered = self.ctx.program(vertex_shader=_QUAD_VERTEX, fragment_shader=_LAYERED_FRAGMENT)
        self._down = self.ctx.program(vertex_shader=_QUAD_VERTEX, fragment_shader=_DOWNSAMPLE_FRAGMENT)
        quad = self.ctx.buffer(np.array([-1, -1, 1, -1, -1, 1, 1, 1], dtype="f4").tobytes())
        self._quads = {p: self.ctx.vertex_array(p, [(quad, "2f", "in_pos")])
                       for p in (self._bg, self._copy, self._tone, self._layered, self._down)}
        self._inv_norm = self._inverse_kernel_sums()
        self.environments = list(environments)
        self._envs = [self._upload_environment(e.image) for e in environments]
        if not self._envs:
            raise ValueError("GLBackend needs at least one environment map")
        self._materials_gl: dict[Any, tuple] = {}
        # constant uniforms: texture units (environment 1, material texture 0) and depth range
        for prog in (self._obj, self._bg, self._layered):
            prog["u_env"].value = 1
        self._obj["u_tex"].value = 0
        self._obj["u_near"].value, self._obj["u_far"].value = NEAR, FAR
        if self.blur_method == "layered":   # the background's lens samples
            lenses = np.zeros((MAX_LENS_SAMPLES, 2), dtype="f4")
            lenses[:self.blur_passes] = lens_offsets(self.blur_passes)
            self._layered["u_lens"].write(lenses.tobytes())
            self._layered["u_lens_n"].value = self.blur_passes
        self._meshes: OrderedDict[int, list[tuple[Any, Any]]] = OrderedDict()
        self._targets: dict[int, tuple[Any, ...]] = {}

    @staticmethod
    def available() -> tuple[bool, str]:
        return available()

    @classmethod
    def from_config(cls, cfg, materials: Sequence[Any], environments: Sequence[Any]) -> "GLBackend":
        """From the render config (``RenderConfig``): its blur settings."""
        return cls(materials, environments, blur_passes=cfg.blur_passes, blur_method=cfg.blur_method)

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
        rgba = np.concatenate([img, np.ones_like(img[..., :1])], axis=-1)
        tex = self.ctx.texture((img.shape[1], img.shape[0]), 4, rgba.tobytes(), dtype="f4")
        tex.repeat_x, tex.repeat_y = True, False
        tex.build_mipmaps()
        tex.filter = (self._mgl.LINEAR_MIPMAP_LINEAR, self._mgl.LINEAR)
        lod_max = max(0.0, math.log2(max(img.shape[:2])) - 2.0)  # a 4 x 8 level: the irradiance
        return tex, ENV_MEAN_LUMINANCE / max(lum, 1e-6), lod_max

    def _inverse_kernel_sums(self):
        """1 / the full-resolution disc kernel's sum, by radius c (0.5 .. GATHER_RADIUS + 1).

        The layered blur weights a pixel at distance d from a circle of radius c by
        clamp(c + 0.5 - d, 0, 1) (one pixel of soft edge); dividing by this kernel's sum makes
        every circle spread exactly the light of its pixel, as the thin lens does."""
        radii = 0.5 + np.arange((GATHER_RADIUS + 1) * NORM_STEPS + 1) / NORM_STEPS
        k = np.arange(-GATHER_RADIUS - 2, GATHER_RADIUS + 3)
        d = np.hypot(*np.meshgrid(k, k)).ravel()
        inv = (1.0 / np.clip(radii[:, None] + 0.5 - d[None, :], 0.0, 1.0).sum(axis=1)).astype("f4")
        tex = self.ctx.texture((len(inv), 1), 1, inv.tobytes(), dtype="f4")
        tex.filter = (self._mgl.NEAREST, self._mgl.NEAREST)
        return tex

    def _material_uniforms(self, mat):
        """(linear base colour, specular, roughness, metallic, texture or None, texture scale),
        cached per material object (the cache keeps it alive: no reused ids)."""
        values = self._materials_gl.get(mat)
        if values is None:
            values = (tuple(float(v) for v in srgb_to_linear(mat.base_colour)), float(mat.specular),
                      float(mat.roughness), float(mat.metallic),
                      None if mat.texture is None else self._texture(mat.texture),
                      float(getattr(mat, "texture_scale", 1.0)))
            self._materials_gl[mat] = values
        return values

    def _texture(self, pixels: np.ndarray):
        px = np.ascontiguousarray(pixels[..., :3], dtype="u1")
        tex = self.ctx.texture((px.shape[1], px.shape[0]), 3, px.tobytes())
        tex.build_mipmaps()
        tex.filter = (self._mgl.LINEAR_MIPMAP_LINEAR, self._mgl.LINEAR)
        return tex

    def _mesh_arrays(self, mesh) -> list[Any]:
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
        """Framebuffers of one tile size: the HDR pass; the layered blur's object layer (colour and
        1/z) at LAYER_SCALE and averaged to pixels; HDR accumulation; 8-bit output."""
        if size not in self._targets:
            ctx = self.ctx
            side = max(size, (self.atlas_side // size) * size)
            big = side * LAYER_SCALE
            samples = [ctx.texture((big, big), 4, dtype="f2"), ctx.texture((big, big), 1, dtype="f4")]
            pixels = [ctx.texture((side, side), 4, dtype="f2"), ctx.texture((side, side), 1, dtype="f4")]
            for tex in samples:
                tex.filter = (self._mgl.LINEAR, self._mgl.LINEAR)
            hdr = ctx.texture((side, side), 4, dtype="f2")
            acc = ctx.texture((side, side), 4, dtype="f4")
            self._targets[size] = {
                "side": side,
                "hdr": (ctx.framebuffer([hdr], ctx.depth_renderbuffer((side, side))), hdr),
                "layer_samples": (ctx.framebuffer(samples, ctx.depth_renderbuffer((big, big))), samples),
                "layer": (ctx.framebuffer(pixels), pixels),
                "acc": (ctx.framebuffer([acc]), acc),
                "out": ctx.framebuffer([ctx.renderbuffer((side, side), 4)]),
            }
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
            side = self._target(s)["side"]
            per_batch = (side // s) ** 2
            blurs = [sp.aperture > 0 and self.blur_passes > 1 for sp in specs]
            for blur in (False, True):
                group = [i for i, b in enumerate(blurs) if b == blur]
                for start in range(0, len(group), per_batch):
                    idx = group[start:start + per_batch]
                    rgba = self._render_batch([specs[i] for i in idx], [meshes[i] for i in idx], s, blur)
                    images[idx] = rgba[..., :3]
                    alpha[idx] = rgba[..., 3].astype(np.float32) / 255.0
        return (images, alpha) if return_alpha else images

    def _render_batch(self, specs, meshes, s: int, blur: bool) -> np.ndarray:
        target = self._target(s)
        side = target["side"]
        (fbo_hdr, hdr), (fbo_acc, acc) = target["hdr"], target["acc"]
        cols = side // s
        rows = math.ceil(len(specs) / cols)
        used = (0, 0, side, rows * s)    # whole-atlas passes cover the rows in use only
        ctx = self.ctx
        if not blur:
            self._draw_tiles(fbo_hdr, specs, meshes, s, cols)
        elif self.blur_method == "layered":
            self._layered_blur(specs, meshes, s, cols, target, used)
        else:
            fbo_acc.use()
            ctx.clear(0.0, 0.0, 0.0, 0.0, viewport=used)
            # each pass also moves the window within a pixel: the passes average over the lens
            # and over the pixel's area (edges anti-aliased)
            for lens, pixel in zip(lens_offsets(self.blur_passes), pixel_offsets(self.blur_passes)):
                self._draw_tiles(fbo_hdr, specs, meshes, s, cols, tuple(lens), tuple(pixel))
                fbo_acc.use()
                ctx.viewport = used
                ctx.disable(self._mgl.DEPTH_TEST)
                ctx.enable(self._mgl.BLEND)
                ctx.blend_func = (self._mgl.ONE, self._mgl.ONE)
                hdr.use(0)
                self._copy["u_src"].value = 0
                self._copy["u_weight"].value = 1.0 / self.blur_passes
                self._quads[self._copy].render(self._mgl.TRIANGLE_STRIP)
                ctx.disable(self._mgl.BLEND)
        target["out"].use()
        ctx.viewport = used
        ctx.disable(self._mgl.DEPTH_TEST)
        (acc if blur else hdr).use(0)
        self._tone["u_src"].value = 0
        self._tone["u_exposure"].value = EXPOSURE
        self._quads[self._tone].render(self._mgl.TRIANGLE_STRIP)
        raw = target["out"].read(viewport=used, components=4)
        atlas = np.frombuffer(raw, dtype=np.uint8).reshape(rows * s, side, 4)
        out = np.empty((len(specs), s, s, 4), dtype=np.uint8)
        for t in range(len(specs)):
            r, c = divmod(t, cols)
            out[t] = atlas[r * s:(r + 1) * s, c * s:(c + 1) * s][::-1]  # GL rows go bottom-up
        return out

    def _draw_tiles(self, fbo, specs, meshes, s: int, cols: int, lens=(0.0, 0.0), pixel=(0.0, 0.0),
                    background: bool = True, scale: int = 1) -> None:
        """Clear ``fbo`` and draw every scene into its tile (``scale`` x ``s`` pixels), seen from
        one lens sample."""
        fbo.use()
        t_s = s * scale
        self.ctx.clear(0.0, 0.0, 0.0, 0.0, depth=1.0, viewport=(0, 0, cols * t_s, math.ceil(len(specs) / cols) * t_s))
        for t, (spec, mesh) in enumerate(zip(specs, meshes)):
            self.ctx.viewport = ((t % cols) * t_s, (t // cols) * t_s, t_s, t_s)
            self._draw_scene(spec, mesh, camera_matrices(spec, lens, pixel, s), background)

    def _layered_blur(self, specs, meshes, s: int, cols: int, target, used) -> None:
        """Thin-lens blur of the object layer + the lens-averaged background, tile by tile."""
        ctx, g = self.ctx, self._layered
        fbo_samples, samples = target["layer_samples"]
        self._draw_tiles(fbo_samples, specs, meshes, s, cols, background=False, scale=LAYER_SCALE)
        fbo_layer, (layer, inv_z) = target["layer"]
        fbo_layer.use()
        ctx.viewport = used
        ctx.disable(self._mgl.DEPTH_TEST)
        samples[0].use(0)
        samples[1].use(1)
        self._down["u_src_obj"].value, self._down["u_src_inv_z"].value = 0, 1
        self._quads[self._down].render(self._mgl.TRIANGLE_STRIP)
        tan_half = math.tan(math.radians(CAMERA_FOV_DEG) / 2)
        px_per_tan = (s / 2) / tan_half
        plans = [self._blur_plan(spec, mesh, s) for spec, mesh in zip(specs, meshes)]
        max_level = max(plan[3] for plan in plans)
        if max_level > 0:
            layer.build_mipmaps(0, max_level)
            inv_z.build_mipmaps(0, max_level)
        target["acc"][0].use()
        layer.use(0)
        inv_z.use(2)
        self._inv_norm.use(3)
        g["u_obj"].value, g["u_inv_z"].value, g["u_inv_norm"].value = 0, 2, 3
        g["u_norm_steps"].value = float(NORM_STEPS)
        g["u_tan_half"].value = tan_half
        for t, (spec, (focus, radius, box, level)) in enumerate(zip(specs, plans)):
            x, y = (t % cols) * s, (t // cols) * s
            ctx.viewport = (x, y, s, s)
            self._set_env(g, spec)
            g["u_tile"].value = (x, y, s, s)
            g["u_reach_box"].value = (x + box[0], y + box[1], x + box[2], y + box[3])
            g["u_coc_scale"].value = spec.aperture * px_per_tan
            g["u_inv_focus"].value = 1.0 / focus
            g["u_radius"].value = radius
            g["u_level"].value = level
            g["u_bg_shift"].value = spec.aperture / focus
            self._quads[g].render(self._mgl.TRIANGLE_STRIP)

    @staticmethod
    def _blur_plan(spec: SceneSpec, mesh, s: int):
        """(focus distance, largest circle of confusion of the object in pixels, the tile's pixels
        its circles reach (x0, y0, x1, y1), gather mip level), from the rotated hull vertices."""
        obj_dist = CAMERA_DISTANCE * spec.distance_factor
        focus = max(spec.focus_distance_factor * obj_dist, NEAR * 2)
        px_per_tan = (s / 2) / math.tan(math.radians(CAMERA_FOV_DEG) / 2)
        v = mesh.hull_points @ _rotation(spec.rotation).T
        z = obj_dist - v[:, 2]
        inv = 1.0 / np.clip([z.min(), z.max()], NEAR, None)
        radius = float(spec.aperture * px_per_tan * np.abs(inv - 1.0 / focus).max())
        level = max(0, math.ceil(math.log2(max(radius, 1e-9) / GATHER_RADIUS)))
        if z.min() <= NEAR:
            return focus, radius, (0, 0, s - 1, s - 1), level
        xy = s / 2 + v[:, :2] / z[:, None] * px_per_tan      # GL pixel coordinates, y up
        pad = radius + 2 ** level + 1
        lo = np.clip(np.floor(xy.min(axis=0) - pad), 0, s - 1).astype(int)
        hi = np.clip(np.ceil(xy.max(axis=0) + pad), 0, s - 1).astype(int)
        return focus, radius, (int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])), level

    def _set_env(self, prog, spec: SceneSpec):
        tex, scale, lod_max = self._envs[spec.background_id % len(self._envs)]
        tex.use(1)                       # every program samples its environment from unit 1
        prog["u_env_rot"].write(_environment_bytes(spec.background_yaw, spec.background_pitch))
        prog["u_env_scale"].value = scale
        return lod_max

    def _draw_scene(self, spec: SceneSpec, mesh, camera, background: bool = True) -> None:
        ctx = self.ctx
        viewproj, eye = camera
        # Object first (depth test), then the background only where nothing was drawn.
        ctx.enable(self._mgl.DEPTH_TEST)
        prog = self._obj
        lod_max = self._set_env(prog, spec)
        prog["u_env_lod_max"].value = lod_max
        prog["u_model"].write(_model_bytes(spec.rotation))
        prog["u_viewproj"].write(viewproj.T.astype("f4").tobytes())
        prog["u_eye"].value = tuple(float(v) for v in eye)
        prog["u_light_dir"].value = tuple(float(v) for v in light_direction(spec.light_yaw, spec.light_pitch))
        prog["u_light_rgb"].value = tuple(SUN_IRRADIANCE * spec.light_intensity * c for c in spec.light_colour)
        for k, (part, vao) in enumerate(zip(mesh.parts, self._mesh_arrays(mesh))):
            mat_id = spec.materials[k] if k < len(spec.materials) else -1
            mat = part.material if mat_id < 0 else self.materials[mat_id]
            base, specular, roughness, metallic, texture, tex_scale = self._material_uniforms(mat)
            prog["u_base"].value = base
            prog["u_specular"].value = specular
            prog["u_roughness"].value = roughness
            prog["u_metallic"].value = metallic
            prog["u_textured"].value = texture is not None
            if texture is not None:
                texture.use(0)
                prog["u_tex_scale"].value = tex_scale
            vao.render()
        if not background:
            return
        bg = self._bg
        self._set_env(bg, spec)
        bg["u_inv_viewproj"].write(np.linalg.inv(viewproj).T.astype("f4").tobytes())
        ctx.depth_func = "<="
        self._quads[bg].render(self._mgl.TRIANGLE_STRIP)
        ctx.depth_func = "<"
