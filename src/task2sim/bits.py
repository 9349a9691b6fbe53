"""The eight binary simulation parameters ("bits") and configuration strings like ``01101001``.

Order and meaning follow the Task2Sim paper (docs/algorithms.md, "Simulation parameters"). A run
may vary only a subset of the bits (M < 8); the others are held at 0 and strings always carry all
8 characters, so results from runs with different M stay comparable.
"""

from __future__ import annotations

import itertools
import re
from typing import Iterable, Sequence

BIT_NAMES: tuple[str, ...] = (
    "rotation",          # 0: random pitch/yaw/roll vs canonical pose
    "distance",          # 1: camera distance factor U(0.4, 1.5) vs fixed
    "light_intensity",   # 2: +-U(0, 0.6) relative vs fixed
    "light_colour",      # 3: rgb each U(0.05, 1) vs white
    "light_direction",   # 4: random yaw/pitch vs fixed
    "focus_blur",        # 5: thin-lens blur with p=0.75 vs all in focus
    "background",        # 6: random environment + view vs one fixed
    "materials",         # 7: random material per part vs the object's own
)
N_BITS = len(BIT_NAMES)
BITS_PATTERN = r"[01]{8}"
_BITS_RE = re.compile(rf"^{BITS_PATTERN}$")


def validate_bits(bits: str) -> str:
    if not isinstance(bits, str) or not _BITS_RE.match(bits):
        raise ValueError(f"config string must be 8 characters of 0/1, got {bits!r}")
    return bits


def parse_bits(bits: str) -> tuple[bool, ...]:
    return tuple(c == "1" for c in validate_bits(bits))


def format_bits(flags: Iterable[bool | int]) -> str:
    s = "".join("1" if f else "0" for f in flags)
    return validate_bits(s)


def configs_for(vary_bits: Sequence[int]) -> list[str]:
    """All 2^M config strings that vary ``vary_bits`` (others 0), in binary counting order."""
    vary = sorted(set(int(b) for b in vary_bits))
    if any(not 0 <= b < N_BITS for b in vary):
        raise ValueError(f"bit indices must lie in 0..{N_BITS - 1}, got {list(vary_bits)}")
    out = []
    for combo in itertools.product((0, 1), repeat=len(vary)):
        flags = [0] * N_BITS
        for i, v in zip(vary, combo):
            flags[i] = v
        out.append(format_bits(flags))
    return out


def describe(bits: str) -> str:
    """Human-readable list of the bits that are on, e.g. 'rotation+materials' ('all off')."""
    on = [name for name, f in zip(BIT_NAMES, parse_bits(bits)) if f]
    return "+".join(on) if on else "all off"
