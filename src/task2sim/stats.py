"""Intervals for the paired differences that claims rest on (README: evidence rules).

Usage::

    d = paired_interval([1.2, 0.4, 2.0, -0.3, 0.9])   # per-seed differences of two methods
    d.mean, d.low, d.high, d.n                         # mean and its 95 % t interval
    d.text()                                           # "+0.84 [-0.33, +2.01] (n 5)"

The interval is Student's t on the differences (n - 1 degrees of freedom): each difference is one
paired unit (a seed whose two methods saw the same data order and head initialisation), assumed
independent of the others. With n < 2 there is no interval (low = high = nan).

``crossed_interval`` is the interval for a mean over seeds x tasks (``d[s, t]``: the difference of
two methods on task t with the backbones of seed s). The cells are not independent: every task of
a seed is scored on that seed's backbones, so a lucky seed lifts all its tasks at once, and an
interval that counted the S x T cells as independent would be too narrow. The model is the
crossed random-effects one, d[s, t] = mu + a_t + b_s + e_st (task effect, seed effect, residual),
whose grand mean has variance var_a / T + var_b / S + var_e / (S T). From the two-way mean squares
(MS_T over tasks, MS_S over seeds, MS_E residual) that variance is estimated by
(MS_T + MS_S - MS_E) / (S T) (never below the larger of MS_T and MS_S over S T: each one's
expectation is at most the sum's), with Satterthwaite's degrees of freedom (at least 1). With one seed it is
the interval over tasks (``paired_interval``: the backbones' seed noise is not in it), with one
task the interval over seeds.
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


def crossed_interval(differences, level: float = 0.95) -> Interval:
    """Mean of a seeds x tasks array of paired ``differences`` with its two-sided ``level``
    interval under the crossed random-effects model (module docstring). ``n`` is the number of
    cells (S x T)."""
    from scipy.stats import t

    d = np.asarray(differences, dtype=float)
    if d.ndim != 2 or not d.size or not np.isfinite(d).all():
        raise ValueError(f"need a non-empty seeds x tasks array of finite differences, got shape {d.shape}")
    s, k = d.shape
    if s == 1 or k == 1:
        iv = paired_interval(d.ravel(), level)
        return Interval(iv.mean, iv.low, iv.high, d.size, level)
    m = float(d.mean())
    ms_t = s * float(d.mean(axis=0).var(ddof=1))
    ms_s = k * float(d.mean(axis=1).var(ddof=1))
    resid = d - d.mean(axis=0, keepdims=True) - d.mean(axis=1, keepdims=True) + m
    ms_e = float((resid ** 2).sum()) / ((s - 1) * (k - 1))
    v = ms_t + ms_s - ms_e
    if max(ms_t, ms_s) <= 0:  # every cell the same difference
        return Interval(m, m, m, d.size, level)
    if v >= max(ms_t, ms_s):
        # Satterthwaite: the df of a linear combination of mean squares (the subtracted one too)
        df = v ** 2 / (ms_t ** 2 / (k - 1) + ms_s ** 2 / (s - 1) + ms_e ** 2 / ((s - 1) * (k - 1)))
    else:
        v, df = (ms_t, k - 1) if ms_t >= ms_s else (ms_s, s - 1)
    # Satterthwaite's df can fall below 1 with two seeds and two tasks (the t quantile then runs off
    # to thousands); one degree of freedom is already the widest interval the data can support.
    df = max(df, 1.0)
    half = float(t.ppf(0.5 + level / 2, df)) * math.sqrt(v / d.size)
    return Interval(m, m - half, m + half, d.size, level)
