"""The default renderer: moderngl on headless EGL (Mesa llvmpipe), many image tiles per framebuffer.

Usage::

    backend = GLBackend(materials=list_materials(), environments=list_environments(cache))
    images = backend.render(specs, meshes, image_size=64)          # uint8 (N, S, S, 3)
    images, alpha = backend.render(specs, meshes, 64, return_alpha=True)

What each SceneSpec field does here (the meanings of task2sim.render.spec, as in every backend):
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
            their circles of confusion, nearer surfaces over farther ones
            (gl_shaders.LAYERED_FRAGMENT).
            What it leaves out: parallax and view-dependent shading across the lens.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from . import gl_shaders as shaders
from .backends import srgb_to_linear
from .camera import (CAMERA_DISTANCE, CAMERA_FOV_DEG, FAR, NEAR, camera_matrices, environment_rotation,
                     lens_offsets, light_direction, pixel_offsets, rotation_matrix)
from .gl_shaders import GATHER_RADIUS, LAYER_SCALE, MAX_LENS_SAMPLES
from .spec import SceneSpec

SUN_IRRADIANCE = 2.0         # default directional light (relative intensity 1)
ENV_MEAN_LUMINANCE = 0.5     # every environment map is scaled to this mean luminance
EXPOSURE = 1.0
ATLAS_SIDE = 1024            # framebuffer side: 256 tiles of 64 px per batch
MESH_CACHE = 64              # meshes whose vertex buffers stay on the "GPU"
BLUR_METHODS = ("layered", "thinlens")
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
        self._obj = self.ctx.program(vertex_shader=shaders.VERTEX, fragment_shader=shaders.OBJECT_FRAGMENT)
        self._bg, self._copy, self._tone, self._layered, self._down = (
            self.ctx.program(vertex_shader=shaders.QUAD_VERTEX, fragment_shader=fragment)
            for fragment in (shaders.BACKGROUND_FRAGMENT, shaders.COPY_FRAGMENT, shaders.TONEMAP_FRAGMENT,
                             shaders.LAYERED_FRAGMENT, shaders.DOWNSAMPLE_FRAGMENT))
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
