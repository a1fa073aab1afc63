"""Helpers shared by the batch models: matrices, imputation, alignment, versions."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from models import versions

__all__ = ["InsufficientDataError"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SMALLEST = float(np.nextafter(0.0, 1.0))
"""Thresholds are never 0: a prediction of exactly 0.0 never alerts."""


class InsufficientDataError(ValueError):
    """Too little (or too one-sided) data to fit or evaluate a model.

    Not a bug: the sidecar counts it and tries again at its next round.

    Examples:
        >>> issubclass(InsufficientDataError, ValueError)
        True
    """


def as_matrix(names: Sequence[str], X: npt.ArrayLike) -> tuple[tuple[str, ...], FloatArray]:
    """``names`` as a tuple and ``X`` as a float64 [n, len(names)] copy, both checked."""
    names = tuple(names)
    if len(set(names)) != len(names):
        raise ValueError("feature names must be unique")
    matrix = np.array(X, dtype=np.float64, ndmin=2)
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ValueError(f"X must have shape [n, {len(names)}], got {matrix.shape}")
    return names, matrix


def column_medians(X: FloatArray) -> FloatArray:
    """Each column's median over its non-NaN values; 0.0 for a column with none."""
    medians = np.zeros(X.shape[1])
    seen = ~np.all(np.isnan(X), axis=0)
    if X.shape[0] and seen.any():
        medians[seen] = np.nanmedian(X[:, seen], axis=0)
    return medians


def impute(X: FloatArray, medians: FloatArray) -> FloatArray:
    """``X`` with NaN replaced by its column's median (a new array)."""
    return np.where(np.isnan(X), medians, X)


def align(names: Sequence[str], X: npt.ArrayLike, to: Sequence[str]) -> FloatArray:
    """The columns of ``X`` (named ``names``) reordered as ``to``; missing columns are NaN."""
    names, matrix = as_matrix(names, X)
    if names == tuple(to):
        return matrix
    index = {name: i for i, name in enumerate(names)}
    out = np.full((matrix.shape[0], len(to)), np.nan)
    for j, name in enumerate(to):
        i = index.get(name)
        if i is not None:
            out[:, j] = matrix[:, i]
    return out


def time_range(ts_s: FloatArray) -> dict[str, float] | None:
    """``{"first_ts_s", "last_ts_s"}`` of a set of event times, None when empty."""
    return span_of(ts_s) if ts_s.size else None


def span_of(ts_s: FloatArray) -> dict[str, float]:
    """``{"first_ts_s", "last_ts_s"}`` of a non-empty set of event times."""
    return {"first_ts_s": float(ts_s.min()), "last_ts_s": float(ts_s.max())}


def version_of(kind: str, parts: Iterable[Any], last_ts_s: float | None) -> str:
    """``<kind>-<UTC time of the newest training row>-<12 hex digits of SHA-256>``.

    The digest covers ``parts`` (arrays by dtype, shape and bytes; anything else by its
    ``repr``), so the same fit on the same data always gets the same version.
    """
    digest = hashlib.sha256(kind.encode())
    for part in parts:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        else:
            digest.update(repr(part).encode())
        digest.update(b"\x00")
    stamp = ""
    if last_ts_s is not None and math.isfinite(last_ts_s):
        stamp = dt.datetime.fromtimestamp(last_ts_s, tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-"
    return f"{kind}-{stamp}{digest.hexdigest()[:12]}"


def library_versions() -> dict[str, str]:
    """The versions an artifact's pickle depends on (scikit-learn refuses other versions)."""
    return versions.library_versions("numpy", "scikit-learn")


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
