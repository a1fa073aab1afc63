"""Recency weights for a calibration's tail: weighted conformal p-values where they decide.

A service's raw scores drift: Half-Space Trees swap their reference masses every window, the
robust baselines move, and at a 5-minute cadence a 4,096-score history spans two weeks of
them. Weighted conformal prediction (Barber, Candès, Ramdas and Tibshirani, "Conformal
prediction beyond exchangeability", Annals of Statistics 2023) keeps a p-value honest under
such drift by weighing each history score by how much it still says of today: here
``2^(-age / half_life)``, the new score weighing 1, so that
``p = (weight of the history at or above s + 1) / (total weight + 1)``.

Only the tail is weighted: the scores above the tail threshold ``u`` (the top
``tail_share`` of the history), where every decision is taken (an alert at ``p <= alpha``,
an episode's end at ``p > sqrt(alpha)``, both far below the tail's share). There the weighted
count needs, per position of the sorted tail, the weight at or above it: a few hundred
numbers a channel, where weighting the whole history would need a third array as long as
the history (+27% of a service's state). The tail's share (the weight above ``u``) scales
its generalized Pareto fit, which weighs each excess as the history does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "RECENCY",
    "WEEK_S",
    "WeightedTails",
    "half_life",
    "slot_weights",
    "sorted_weights",
    "weighted_tails",
]

FloatArray = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

RECENCY = 0.5
"""The default half-life of a score's weight, as a share of the calibration's window: the
window holds two half-lives, and its oldest scores weigh a quarter of a new one."""

WEEK_S = 7 * 86_400.0
"""The shortest half-life in event time: a pattern that recurs daily or weekly (a nightly
job's peak) keeps most of its weight until it comes again. Down-weighted within a day, a
daily peak looked new every day (the fault simulator at 30 s: its quiet days' false problems
3.25 -> 5.5 a day on seed 1, the same peaks at the same minute each day)."""


def half_life(window: int, recency: float, cadence_s: float) -> float:
    """A score's half-life in scores: ``recency`` of the window, and at least a week of
    samples at ``cadence_s``.

    Examples:
        >>> half_life(4096, 0.5, 300.0), half_life(4096, 0.5, 30.0)  # 5 minutes, 30 s
        (2048.0, 20160.0)
    """
    return max(recency * window, WEEK_S / max(cadence_s, 1e-9))


@functools.lru_cache(maxsize=16)
def _decay(window: int, half_life: float) -> tuple[FloatArray, FloatArray]:
    """The weight of each age ``0 .. window - 1``, and their running sums (read-only)."""
    by_age = np.exp2(-np.arange(window) / half_life)
    sums = np.cumsum(by_age)
    for array in (by_age, sums):
        array.setflags(write=False)
    return by_age, sums


def slot_weights(count: int, held: int, window: int, half_life: float) -> tuple[FloatArray, float]:
    """The weight of each of the first ``held`` slots of a history ring of ``window`` slots
    that ``count`` scores have been written to (the newest weighs 1), and their sum.

    Examples:
        >>> weights, total = slot_weights(count=5, held=4, window=4, half_life=1.0)
        >>> weights.tolist(), total  # slot 0 was written last
        ([1.0, 0.125, 0.25, 0.5], 1.875)
    """
    by_age, sums = _decay(window, half_life)
    if held == 0:
        return by_age[:0], 0.0
    if held < window:  # not wrapped yet: slot i is count - 1 - i scores old
        return by_age[held - 1 :: -1], float(sums[held - 1])
    # slot i is (newest - i) % window old: ages window - 1 .. 0 rolled to put 0 at the newest
    oldest_first, shift = by_age[::-1], (count - 1) % window + 1
    return np.concatenate((oldest_first[-shift:], oldest_first[:-shift])), float(sums[-1])


@dataclass(frozen=True, slots=True)
class WeightedTails:
    """Every channel's tail, weighted: what its p-values and its fit read."""

    at_least: FloatArray
    """Per channel, the weight of the history at or above each of the ``k`` top sorted
    positions, then 0 (``k + 1`` values; positions at or below ``u`` hold the weight above
    it)."""
    shares: FloatArray
    """Per channel, the weight above ``u`` over the history's."""
    excesses: list[FloatArray]
    """Per channel, the scores above ``u``, sorted, minus ``u``."""
    weights: list[FloatArray]
    """Their weights, in the same order."""


def weighted_tails(
    history: Float32Array, weights: FloatArray, total: float, u: FloatArray, k: int
) -> WeightedTails:
    """The weighted tails above ``u`` (one threshold per channel) of ``history`` (channels by
    slots, weighing ``weights`` and ``total`` in all), over their top ``k`` sorted positions.

    Examples:
        >>> tails = weighted_tails(
        ...     np.array([[5.0, 1.0, 3.0, 2.0], [1.0, 1.0, 1.0, 4.0]], dtype=np.float32),
        ...     np.array([0.25, 0.5, 1.0, 0.75]), total=2.5, u=np.array([2.0, 1.0]), k=2,
        ... )
        >>> tails.at_least.tolist(), tails.shares.tolist()
        ([[1.25, 0.25, 0.0], [0.75, 0.75, 0.0]], [0.5, 0.3])
        >>> [e.tolist() for e in tails.excesses], [w.tolist() for w in tails.weights]
        ([[1.0, 3.0], [3.0]], [[1.0, 0.25], [0.75]])
    """
    channels = history.shape[0]
    above = history > u.astype(np.float32)[:, None]
    at_least = np.zeros((channels, k + 1))
    shares = np.zeros(channels)
    excesses: list[FloatArray] = []
    tail_weights: list[FloatArray] = []
    for j in range(channels):
        slots = np.flatnonzero(above[j])
        values = history[j].take(slots)
        order = values.argsort(kind="stable")
        values, w = values.take(order), weights.take(slots.take(order))
        m = values.size  # at most k: the rest of the top k ties u
        if m:
            suffix = np.cumsum(w[::-1])[::-1]
            at_least[j, k - m : k] = suffix
            at_least[j, : k - m] = suffix[0]
            shares[j] = suffix[0] / total
        excesses.append(values.astype(np.float64) - u[j])
        tail_weights.append(w)
    return WeightedTails(at_least, shares, excesses, tail_weights)


def sorted_weights(
    history: Float32Array, weights: FloatArray | None
) -> tuple[Float32Array, Float32Array | None]:
    """Each channel's ``history`` sorted, and the weight at or above each sorted position
    then 0 (None without weights)."""
    if weights is None:
        return np.sort(history, axis=1), None
    order = np.argsort(history, axis=1, kind="stable")
    at_least = np.zeros((history.shape[0], history.shape[1] + 1), dtype=np.float32)
    at_least[:, :-1] = np.cumsum(weights[order][:, ::-1], axis=1)[:, ::-1]
    return np.take_along_axis(history, order, axis=1), at_least
