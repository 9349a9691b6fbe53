"""Tests of the renderer's assets: object library, materials, .pat reader, environments."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from task2sim.render.assets import (AssetError, PackageUnavailable, build_library, class_catalogue,
                                    list_environments, list_materials)
from task2sim.render.assets import procedural
from task2sim.render.assets.library import (MIN_PART_FACES, PROCEDURAL_POOL, VERSION, crease_split, finalise,
                                            part_budgets, split_pool)
from task2sim.render.assets.types import Material
from task2sim.gimp_pat import PatError, read_pat
from task2sim.render.spec import MAX_PARTS

REPO = Path(__file__).resolve().parents[1]
# Tests that need the Debian downloads (sweethome3d-furniture 120 MB, blender-data 31 MB) use the
# repository's git-ignored asset cache, so a test run does not download them again; everything
# else writes to tmp_path.
SHARED_CACHE = REPO / ".cache" / "assets"


def _sweethome_available() -> str | None:
    """None when Sweet Home 3D furniture can be had here, else the reason it cannot."""
    if shutil.which("apt-get") is None and not (SHARED_CACHE / "debs" / "sweethome3d-furniture" / ".complete").exists():
        return "apt-get missing and no cached sweethome3d-furniture"
    try:
        from task2sim.render.assets.sweethome import sweethome_classes
        sweethome_classes(SHARED_CACHE)
    except PackageUnavailable as e:
        return str(e)
    return None


@pytest.fixture(scope="module")
def sweethome_reason():
    return _sweethome_available()


def _mesh_digest(mesh) -> tuple:
    return tuple((p.vertices.tobytes(), p.faces.tobytes(), p.material.base_colour) for p in mesh.parts)


# ---- procedural library (no downloads) ----------------------------------------------------------


@pytest.fixture(scope="module")
def proc_lib(tmp_path_factory):
    cache = tmp_path_factory.mktemp("assets")
    return cache, build_library(cache, 12, 3, 0.2, use_sweethome=False, progress=False)


def test_procedural_catalogue_is_large_enough():
    cat = class_catalogue(Path("/nonexistent"), use_sweethome=False)
    assert len(cat) >= 90  # 57 shape families + 36 glyphs
    assert all(len(pool) >= 3 for _, pool in cat)
    names = [c for c, _ in cat]
    assert len(set(names)) == len(names)


def test_every_procedural_class_generates_valid_pieces():
    for fam, classes in procedural.FAMILIES.items():
        for cls in classes:
            pieces = procedural.generate(fam, cls, 0)
            assert pieces, cls
            for m, mat in pieces:
                assert len(m.faces) > 0 and np.isfinite(m.vertices).all(), cls
                assert 0 <= mat.roughness <= 1 and 0 <= mat.specular <= 1, cls


def test_library_normalised_and_well_formed(proc_lib):
    _, lib = proc_lib
    assert len(lib.classes) == 12
    for c in range(len(lib.classes)):
        meshes = lib.meshes(c)
        assert len(meshes) == 3
        for m in meshes:
            assert 1 <= len(m.parts) <= MAX_PARTS
            allv = np.concatenate([p.vertices for p in m.parts])
            centre = (allv.min(0) + allv.max(0)) / 2
            assert np.abs(centre).max() < 1e-4, m.name
            assert abs(np.linalg.norm(allv, axis=1).max() - 1.0) < 1e-4, m.name
            for p in m.parts:
                assert p.vertices.dtype == np.float32 and p.vertices.shape[1] == 3
                assert p.normals.shape == p.vertices.shape
                assert np.allclose(np.linalg.norm(p.normals, axis=1), 1, atol=1e-3)
                assert p.uvs.shape == (len(p.vertices), 2) and np.isfinite(p.uvs).all()
                assert p.faces.dtype == np.int32 and p.faces.max() < len(p.vertices)


def test_library_deterministic_and_cached(proc_lib, tmp_path):
    cache, lib = proc_lib
    again = build_library(cache, 12, 3, 0.2, use_sweethome=False, progress=False)  # warm
    fresh = build_library(tmp_path, 12, 3, 0.2, use_sweethome=False, progress=False)  # cold, elsewhere
    for c in range(12):
        a = [_mesh_digest(m) for m in lib.meshes(c)]
        assert a == [_mesh_digest(m) for m in again.meshes(c)]
        assert a == [_mesh_digest(m) for m in fresh.meshes(c)]
    assert lib.manifest == fresh.manifest
    tsv = list((cache / VERSION).glob("manifest_12c_3m_train_*.tsv"))
    assert len(tsv) == 1
    rows = tsv[0].read_text().splitlines()
    assert rows[0].split("\t") == ["id", "class_id", "class", "mesh", "split", "index", "source", "licence",
                                   "attribution", "faces_original", "faces"]
    for r in lib.manifest:  # face counts for converted meshes only; procedural ones fit the budget
        if r["index"] >= 0:
            assert r["faces"] == lib.meshes(r["class_id"])[r["index"]].n_faces <= r["faces_original"]
        else:
            assert r["faces"] == r["faces_original"] == -1
    assert len(rows) == 1 + len(lib.manifest) == 1 + 12 * PROCEDURAL_POOL


def test_class_order_mixes_families_and_puts_glyphs_last():
    cat = class_catalogue(Path("/nonexistent"), use_sweethome=False)
    fams = [pool[0].source for _, pool in cat]
    assert len(set(fams[:6])) == 3  # assembly, lathe, superquadric all among the first six
    n_glyph = len(procedural.GLYPHS) if procedural.glyph_available() else 0
    assert all(f == "procedural:glyph" for f in fams[len(fams) - n_glyph:])
    assert "procedural:glyph" not in fams[:len(fams) - n_glyph]


def test_distinct_meshes_within_a_class(proc_lib):
    _, lib = proc_lib
    for c in range(len(lib.classes)):
        digests = {_mesh_digest(m) for m in lib.meshes(c)}
        assert len(digests) == 3, lib.classes[c]


def test_heldout_disjoint_from_train(tmp_path):
    train = build_library(tmp_path, 6, 50, 0.25, split="train", use_sweethome=False, progress=False)
    held = build_library(tmp_path, 6, 50, 0.25, split="heldout", use_sweethome=False, progress=False)
    for c in range(6):
        tn = {m.name for m in train.meshes(c)}
        hn = {m.name for m in held.meshes(c)}
        assert tn and hn and not tn & hn
        assert len(hn) == round(0.25 * PROCEDURAL_POOL)
    # the manifest agrees: every selected mesh carries its split
    for r in train.manifest:
        if r["index"] >= 0:
            assert r["split"] == "train"
            assert train.mesh(r["id"]).name == r["mesh"]


def test_split_pool_properties():
    tr, ho = split_pool(3, 0.2, "chair", 0)
    assert len(ho) == 1 and len(tr) == 2 and set(tr) | set(ho) == {0, 1, 2}
    assert split_pool(10, 0.2, "x", 1) == split_pool(10, 0.2, "x", 1)
    assert split_pool(10, 0.2, "x", 1) != split_pool(10, 0.2, "x", 2)
    assert split_pool(10, 0.0, "x", 1)[1] == []
    with pytest.raises(AssetError):
        split_pool(10, 1.0, "x", 0)


def test_more_train_meshes_extend_the_selection(tmp_path):
    small = build_library(tmp_path, 2, 2, 0.2, use_sweethome=False, progress=False)
    big = build_library(tmp_path, 2, 5, 0.2, use_sweethome=False, progress=False)
    for c in range(2):
        assert [m.name for m in small.meshes(c)] == [m.name for m in big.meshes(c)][:2]


def test_bad_arguments(tmp_path):
    with pytest.raises(AssetError, match="split"):
        build_library(tmp_path, 2, 2, 0.2, split="test", use_sweethome=False)
    with pytest.raises(AssetError, match="only"):
        build_library(tmp_path, 10_000, 2, 0.2, use_sweethome=False)
    with pytest.raises(AssetError, match="face_budget"):
        build_library(tmp_path, 2, 2, 0.2, use_sweethome=False, face_budget=100)


def test_crease_split_cube_has_flat_faces():
    import trimesh
    cube = trimesh.creation.box()
    vid, nrm, faces = crease_split(np.asarray(cube.vertices), np.asarray(cube.faces))
    assert len(vid) == 24  # 6 faces x 4 corners: every cube edge is a crease
    assert np.allclose(np.abs(nrm).max(1), 1)
    sph = trimesh.creation.icosphere(2)
    vid, nrm, _ = crease_split(np.asarray(sph.vertices), np.asarray(sph.faces))
    assert len(vid) == len(sph.vertices)  # smooth: no splits


# ---- decimation to the face budget ---------------------------------------------------------------


def _ortho_mask(mesh, drop_axis: int, n: int = 128) -> np.ndarray:
    """Silhouette of ``mesh`` in an orthographic view along ``drop_axis``: its triangles filled
    (no antialiasing) by matplotlib's Agg rasteriser on an n x n grid over [-1, 1]^2."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    keep = [a for a in range(3) if a != drop_axis]
    fig = Figure(figsize=(1, 1), dpi=n)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_axis_off()
    tris = np.concatenate([p.vertices[p.faces][:, :, keep] for p in mesh.parts]).astype(float)
    ax.add_collection(PolyCollection(tris, facecolors="k", edgecolors="none", antialiased=False))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., 0] < 128


def _heavy_pieces():
    """A two-part object of ~29k faces: a bumpy ellipsoid body and a textured handle whose uvs
    are an affine function of position (so re-projected uvs can be checked)."""
    import trimesh
    body = trimesh.creation.icosphere(subdivisions=5)                 # 20480 faces
    v = np.asarray(body.vertices) * [0.6, 0.9, 0.5]
    v *= (1 + 0.05 * np.sin(7 * v[:, :1]) * np.cos(5 * v[:, 1:2]))
    body = trimesh.Trimesh(v, body.faces, process=False)
    handle = trimesh.creation.capsule(radius=0.12, height=1.0, count=[64, 64])   # 8192 faces
    handle.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    handle.apply_translation([0.6, 0.2, 0.0])
    hv = np.asarray(handle.vertices)
    handle.visual = trimesh.visual.TextureVisuals(uv=hv[:, :2] * 0.5 + 0.5)
    tex = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    return [(body, Material("body", (0.8, 0.2, 0.2), 0.3, 0.5, 0.0)),
            (handle, Material("handle", (1.0, 1.0, 1.0), 0.3, 0.5, 0.0, tex))]


def test_part_budgets_split_in_proportion_with_floors():
    assert part_budgets([1000, 3000], 2000) == [500, 1500]
    t = part_budgets([20000, 50, 300, 10], 1200)
    assert t[1] == 50 and t[3] == 10 and t[2] == MIN_PART_FACES   # small parts keep all or the floor
    assert sum(t) <= 1200 and t[0] == 1200 - 50 - 10 - MIN_PART_FACES
    assert part_budgets([100, 200], 1000) == [100, 200]            # under budget: unchanged


def test_decimation_meets_budget_keeps_normalisation_silhouette_and_uvs():
    pieces = _heavy_pieces()
    n_in = sum(len(m.faces) for m, _ in pieces)
    kw = dict(name="heavy", class_name="test", source="test", licence="", attribution="")
    full = finalise(pieces, face_budget=None, **kw)
    small = finalise(pieces, face_budget=3000, **kw)
    assert full.n_faces == full.faces_original == small.faces_original == n_in > 3000
    assert 1500 < small.n_faces <= 3000
    assert len(small.parts) == 2 and small.parts[1].material.texture is not None
    allv = np.concatenate([p.vertices for p in small.parts])
    assert np.abs((allv.min(0) + allv.max(0)) / 2).max() < 1e-4
    assert abs(np.linalg.norm(allv, axis=1).max() - 1) < 1e-4
    for p in small.parts:
        assert np.allclose(np.linalg.norm(p.normals, axis=1), 1, atol=1e-3)
        assert p.faces.dtype == np.int32 and p.faces.max() < len(p.vertices) and np.isfinite(p.uvs).all()
    for axis in range(3):
        a, b = _ortho_mask(full, axis), _ortho_mask(small, axis)
        iou = (a & b).sum() / (a | b).sum()
        assert a.sum() > 0.1 * a.size and iou > 0.9, (axis, iou)
    # the handle's uvs were re-projected from the original faces: still the same affine map of
    # position (up to the tiny renormalisation after decimation)
    h = small.parts[1]
    scale = np.linalg.norm(np.concatenate([m.vertices for m, _ in pieces]), axis=1).max()
    assert np.abs(h.uvs - (h.vertices[:, :2] * scale * 0.5 + 0.5)).max() < 0.03
    again = finalise(pieces, face_budget=3000, **kw)  # deterministic
    assert all(np.array_equal(p.vertices, q.vertices) and np.array_equal(p.faces, q.faces)
               and np.array_equal(p.uvs, q.uvs) for p, q in zip(small.parts, again.parts))


# ---- Sweet Home 3D (needs the Debian package) ---------------------------------------------------


def test_full_library_has_100_classes_of_3(sweethome_reason):
    if sweethome_reason:
        pytest.skip(f"sweethome3d-furniture unavailable: {sweethome_reason}")
    cat = class_catalogue(SHARED_CACHE)
    assert len(cat) >= 100
    assert all(len(pool) >= 3 for _, pool in cat)
    sources = {pool[0].source.split(":")[0] for _, pool in cat}
    assert sources == {"sweethome3d", "procedural"}
    # the order mixes sources: both appear among the first 8 classes
    assert len({pool[0].source.split(":")[0] for _, pool in cat[:8]}) == 2


def test_sweethome_meshes_load_and_normalise(sweethome_reason):
    if sweethome_reason:
        pytest.skip(f"sweethome3d-furniture unavailable: {sweethome_reason}")
    lib = build_library(SHARED_CACHE, 3, 2, 0.2, use_sweethome=True, progress=False)
    sh = [c for c in range(3) if lib.meshes(c)[0].source.startswith("sweethome3d")]
    assert sh
    for c in sh:
        for m in lib.meshes(c):
            allv = np.concatenate([p.vertices for p in m.parts])
            assert abs(np.linalg.norm(allv, axis=1).max() - 1) < 1e-4
            assert "Sweet Home 3D" in m.attribution and m.licence
            assert len(m.parts) <= MAX_PARTS


# ---- materials and the .pat reader --------------------------------------------------------------


def test_materials_list():
    mats = list_materials()
    assert len(mats) >= 40
    assert len({m.name for m in mats}) == len(mats)
    assert sum(m.texture is not None for m in mats) >= 10
    for m in mats:
        assert len(m.base_colour) == 3 and all(0 <= v <= 1 for v in m.base_colour)
        assert 0 <= m.specular <= 1 and 0 <= m.roughness <= 1 and 0 <= m.metallic <= 1
        if m.texture is not None:
            assert m.texture.dtype == np.uint8 and m.texture.ndim == 3 and m.texture.shape[2] == 3
    again = list_materials()
    assert [m.name for m in again] == [m.name for m in mats]
    for a, b in zip(mats, again):
        assert (a.texture is None) == (b.texture is None)
        if a.texture is not None:
            assert np.array_equal(a.texture, b.texture)


def test_materials_fixed_length_without_gimp(tmp_path):
    assert [m.name for m in list_materials(tmp_path)] == [m.name for m in list_materials()]


def _write_pat(path: Path, name: str, px: np.ndarray) -> None:
    h, w, bpp = px.shape
    nm = name.encode() + b"\0"
    header = struct.pack(">5I", 24 + len(nm), 1, w, h, bpp) + b"GPAT" + nm
    path.write_bytes(header + px.astype(np.uint8).tobytes())


@pytest.mark.parametrize("bpp", [1, 2, 3, 4])
def test_read_pat(tmp_path, bpp):
    rng = np.random.default_rng(bpp)
    px = rng.integers(0, 256, (5, 7, bpp), dtype=np.uint8)
    _write_pat(tmp_path / "p.pat", "Ünïcode pattern", px)
    name, rgb = read_pat(tmp_path / "p.pat")
    assert name == "Ünïcode pattern"
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    expect = (px[..., :3] if bpp >= 3 else np.repeat(px[..., :1], 3, axis=2)).astype(float)
    if bpp in (2, 4):  # alpha composited over white
        a = px[..., -1:] / 255.0
        expect = np.round(expect * a + 255 * (1 - a))
    assert np.array_equal(rgb, expect)


def test_read_pat_rejects_bad_files(tmp_path):
    px = np.zeros((4, 4, 3), np.uint8)
    _write_pat(tmp_path / "ok.pat", "x", px)
    data = (tmp_path / "ok.pat").read_bytes()
    (tmp_path / "trunc.pat").write_bytes(data[:-5])
    (tmp_path / "magic.pat").write_bytes(data[:20] + b"XXXX" + data[24:])
    for bad in ("trunc.pat", "magic.pat"):
        with pytest.raises(PatError, match=bad):
            read_pat(tmp_path / bad)


def test_real_gimp_legacy_patterns_read():
    legacy = Path("/usr/share/gimp/2.0/patterns/Legacy")
    pats = sorted(legacy.glob("*.pat"))
    if not pats:
        pytest.skip("Debian gimp-data not installed")
    for p in pats:
        name, rgb = read_pat(p)
        assert name and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.std() > 0


# ---- environments -------------------------------------------------------------------------------


def test_environments():
    try:
        envs = list_environments(SHARED_CACHE)
    except PackageUnavailable as e:
        pytest.skip(f"blender-data unavailable: {e}")
    assert [e.name for e in envs] == ["city", "courtyard", "forest", "interior", "night", "studio",
                                      "sunrise", "sunset"]
    for e in envs:
        assert e.image.dtype == np.float32 and e.image.shape == (256, 512, 3)
        assert np.isfinite(e.image).all() and e.image.min() >= 0
        assert e.image.max() > 1.0  # HDR: the sun / lamps exceed display white
        assert "CC0" in e.licence


def test_environment_fallback_is_explicit(tmp_path, monkeypatch):
    from task2sim.render.assets import environments as E

    def unavailable(*a, **k):
        raise PackageUnavailable("no archive in this test")
    monkeypatch.setattr(E, "fetch_package", unavailable)
    with pytest.raises(PackageUnavailable):
        E.list_environments(tmp_path)
    envs = E.list_environments(tmp_path, fallback=True)
    assert len(envs) == 8 and all(e.image.shape == (256, 512, 3) for e in envs)
