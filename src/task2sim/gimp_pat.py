"""GIMP pattern files (``.pat``), read by the renderer's material list and the ``materials`` task.

Hand-written because no installed library decodes them: Pillow's GBR (GIMP brush) plugin opens the
1- and 4-byte patterns only by a coincidence of header layout and refuses RGB ones.

The format: a big-endian header of u32 header_size, version (1), width, height, bytes per pixel
(1 grey, 2 grey + alpha, 3 RGB, 4 RGBA), the magic b"GPAT" and the UTF-8 name (NUL-terminated,
filling the header), then width * height * bytes raw pixels, row by row.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .errors import Task2SimError


class PatError(Task2SimError):
    """A file that is not a readable GIMP pattern (the message names it)."""


def read_pat(path: str | Path) -> tuple[str, np.ndarray]:
    """Read a GIMP .pat file -> (name, uint8 (H, W, 3) RGB): grey is repeated to three channels
    and alpha composited over white (some patterns live in the alpha only)."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        raise PatError(f"{path}: too short for a GIMP pattern header")
    header_size, version, width, height, bpp = struct.unpack(">5I", data[:20])
    if data[20:24] != b"GPAT" or version != 1 or not 1 <= bpp <= 4 or header_size < 24:
        raise PatError(f"{path}: not a GIMP pattern (magic/version/bytes-per-pixel)")
    name = data[24:header_size].split(b"\0", 1)[0].decode("utf-8", "replace")
    n = width * height * bpp
    raw = data[header_size:header_size + n]
    if len(raw) != n or width == 0 or height == 0:
        raise PatError(f"{path}: truncated GIMP pattern ({len(raw)} of {n} pixel bytes)")
    px = np.frombuffer(raw, np.uint8).reshape(height, width, bpp)
    rgb = np.repeat(px[..., :1], 3, axis=2) if bpp in (1, 2) else px[..., :3]
    if bpp in (2, 4):
        a = px[..., -1:].astype(np.float32) / 255.0
        rgb = np.round(rgb * a + 255.0 * (1 - a)).astype(np.uint8)
    return name, np.ascontiguousarray(rgb)
