"""Order statistics of a feature's window, as the scaler's refresh reads them
(:mod:`models.anomaly.scaling`): numpy's percentiles and the smallest step between values,
both from one sort of the rows.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

__all__ = ["percentiles", "quanta", "sorted_percentiles", "sorted_quanta"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)


@functools.lru_cache(maxsize=256)
def _interpolation(n: int) -> tuple[IntArray, IntArray, FloatArray, FloatArray, BoolArray]:
    """numpy's ``linear`` percentile method over ``n`` sorted values, for ``_PERCENTILES``.

    Returns:
        Per percentile, the ranks below and above its virtual index and the weight ``gamma``
        of the upper one, computed as ``numpy.percentile`` does; ``1 - gamma``, and whether
        it interpolates from above (``gamma >= 0.5``).
    """
    virtual = (n - 1) * np.true_divide(np.array(_PERCENTILES), 100)
    below = np.floor(virtual)
    gamma = virtual - below
    low = np.minimum(below.astype(np.intp), n - 1)
    high = np.minimum(low + 1, n - 1)
    return low, high, gamma, 1 - gamma, gamma >= 0.5


def quanta(rows: FloatArray) -> FloatArray:
    """The smallest gap between two distinct values of each row (0 for a constant row).

    A metric's resolution: integer counts move in steps of 1, however rarely they move.

    Examples:
        >>> quanta(np.array([[0.0, 0.0, 1.0, 3.0], [2.0, 2.0, 2.0, 2.0]])).tolist()
        [1.0, 0.0]
    """
    return sorted_quanta(np.sort(rows, axis=1))


def sorted_quanta(ordered: FloatArray) -> FloatArray:
    """:func:`quanta` of rows already sorted."""
    gaps = ordered[:, 1:] - ordered[:, :-1]  # np.diff's arithmetic, without its wrapper
    gaps[gaps <= 0.0] = np.inf
    smallest = gaps.min(axis=1) if gaps.shape[1] else np.full(ordered.shape[0], np.inf)
    out: FloatArray = np.where(np.isfinite(smallest), smallest, 0.0)
    return out


def percentiles(rows: FloatArray) -> list[list[float]]:
    """The 5/25/50/75/95th percentiles of each row, exactly as ``numpy.percentile`` gives them.

    ``numpy.percentile(rows, (5, 25, 50, 75, 95), axis=1)`` pays ~20 us of Python set-up per
    call and selects the ten ranks with a multi-``kth`` partition, which is several times
    slower than numpy's (SIMD) sort of the rows. The ranks hold the same values whichever way
    they are found, and the interpolation is numpy's arithmetic, so the results are identical.
    Rows must not hold NaN (numpy would return NaN for them; learned windows never hold one).

    Examples:
        >>> rows = np.random.default_rng(0).normal(size=(3, 101))
        >>> expected = np.percentile(rows, _PERCENTILES, axis=1).T.tolist()
        >>> percentiles(rows) == expected
        True
    """
    return sorted_percentiles(np.sort(rows, axis=1))


def sorted_percentiles(ordered: FloatArray) -> list[list[float]]:
    """:func:`percentiles` of rows already sorted."""
    low, high, gamma, rest, above = _interpolation(ordered.shape[1])
    a, b = ordered[:, low], ordered[:, high]
    # numpy's _lerp: from below for gamma < 0.5, from above otherwise (same operations).
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * rest, out=out, where=above)
    result: list[list[float]] = out.tolist()
    return result
