"""Small statistics helpers for comparing two methods over the same splits or seeds."""
from __future__ import annotations

import math

import numpy as np


def paired_ci(a, b, level=0.95):
    """Mean of the paired differences ``a - b`` and its two-sided t-interval over the pairs.

    Returns ``(mean, low, high)``: ``mean +- t_{(1+level)/2, n-1} * std(a - b, ddof=1) / sqrt(n)``.
    Needs at least two pairs; a zero spread gives a zero-width interval.
    """
    from scipy.stats import t

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 1 or a.shape != b.shape or len(a) < 2:
        raise ValueError(f"paired_ci: needs two 1-D arrays of equal length >= 2, got shapes {a.shape} and {b.shape}")
    d = a - b
    if not 0 < level < 1:
        raise ValueError(f"paired_ci: level must be in (0, 1), got {level}")
    mean = float(d.mean())
    half = float(t.ppf(0.5 + level / 2, len(d) - 1)) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return mean, mean - half, mean + half
