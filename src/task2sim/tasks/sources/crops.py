"""Crops of larger images from disjoint regions for train and test: textures, GIMP's materials and
patterns, scikit-image photos, the BrainWeb-like tissue slices."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from ...debian_data import GIMP_PATTERNS_DIR
from ...gimp_pat import PatError, read_pat
from ..common import SourceData, SourceRequest, images_per_class_for, require_dir, to_nhwc
from ..data import TaskDataError


TEXTURE_PATCH = 48
MATERIAL_PATCH = 24
BRAIN_PATCH = 32
BRAIN16_PATCH = 16  # `brain16`: the same labels from 16 px windows (less context)


def _crops(img: np.ndarray, region: tuple[int, int, int, int], size: int, n: int,
           rng: np.random.Generator) -> np.ndarray:
    """n random size x size crops lying fully inside region = (row0, row1, col0, col1)."""
    r0, r1, c0, c1 = region
    rows = rng.integers(r0, r1 - size + 1, n)
    cols = rng.integers(c0, c1 - size + 1, n)
    return np.stack([img[r:r + size, c:c + size] for r, c in zip(rows, cols)])


def load_textures(req: SourceRequest) -> SourceData:
    from skimage import data
    import skimage.data

    names = ["brick", "grass", "gravel"]
    n_tr = images_per_class_for(req.max_train, len(names))
    n_te = images_per_class_for(req.max_test, len(names))
    rng = np.random.default_rng([req.seed, 10])
    xtr, ytr, xte, yte = [], [], [], []
    for c, name in enumerate(names):
        img = getattr(data, name)()
        h, w = img.shape[:2]
        # Left 70 % of columns for training crops, right 30 % for test crops: no shared pixel.
        cut = int(round(w * 0.7))
        xtr.append(_crops(img, (0, h, 0, cut), TEXTURE_PATCH, n_tr, rng))
        xte.append(_crops(img, (0, h, cut, w), TEXTURE_PATCH, n_te, rng))
        ytr.append(np.full(n_tr, c))
        yte.append(np.full(n_te, c))
    base = Path(skimage.data.__file__).parent
    return SourceData(
        class_names=names, images=to_nhwc(np.concatenate(xtr)), labels=np.concatenate(ytr),
        test_images=to_nhwc(np.concatenate(xte)), test_labels=np.concatenate(yte),
        source="scikit-image data.brick/grass/gravel (512x512 photos)",
        licence="CC0 (scikit-image sample data)",
        kind=f"{TEXTURE_PATCH}x{TEXTURE_PATCH} grey crops of real texture photos",
        split="train crops from the left 70% of each photo, test crops from the right 30%",
        inputs=[str(base / f"{n}.png") for n in names if (base / f"{n}.png").is_file()])


def _split_regions(h: int, w: int, size: int, test_fraction: float):
    """Train and test regions of one tile, cut along its longer side; None if a side is too small."""
    long_ = max(h, w)
    n_test = max(size, int(math.ceil(long_ * test_fraction)))
    if long_ - n_test < size or min(h, w) < size:
        return None
    if w >= h:
        return (0, h, 0, w - n_test), (0, h, w - n_test, w)
    return (0, h - n_test, 0, w), (h - n_test, h, 0, w)


def load_materials(req: SourceRequest) -> SourceData:
    root = require_dir(GIMP_PATTERNS_DIR, "gimp-data")
    tiles: dict[str, list[tuple[Path, np.ndarray]]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "Legacy"):
        for pat in sorted(folder.glob("*.pat")):
            try:
                _, tile = read_pat(pat)
            except PatError as e:
                raise TaskDataError(str(e)) from None
            if _split_regions(*tile.shape[:2], MATERIAL_PATCH, 0.3) is not None:
                tiles.setdefault(folder.name, []).append((pat, tile))
    names = sorted(tiles)
    n_tr = images_per_class_for(req.max_train, max(1, len(names)))
    n_te = images_per_class_for(req.max_test, max(1, len(names)))
    rng = np.random.default_rng([req.seed, 11])
    xtr, ytr, xte, yte = [], [], [], []
    for c, name in enumerate(names):
        # Spread each class's crops evenly over its tiles (Stone has 15, Fabric 1).
        for which, n, xs, ys in (("train", n_tr, xtr, ytr), ("test", n_te, xte, yte)):
            per_tile = np.bincount(rng.integers(0, len(tiles[name]), n), minlength=len(tiles[name]))
            for (pat, tile), k in zip(tiles[name], per_tile):
                if k == 0:
                    continue
                tr, te = _split_regions(*tile.shape[:2], MATERIAL_PATCH, 0.3)
                xs.append(_crops(tile, tr if which == "train" else te, MATERIAL_PATCH, k, rng))
                ys.append(np.full(k, c))
    return SourceData(
        class_names=names,
        images=to_nhwc(np.concatenate(xtr)) if xtr else np.zeros((0, MATERIAL_PATCH, MATERIAL_PATCH, 3), np.uint8),
        labels=np.concatenate(ytr) if ytr else np.zeros(0, np.int64),
        test_images=to_nhwc(np.concatenate(xte)) if xte else np.zeros((0, MATERIAL_PATCH, MATERIAL_PATCH, 3), np.uint8),
        test_labels=np.concatenate(yte) if yte else np.zeros(0, np.int64),
        source="GIMP pattern tiles (Debian gimp-data, patterns/<Material>/*.pat, Legacy/ left out)",
        licence="GIMP data, GPL-3+ / CC (see /usr/share/doc/gimp-data/copyright)",
        kind=f"{MATERIAL_PATCH}x{MATERIAL_PATCH} colour crops of photographed material tiles",
        split="per tile: train crops from the first 70% along its longer side, test crops from the rest",
        inputs=[str(p) for n in names for p, _ in tiles[n]])


@functools.lru_cache(maxsize=2)
def _brain_volumes(p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """T1, mean GM and WM probability of every in-plane p x p window, and the dominant class.

    Cached: the window means over the whole volume take seconds."""
    import nibabel
    import nilearn.datasets
    from scipy.ndimage import uniform_filter

    data_dir = Path(nilearn.datasets.__file__).parent / "data"
    files = {k: data_dir / f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")}
    for f in files.values():
        if not f.is_file():
            raise TaskDataError(f"MNI152 template file not found in the nilearn package: {f}")
    vol = {k: np.asarray(nibabel.load(f).dataobj, dtype=np.float32) for k, f in files.items()}
    # Axial slices: z is the last axis.
    gm_mean = uniform_filter(vol["gm"] / 255.0, size=(p, p, 1), mode="constant")
    wm_mean = uniform_filter(vol["wm"] / 255.0, size=(p, p, 1), mode="constant")
    label_vol = np.argmax(np.stack([gm_mean, wm_mean, 1.0 - gm_mean - wm_mean]), axis=0)
    for a in (vol["t1"], gm_mean, wm_mean, label_vol):
        a.flags.writeable = False
    return vol["t1"], gm_mean, wm_mean, label_vol, tuple(str(f) for f in files.values())


def load_brain(req: SourceRequest) -> SourceData:
    return _brain_tissue(req, BRAIN_PATCH, 12)


def load_brain16(req: SourceRequest) -> SourceData:
    return _brain_tissue(req, BRAIN16_PATCH, 31)


def _brain_tissue(req: SourceRequest, p: int, stream: int) -> SourceData:
    t1, gm_mean, wm_mean, label_vol, files = _brain_volumes(p)
    nx, ny, nz = t1.shape
    stride = 3
    cx = np.arange(p // 2, nx - p // 2 + 1, stride)
    cy = np.arange(p // 2, ny - p // 2 + 1, stride)
    z = np.arange(nz)
    # Slabs of 16 axial slices; every third slab is test, and 2 slices at each slab edge are
    # dropped so no train slice is within 4 mm of a test slice.
    slab, pos = z // 16, z % 16
    keep = (pos >= 2) & (pos < 14)
    zsets = {"train": z[keep & (slab % 3 != 2)], "test": z[keep & (slab % 3 == 2)]}
    names = ["grey matter", "white matter", "CSF/other"]
    n_per = {"train": images_per_class_for(req.max_train, 3), "test": images_per_class_for(req.max_test, 3)}
    rng = np.random.default_rng([req.seed, stream])
    out = {}
    for which, zs in zsets.items():
        X, Y, Z = np.meshgrid(cx, cy, zs, indexing="ij")
        X, Y, Z = X.ravel(), Y.ravel(), Z.ravel()
        # Windows must hold brain tissue, not just air around the head.
        brainy = (gm_mean[X, Y, Z] + wm_mean[X, Y, Z]) >= 0.2
        X, Y, Z = X[brainy], Y[brainy], Z[brainy]
        lab = label_vol[X, Y, Z]
        xs, ys = [], []
        for c in range(3):
            idx = np.flatnonzero(lab == c)
            if len(idx) == 0:
                continue
            pick = rng.choice(idx, size=min(n_per[which], len(idx)), replace=False)
            for i in pick:
                x0, y0 = X[i] - p // 2, Y[i] - p // 2
                patch = t1[x0:x0 + p, y0:y0 + p, Z[i]]
                # Radiological view: anterior up, as in the usual axial display.
                xs.append(np.rint(patch[:, ::-1].T))
            ys.append(np.full(len(pick), c))
        out[which] = (to_nhwc(np.clip(np.stack(xs), 0, 255)), np.concatenate(ys))
    return SourceData(
        class_names=names, images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source="MNI ICBM152 2009a symmetric T1 template + GM/WM probability maps shipped in nilearn",
        licence="MNI ICBM152 templates: free use with attribution (Copyright McConnell Brain Imaging Centre)",
        kind=f"{p}x{p} axial T1 patches of an averaged MRI, labelled by dominant tissue (mean GM/WM/rest)",
        split="slabs of 16 axial slices, every third slab test, 2 slices at slab edges dropped",
        inputs=list(files))


PHOTO_CLASSES = ["astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "moon",
                 "immunohistochemistry", "retina", "cell"]
PATTERN_CLASSES_N = 20
PATTERN_PATCH = 24
PHOTO_PATCH = 32


def load_photos(req: SourceRequest) -> SourceData:
    from skimage import data
    import skimage.data

    p = PHOTO_PATCH
    n_tr = images_per_class_for(req.max_train, len(PHOTO_CLASSES))
    n_te = images_per_class_for(req.max_test, len(PHOTO_CLASSES))
    rng = np.random.default_rng([req.seed, 26])
    xtr, xte = [], []
    for name in PHOTO_CLASSES:
        img = getattr(data, name)()
        if img.ndim == 3:  # grey: the photo's colour would give most of them away
            img = np.rint(img[..., :3] @ np.array([0.299, 0.587, 0.114]))
        h, w = img.shape
        cut = int(round(w * (1 - req.test_fraction)))
        for region, n, xs in (((0, h, 0, cut), n_tr, xtr), ((0, h, cut, w), n_te, xte)):
            cand = _crops(img, region, p, 20 * n, rng)
            keep = cand[cand.reshape(len(cand), -1).std(1) >= 6][:n]  # not blank background
            if len(keep) < n:
                raise TaskDataError(f"photos: only {len(keep)} non-blank crops of {name}")
            xs.append(keep)
    base = Path(skimage.data.__file__).parent
    stems = {"immunohistochemistry": "ihc"}  # data function -> file name where they differ
    files = [str(f) for f in sorted(base.iterdir()) if f.stem in {stems.get(n, n) for n in PHOTO_CLASSES}]
    return SourceData(
        class_names=list(PHOTO_CLASSES), images=to_nhwc(np.concatenate(xtr)),
        labels=np.repeat(np.arange(len(PHOTO_CLASSES)), n_tr),
        test_images=to_nhwc(np.concatenate(xte)), test_labels=np.repeat(np.arange(len(PHOTO_CLASSES)), n_te),
        source="scikit-image sample photos (" + ", ".join(PHOTO_CLASSES) + ")",
        licence="public domain or CC0 per the scikit-image data docstrings (moon: no statement there)",
        kind=f"{p}x{p} grey crops of real photos (portraits, objects, sky, microscopy, retina); "
             "the class is the photo",
        split=f"train crops from the left {1 - req.test_fraction:.0%} of each photo, test crops from the rest",
        inputs=files)


def load_patterns(req: SourceRequest) -> SourceData:
    root = require_dir(GIMP_PATTERNS_DIR, "gimp-data-extras")
    tiles = []
    for pat in sorted(root.glob("*.pat")):  # the top level: gimp-data-extras (gimp-data uses folders)
        try:
            _, tile = read_pat(pat)
        except PatError as e:
            raise TaskDataError(str(e)) from None
        if min(tile.shape[:2]) >= 96 and _split_regions(*tile.shape[:2], PATTERN_PATCH, 0.3) is not None:
            tiles.append((pat, tile))
    if len(tiles) < PATTERN_CLASSES_N:
        raise TaskDataError(f"only {len(tiles)} GIMP patterns of >= 96 px in {root} "
                            "(install the Debian package gimp-data-extras)")
    # An even spread over the alphabetical list: a fixed choice, not a seeded one.
    pick = [tiles[i] for i in np.linspace(0, len(tiles) - 1, PATTERN_CLASSES_N).round().astype(int)]
    n_tr = images_per_class_for(req.max_train, len(pick))
    n_te = images_per_class_for(req.max_test, len(pick))
    rng = np.random.default_rng([req.seed, 27])
    xtr, xte = [], []
    for pat, tile in pick:
        tr, te = _split_regions(*tile.shape[:2], PATTERN_PATCH, 0.3)
        xtr.append(_crops(tile, tr, PATTERN_PATCH, n_tr, rng))
        xte.append(_crops(tile, te, PATTERN_PATCH, n_te, rng))
    return SourceData(
        class_names=[pat.stem for pat, _ in pick], images=to_nhwc(np.concatenate(xtr)),
        labels=np.repeat(np.arange(len(pick)), n_tr), test_images=to_nhwc(np.concatenate(xte)),
        test_labels=np.repeat(np.arange(len(pick)), n_te),
        source="GIMP extra patterns (Debian gimp-data-extras, top-level *.pat)",
        licence="GPL-2+ (see /usr/share/doc/gimp-data-extras/copyright)",
        kind=f"{PATTERN_PATCH}x{PATTERN_PATCH} colour crops of artwork/photo pattern tiles; the class is the pattern",
        split="per tile: train crops from the first 70% along its longer side, test crops from the rest",
        inputs=[str(pat) for pat, _ in pick])
