"""Mann-Whitney U (one-sided, normal approximation with tie correction), in numpy.

Used between runs on latency samples: "are the new samples stochastically larger than the
old ones?". With the sample sizes here (hundreds per side) the normal approximation is tight.
"""
from __future__ import annotations

import math

import numpy as np


def _ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based) and the sizes of tied groups."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(values)]))
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1..end
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks, ends - starts


def mann_whitney_greater(new, old) -> tuple[float, float]:
    """(U of ``new``, one-sided p-value for H1: ``new`` tends to be larger than ``old``)."""
    x, y = np.asarray(new, dtype=float), np.asarray(old, dtype=float)
    n1, n2 = len(x), len(y)
    if not n1 or not n2:
        raise ValueError("Mann-Whitney U needs samples on both sides")
    ranks, ties = _ranks(np.concatenate((x, y)))
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    variance = n1 * n2 / 12.0 * ((n + 1) - (ties**3 - ties).sum() / (n * (n - 1)))
    if variance <= 0:
        return u, 1.0 if u <= n1 * n2 / 2.0 else 0.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)  # continuity correction
    return u, 0.5 * math.erfc(z / math.sqrt(2))
