"""GLSL sources of the moderngl backend (task2sim.render.gl), and the constants they build in.

Programs: VERTEX + OBJECT_FRAGMENT shade the object (linear HDR, with 1/depth for the layered blur);
QUAD_VERTEX draws a full-tile quad for BACKGROUND_FRAGMENT (the environment seen through the
inverse view-projection), COPY_FRAGMENT (weighted accumulation of thin-lens passes),
LAYERED_FRAGMENT (the layered thin-lens blur), DOWNSAMPLE_FRAGMENT (the object layer's samples
averaged to pixels) and TONEMAP_FRAGMENT (exposure, filmic curve, gamma). ENV_LOOKUP is the
equirectangular environment lookup they share.
"""

from __future__ import annotations

MAX_LENS_SAMPLES = 32        # layered blur: most lens samples (the schema's largest blur_passes)
GATHER_RADIUS = 4            # object blur: circles up to this many pixels are gathered at full
                             # resolution, larger ones from 2x2, 4x4 ... blocks (mip levels)
LAYER_SCALE = 2              # the layered blur's object layer: 2 x 2 samples a pixel, averaged

VERTEX = """
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

ENV_LOOKUP = """
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

OBJECT_FRAGMENT = """
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
""" + ENV_LOOKUP + """
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

QUAD_VERTEX = """
#version 330
in vec2 in_pos;
out vec2 v_ndc;
void main() { v_ndc = in_pos; gl_Position = vec4(in_pos, 0.9999, 1.0); }
"""

BACKGROUND_FRAGMENT = """
#version 330
in vec2 v_ndc;
uniform mat4 u_inv_viewproj;
out vec4 f_color;
""" + ENV_LOOKUP + """
void main() {
    vec4 near = u_inv_viewproj * vec4(v_ndc, -1.0, 1.0);
    vec4 far = u_inv_viewproj * vec4(v_ndc, 1.0, 1.0);
    vec3 dir = far.xyz / far.w - near.xyz / near.w;
    f_color = vec4(env(dir, 0.0), 0.0);      // alpha 0: background
}
"""

COPY_FRAGMENT = """
#version 330
in vec2 v_ndc;
uniform sampler2D u_src;
uniform float u_weight;
out vec4 f_color;
void main() { f_color = texelFetch(u_src, ivec2(gl_FragCoord.xy), 0) * u_weight; }
"""

LAYERED_FRAGMENT = """
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
""" + ENV_LOOKUP + """
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

DOWNSAMPLE_FRAGMENT = """
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

TONEMAP_FRAGMENT = """
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
