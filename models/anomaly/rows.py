"""A batch of one service's rows as arrays: the matrix over its features, where its feature
set changes, the directions that alert, and row-wise maxima."""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["directional", "exact_matrix", "first_with_unknown", "matrix", "row_max"]

FloatArray = npt.NDArray[np.float64]


def matrix(rows: Sequence[Mapping[str, float]], names: tuple[str, ...]) -> FloatArray:
    """Rows as a float matrix over ``names``; a name missing from a row is NaN.

    Examples:
        >>> matrix([{"a": 1, "b": 2}, {"b": 3}], ("a", "b")).tolist()
        [[1.0, 2.0], [nan, 3.0]]
    """
    pick = operator.itemgetter(*names)
    try:  # the common case, every name present: picked in C
        picked = [pick(row) for row in rows]
    except KeyError:
        picked = [[row.get(n, math.nan) for n in names] for row in rows]
    return np.array(picked, dtype=np.float64).reshape(len(rows), len(names))


def exact_matrix(rows: Sequence[Mapping[str, float]], names: tuple[str, ...]) -> FloatArray | None:
    """:func:`matrix` of rows that have every one of ``names`` and no other name (the common
    case: a batch of one service, its metrics unchanged), else None.

    Examples:
        >>> exact_matrix([{"a": 1, "b": 2}, {"b": 3, "a": 4}], ("a", "b")).tolist()
        [[1.0, 2.0], [4.0, 3.0]]
        >>> exact_matrix([{"a": 1}], ("a", "b")), exact_matrix([{"a": 1, "c": 2}], ("a",))
        (None, None)
    """
    n, d = len(rows), len(names)
    if not d or sum(map(len, rows)) != n * d:  # then each row with every name has no other
        return None
    pick = operator.itemgetter(*names)
    values = itertools.chain.from_iterable(map(pick, rows)) if d > 1 else map(pick, rows)
    try:
        return np.fromiter(values, dtype=np.float64, count=n * d).reshape(n, d)
    except KeyError:
        return None


def first_with_unknown(rows: Sequence[Mapping[str, float]], start: int, known: set[str]) -> int:
    """The index of the first row from ``start`` with a name outside ``known`` (or the end).

    Examples:
        >>> first_with_unknown([{"a": 1}, {"a": 1, "b": 2}, {"c": 3}], 0, {"a", "b"})
        2
        >>> first_with_unknown([{"a": 1}], 0, {"a"})
        1
    """
    within = map(known.issuperset, itertools.islice(rows, start, None))
    return next(itertools.compress(itertools.count(start), map(operator.not_, within)), len(rows))


def directional(z: FloatArray, signs: FloatArray) -> FloatArray:
    """Keep deviations in the directions that alert: rises (+1), drops (-1), or both (0).

    Examples:
        >>> z = np.array([[4.0, 4.0, 4.0], [-4.0, -4.0, -4.0]])
        >>> directional(z, np.array([1.0, -1.0, 0.0])).tolist()
        [[4.0, 0.0, 4.0], [0.0, -4.0, -4.0]]
    """
    if not signs.any():
        return z
    out: FloatArray = np.where(z * signs[None, :] < 0.0, 0.0, z)
    return out


def row_max(a: FloatArray) -> FloatArray:
    """The largest value of each row (0 for rows of no columns).

    Examples:
        >>> row_max(np.array([[1.0, 3.0], [2.0, 0.0]])).tolist(), row_max(np.empty((2, 0))).tolist()
        ([3.0, 2.0], [0.0, 0.0])
    """
    # .max(axis=1), without its wrapper
    out: FloatArray = np.maximum.reduce(a, axis=1) if a.shape[1] else np.zeros(a.shape[0])
    return out
