"""What every task source returns, and the image helpers they share (decode, resize, channels)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from .data import TaskDataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# Larger images are decoded reduced where the format allows (JPEG draft); other formats are
# decoded in full up to Pillow's own bomb threshold and refused above it: a 170-megapixel PNG
# would take ~700 MB and seconds for one 64x64 tile. Built-in sources skip files over the first.
MAX_DECODE_PIXELS = 16_000_000
REFUSE_PIXELS = 89_478_485  # Pillow's DecompressionBombWarning threshold


@dataclass
class SourceRequest:
    """What a loader may use to size its output: sources that cut or render images make as many
    as the caps need (per class), fixed collections ignore these."""
    task: str
    seed: int
    max_train: int
    max_test: int
    test_fraction: float
    image_size: int | None = None
    path: str | None = None


@dataclass
class SourceData:
    """A loaded source before capping and splitting.

    Images are either in memory (``images``: uint8 (N, H, W, C)) or files decoded on demand
    (``files``), so only the subsample that is kept is ever decoded. ``test_*`` is the source's
    own split when it has one; otherwise the caller splits with ``test_fraction``.
    """
    class_names: list[str]
    labels: np.ndarray
    source: str
    licence: str
    kind: str
    images: np.ndarray | None = None
    files: list[Path] | None = None
    test_labels: np.ndarray | None = None
    test_images: np.ndarray | None = None
    test_files: list[Path] | None = None
    split: str = ""
    inputs: list[str] = field(default_factory=list)
    default_image_size: int | None = None  # used when the task sets no image_size (mixed-size files)

    @property
    def has_split(self) -> bool:
        return self.test_labels is not None


Loader = Callable[[SourceRequest], SourceData]


def images_per_class_for(total: int, n_classes: int) -> int:
    """Items a generating source makes per class so that a balanced cap of ``total`` is full."""
    return max(1, math.ceil(total / n_classes))


def to_nhwc(images: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, H, W, 1); uint8 check."""
    if images.ndim == 3:
        images = images[..., None]
    return np.ascontiguousarray(images, dtype=np.uint8)


def open_image(path: Path) -> Image.Image:
    """Open lazily (header only); non-images and over-large images raise TaskDataError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError:
        raise TaskDataError(f"image too large to decode safely: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise TaskDataError(f"not a readable image: {path} ({type(e).__name__})") from None
    return im


def image_pixels(path: Path) -> int:
    """Pixel count from the header alone (huge files count as too many)."""
    try:
        with open_image(path) as im:
            return im.size[0] * im.size[1]
    except TaskDataError as e:
        if "too large" in str(e):
            return MAX_DECODE_PIXELS + 1
        raise


def decode_image(path: Path, image_size: int | None) -> np.ndarray:
    """Decode one file to uint8 (H, W, 1) or (H, W, 3): alpha composited on white, colour kept
    only when it is there, resized to ``image_size`` squared when given."""
    im = open_image(path)
    try:
        with im:
            if im.size[0] * im.size[1] > MAX_DECODE_PIXELS:
                if im.format == "JPEG":  # decodes at 1/2..1/8 scale directly
                    im.draft("RGB", (image_size or 1024, image_size or 1024))
                elif im.size[0] * im.size[1] > REFUSE_PIXELS:
                    raise TaskDataError(f"image too large to decode safely "
                                        f"({im.size[0]}x{im.size[1]}): {path}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                rgb = Image.alpha_composite(canvas, rgba).convert("RGB")
            else:
                rgb = im.convert("RGB")
    except TaskDataError:
        raise
    except (OSError, ValueError, SyntaxError) as e:
        raise TaskDataError(f"not a readable image: {path} ({type(e).__name__}: {e})") from None
    if image_size is not None and rgb.size != (image_size, image_size):
        rgb = fit_square(rgb, image_size)
    arr = np.asarray(rgb, dtype=np.uint8)
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
        return arr[..., :1].copy()
    return arr


def fit_square(im: Image.Image, size: int, fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Resize keeping the aspect ratio, padded to a square (drawings must not be squashed).

    Square inputs are simply resized."""
    w, h = im.size
    if w == h:
        return im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = im.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=3.0)
    canvas = Image.new(im.mode, (size, size), fill if im.mode == "RGB" else fill[0])
    canvas.paste(small, ((size - nw) // 2, (size - nh) // 2))
    return canvas


def resize_array(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 (N, H, W, C) to (N, size, size, C) with Lanczos (PIL)."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, images.shape[-1]), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        res = np.asarray(fit_square(pil, size))
        out[i] = res[..., None] if res.ndim == 2 else res
    return out


def stack_images(arrays: list[np.ndarray], names: list[Path], key_hint: str) -> np.ndarray:
    """Stack decoded images; mixed sizes need ``image_size``; any colour image makes all RGB."""
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        first = arrays[0].shape[:2]
        odd = next(i for i, a in enumerate(arrays) if a.shape[:2] != first)
        raise TaskDataError(f"images differ in size ({first[1]}x{first[0]} in {names[0]} vs "
                            f"{arrays[odd].shape[1]}x{arrays[odd].shape[0]} in {names[odd]}): "
                            f"set {key_hint}")
    if any(a.shape[-1] == 3 for a in arrays):
        arrays = [np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a for a in arrays]
    return np.stack(arrays).astype(np.uint8)


def require_dir(path: Path, package: str) -> Path:
    if not path.is_dir():
        raise TaskDataError(f"source folder not found: {path} (install the Debian package {package})")
    return path
