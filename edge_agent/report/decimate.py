"""Thinning a long trace for drawing without losing its peaks (needs numpy: the report extra)."""

from __future__ import annotations

import math
from array import array

import numpy as np
import numpy.typing as npt

#: Buckets a trace is thinned to; each keeps its lowest and highest value (so at most twice
#: as many points): a screen is a few thousand pixels wide, and a harsh event's peak stays.
BUCKETS = 2500

Floats = npt.NDArray[np.float64]


def minmax(t: array[float], v: array[float], buckets: int = BUCKETS) -> tuple[Floats, Floats]:
    """``(t, v)`` as arrays, thinned to the lowest and highest value of each of ``buckets``
    runs of consecutive points (in time order) when there are more than ``2 * buckets``."""
    times = np.frombuffer(t, dtype=np.float64) if len(t) else np.empty(0)
    values = np.frombuffer(v, dtype=np.float64) if len(v) else np.empty(0)
    n = len(times)
    if n <= 2 * buckets:
        return times.copy(), values.copy()
    k = math.ceil(n / buckets)
    rows = math.ceil(n / k)
    padded = np.concatenate([values, np.full(rows * k - n, values[-1])]).reshape(rows, k)
    base = np.arange(rows) * k
    keep = np.unique(np.concatenate([base + padded.argmin(axis=1), base + padded.argmax(axis=1),
                                     [0, n - 1]]))  # fmt: skip
    keep = keep[keep < n]
    return times[keep], values[keep]
