"""Intervals for the paired differences that claims rest on (README: evidence rules).

Usage::

    d = paired_interval([1.2, 0.4, 2.0, -0.3, 0.9])   # per-seed differences of two methods
    d.mean, d.low, d.high, d.n                         # mean and its 95 % t interval
    d.text()                                           # "+0.84 [-0.33, +2.01] (n 5)"

The interval is Student's t on the differences (n - 1 degrees of freedom): each difference is one
paired unit (a seed whose two methods saw the same data order and head initialisation), assumed
independent of the others. With n < 2 there is no interval (low = high = nan).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    level: float

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    def text(self, digits: int = 2) -> str:
        if self.n < 2:
            return f"{self.mean:+.{digits}f} (n {self.n}, no interval)"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}] (n {self.n})"


def paired_interval(differences: Sequence[float], level: float = 0.95) -> Interval:
    """Mean of ``differences`` with its two-sided ``level`` Student-t interval."""
    from scipy.stats import t

    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or not len(d) or not np.isfinite(d).all():
        raise ValueError(f"need a non-empty 1-d sequence of finite differences, got {differences!r}")
    n, m = len(d), float(d.mean())
    if n < 2:
        return Interval(m, math.nan, math.nan, n, level)
    half = float(t.ppf(0.5 + level / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    return Interval(m, m - half, m + half, n, level)
