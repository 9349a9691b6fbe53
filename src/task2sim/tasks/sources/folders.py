"""Files on disk: a user's image folder or HDF5 file, and openclipart's drawings (clipart, icons)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..common import (IMAGE_EXTENSIONS, MAX_DECODE_PIXELS, SourceData, SourceRequest, image_pixels,
                      images_per_class_for, open_image, require_dir)
from ..data import TaskDataError, load_task_h5


OPENCLIPART_DIR = Path("/usr/share/openclipart/png")
# Object categories of openclipart with >= 70 drawings; icon-like folders (computer, shapes,
# signs_and_symbols) are left out because they are not depictions of things.
CLIPART_CLASSES = ["animals", "buildings", "food", "office", "people", "plants", "tools",
                   "transportation"]
# Subfolders whose drawings are not what the top folder names (pictograms, furniture, clothes).
CLIPART_EXCLUDED = ("transportation/roadsigns", "transportation/aiga-symbols",
                    "buildings/furniture", "people/clothing")
# `icons`: the folders left out of `clipart` (not depictions of things) as a task of their own.
ICON_CLASSES = ["computer", "geography", "recreation", "shapes", "signs_and_symbols"]


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
    root = require_dir(OPENCLIPART_DIR, "openclipart-png")
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
