"""Generalized Pareto fits to a calibration's tail: probability-weighted moments, closed
form (Hosking & Wallis 1987), with equal weights or with each excess weighed."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["TailShapes", "fit_gpd"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# PWM is reliable for xi < 0.5. xi < 0 (a tail with an end point) is not allowed: fitted on a
# few hundred excesses its end point lands inside the range of real values, and everything past
# it would be called impossible; an exponential tail (xi = 0) is the conservative bound.
_XI_MIN, _XI_MAX = 0.0, 0.5


def _is_sorted(a: FloatArray) -> bool:
    return bool(a.size < 2 or (a[1:] >= a[:-1]).all())


@functools.lru_cache(maxsize=64)
def _falling(k: int) -> FloatArray:
    """``1 - F`` at each of ``k`` ordered values: 1 down to 0 (read-only, shared)."""
    out = np.linspace(1.0, 0.0, k)
    out.setflags(write=False)
    return out


def fit_gpd(excesses: FloatArray, weights: FloatArray | None = None) -> tuple[float, float]:
    """Shape ``xi`` and scale ``sigma`` of a generalized Pareto fit to positive excesses.

    Probability-weighted moments: with ``a0 = E[Y]`` and ``a1 = E[Y (1 - F(Y))]``, a GPD has
    ``a0 = sigma / (1 - xi)`` and ``a1 = sigma / (2 (2 - xi))``, so ``xi = (R - 2) / (R - 1)``
    with ``R = a0 / (2 a1)``. ``xi`` is clipped to ``[0, 0.5]``. Excesses of fewer than
    three distinct values (a quantized tail) give ``sigma = 0``: a point mass, nothing is
    expected beyond the largest. ``weights`` (of sorted excesses; None: equal) weigh each
    excess in both moments, and ``1 - F`` is the weight above it (equal weights: the same
    fit).

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> xi, sigma = fit_gpd(np.sort(rng.exponential(2.0, 20_000)))
        >>> round(xi, 1) + 0.0, round(sigma, 1)
        (0.0, 2.0)
        >>> fit_gpd(np.zeros(5))
        (0.0, 0.0)
        >>> y = np.sort(rng.pareto(4.0, 2_000))
        >>> [round(v, 6) for v in fit_gpd(y, np.full(y.size, 0.5))] == [
        ...     round(v, 6) for v in fit_gpd(y)
        ... ]
        True
    """
    k = excesses.size
    if weights is not None:
        return _fit_weighted(excesses, weights)
    a0 = float(excesses.mean()) if k else 0.0
    ordered = excesses if _is_sorted(excesses) else np.sort(excesses)
    if k < 2 or a0 <= 0.0 or np.count_nonzero(ordered[1:] - ordered[:-1]) < 2:  # np.diff
        return 0.0, 0.0  # a point mass (or a few values): nothing beyond the largest
    return _shape_and_scale(a0, float(ordered @ _falling(k)) / k)


def _fit_weighted(ordered: FloatArray, weights: FloatArray) -> tuple[float, float]:
    """:func:`fit_gpd` of sorted excesses with weights."""
    k = ordered.size
    total = float(np.add.reduce(weights)) if k else 0.0
    a0 = float(ordered @ weights) / total if k else 0.0
    if k < 2 or a0 <= 0.0 or np.count_nonzero(ordered[1:] - ordered[:-1]) < 2:
        return 0.0, 0.0
    above = total - np.cumsum(weights)  # the weight above each
    above /= above[0]  # 1 - F: 1 down to 0, as _falling
    return _shape_and_scale(a0, float((ordered * above) @ weights) / total)


def _shape_and_scale(a0: float, a1: float) -> tuple[float, float]:
    """The GPD's ``xi`` and ``sigma`` from its first two probability-weighted moments."""
    if a1 <= 0.0:
        return _XI_MIN, a0 * (1.0 - _XI_MIN)
    ratio = a0 / (2.0 * a1)
    xi = _XI_MIN if ratio <= 1.0 else (ratio - 2.0) / (ratio - 1.0)
    xi = min(_XI_MAX, max(_XI_MIN, xi))
    return xi, a0 * (1.0 - xi)


@dataclass(frozen=True, slots=True)
class TailShapes:
    """Per channel, from the fits of one refresh: its tail's kind, scale and shape made safe
    to divide by, and the power of its survival function."""

    refreshes: int
    kinds: str
    """``exponential`` (every tail), ``pareto`` (every tail) or ``mixed``."""
    exponential: BoolArray
    point: BoolArray | None
    """The channels with nothing ever above their threshold (None: none)."""
    sigma: FloatArray
    xi: FloatArray
    power: FloatArray
    """``-1 / xi``."""

    @classmethod
    def of(cls, refreshes: int, xi: FloatArray, sigma: FloatArray) -> TailShapes:
        """The shapes of the fits ``xi`` and ``sigma`` (one per channel)."""
        exponential = np.abs(xi) < 1e-9
        point = sigma <= 0.0
        safe_xi = np.where(exponential, 1.0, xi)
        flat = np.count_nonzero(exponential)  # exponential tails
        kinds = "pareto" if not flat else "mixed" if flat < exponential.size else "exponential"
        return cls(
            refreshes, kinds, exponential, point if np.count_nonzero(point) else None,
            np.where(point, 1.0, sigma), safe_xi, -1.0 / safe_xi,
        )  # fmt: skip

    def tail_probabilities(self, y: FloatArray, tail_p: FloatArray) -> FloatArray:
        """Each channel's tail probability of excesses ``y`` (rows by channels) over its
        threshold, the tail holding ``tail_p`` of the history. A channel with nothing ever
        above its threshold is a point mass there: 0."""
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            if self.kinds == "exponential":  # every channel's tail (np.where would pick these)
                survival = np.exp(-y / self.sigma)
            else:
                base = np.maximum(1.0 + self.xi * y / self.sigma, 0.0)
                survival = np.power(base, self.power)
                if self.kinds == "mixed":
                    survival = np.where(self.exponential, np.exp(-y / self.sigma), survival)
        out: FloatArray = tail_p * survival
        return out if self.point is None else np.where(self.point, 0.0, out)
