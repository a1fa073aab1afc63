"""Closed steps become risk vectors: each step's mean per metric against the service's
trailing baseline (a compressed robust z), its trend and smoothed level, the shares of
anomalous and deploy events, and the latest log window.

Each service's baseline and trend history are kept step by step (a refresh of the baseline
must see the steps closed before it); the values are then computed per feature set as
matrices.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.incident import FeatureRow
from stream.core.features.risk_steps import Closed, ServiceSteps, labels_at
from stream.schemas import Evidence

__all__ = ["RiskVector", "StepVectors", "compress"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RiskVector:
    """One service's step, summarised for the incident-risk model."""

    service: str
    ts_s: float
    """Event time of the step's last event."""
    features: FeatureRow
    """The features (a read-only mapping over one row; ``features.to_dict()`` for a dict)."""
    locate: Callable[[], Evidence]
    """Where the step's last event is stored (asked only when the vector alerts)."""
    labels_of: Callable[[], dict[str, str]] = dict
    """The labels of the step's last event (asked only when the vector alerts)."""
    closed_by: int = -1
    """The batch row whose event closed the step (the service's first event of a later
    step): where the vector stands in its partition's order of events."""

    @property
    def evidence(self) -> Evidence:
        """Where the step's last event is stored."""
        return self.locate()

    @property
    def labels(self) -> dict[str, str]:
        """The step's last event's labels (``region``, ``host``, ``deploy_recent``)."""
        return self.labels_of()


def _compress(z: float) -> float:
    """:func:`compress` of one value (NaN stays NaN)."""
    return math.copysign(math.log1p(abs(z)), z)


def compress(z: FloatArray) -> FloatArray:
    """``sign(z)·log1p(|z|)``: keeps order and sign, tames the tails.

    Examples:
        >>> compress(np.array([0.0, 1.0, -200.0])).round(3).tolist()
        [0.0, 0.693, -5.303]
    """
    return np.sign(z) * np.log1p(np.abs(z))


def _compress_finite(z: FloatArray) -> FloatArray:
    """:func:`_compress` of every value, non-finite results as 0.

    ``math.log1p`` value by value: numpy's vectorised log1p may differ in the last bit, and
    vectors must not depend on the CPU numpy runs on.
    """
    logs = np.fromiter(map(math.log1p, np.abs(z).ravel().tolist()), np.float64, z.size)
    out = np.copysign(logs.reshape(z.shape), z)
    out[~np.isfinite(out)] = 0.0
    return out


def _column_medians(values: FloatArray) -> FloatArray:
    """``np.median(values, axis=0)`` for values without NaN, bit for bit, at half its cost
    (the same partition and mean of the middle two, without its generic checks).

    Examples:
        >>> _column_medians(np.array([[1.0, 4.0], [3.0, 2.0], [2.0, 9.0], [7.0, 0.0]])).tolist()
        [2.5, 3.0]
    """
    n = values.shape[0]
    k = n // 2
    if n % 2:
        middle: FloatArray = np.partition(values, k, axis=0)[k]
        return middle
    parted = np.partition(values, (k - 1, k), axis=0)
    out: FloatArray = (parted[k - 1] + parted[k]) / 2
    return out


_REFRESH_STEPS = 30
"""The trailing baseline's median and MAD are recomputed every this many steps."""

_SHARES = ("anomaly_ratio", "anomaly_flagged", "deploy_recent")
_LOG_FEATURES = 2  # log_ratio, log_new_error_templates (when the service has a log window)


@functools.cache
def _feature_names(
    names: tuple[str, ...], log: tuple[str, ...], smooth: bool = True
) -> tuple[str, ...]:
    """A vector's names for a feature set (and log features), built once per set."""
    prefixes = ("z", "dz", "sz") if smooth else ("z", "dz")
    return (*(f"{prefix}:{n}" for prefix in prefixes for n in names), *_SHARES, *log)


@dataclass(frozen=True, slots=True)
class StepVectors:
    """Makes the vectors of closed steps (see :class:`~stream.core.features.risk.RiskFeatureBuilder`
    for what the settings mean)."""

    trend_steps: int
    smooth_steps: int
    baseline_steps: int
    min_baseline_steps: int

    def close_all(self, closes: list[Closed]) -> list[RiskVector]:
        """The vectors of closed steps, in order: each service's baseline and trend history
        are kept step by step, the values are computed per feature set as matrices."""
        sets: dict[tuple[str, ...], list[int]] = {}
        for j, close in enumerate(closes):
            sets.setdefault(close.step.names, []).append(j)
        means = _step_means(closes, sets)
        baselines, fresh = self._baselines(closes, means)
        z_rows = _z_rows(len(closes), sets, means, baselines)
        past_rows, smooth_rows = self._trends(closes, z_rows, fresh)
        k = self.smooth_steps
        vectors: list[RiskVector] = [None] * len(closes)  # type: ignore[list-item]
        for names, members in sets.items():
            width = len(names)
            steps = [closes[j].step for j in members]
            counts = np.array([s.count for s in steps], dtype=np.float64)
            blocks = 3 if k else 2
            rows = np.empty((len(members), blocks * width + len(_SHARES) + _LOG_FEATURES))
            rows[:, :width] = np.array([z_rows[j] for j in members])
            np.subtract(
                rows[:, :width],
                np.array([past_rows[j] for j in members]),
                out=rows[:, width : 2 * width],
            )
            if k:
                rows[:, 2 * width : 3 * width] = np.array([smooth_rows[j] for j in members])
            at = blocks * width
            rows[:, at] = np.minimum([s.ratio for s in steps], 10.0)
            rows[:, at + 1] = np.array([s.flagged for s in steps], np.float64) / counts
            rows[:, at + 2] = np.array([s.deploys for s in steps], np.float64) / counts
            used = at + len(_SHARES)
            for i, j in enumerate(members):
                service, state, step, closed_by = closes[j]
                log = state.log
                if log:
                    rows[i, used : used + len(log)] = list(log.values())
                row = rows[i, : used + len(log)]
                assert step.locate is not None
                vectors[j] = RiskVector(
                    service,
                    step.last_ts,
                    FeatureRow(_feature_names(names, tuple(log), bool(k)), row),
                    functools.partial(step.locate, step.last_row),
                    functools.partial(labels_at, step.locate, step.last_row),
                    closed_by,
                )
        return vectors

    def _baselines(
        self, closes: list[Closed], means: list[FloatArray]
    ) -> tuple[list[tuple[FloatArray, FloatArray] | None], list[bool]]:
        """Step by step (a refresh of the baseline must see the steps closed before it):
        each step's baseline (center, scale; None while too few steps are known), and whether
        its service's feature set changed (its history starts over)."""
        baselines: list[tuple[FloatArray, FloatArray] | None] = [None] * len(closes)
        fresh = [False] * len(closes)
        ring = self.baseline_steps
        for j, (_, state, step, _) in enumerate(closes):
            if state.names != step.names:
                state.reset(step.names, ring)
                fresh[j] = True
            known = min(state.filled, ring)
            if known >= self.min_baseline_steps:
                if state.center is None or state.filled % _REFRESH_STEPS == 0:
                    self._refresh(state, known)
                assert state.center is not None
                baselines[j] = (state.center, state.scale)
            state.baseline[state.filled % ring] = means[j]
            state.filled += 1
        return baselines, fresh

    def _trends(
        self, closes: list[Closed], z_rows: list[FloatArray], fresh: list[bool]
    ) -> tuple[list[FloatArray], list[FloatArray]]:
        """Step by step again: each step's z-scores ``trend_steps`` steps ago (``dz`` is now
        minus those) and their mean over the last ``smooth_steps``."""
        past_rows: list[FloatArray] = [np.empty(0)] * len(closes)
        smooth_rows: list[FloatArray] = [np.empty(0)] * len(closes)
        k = self.smooth_steps
        for j, (_, state, _, _) in enumerate(closes):
            if fresh[j]:
                state.history = []
            history, z_row = state.history, z_rows[j]
            past_rows[j] = history[0] if history else z_row
            history.append(z_row)
            if len(history) > self.trend_steps:
                del history[0]
            if k:
                recent = history[-k:]
                smooth_rows[j] = sum(recent[1:], recent[0]) / len(recent)
        return past_rows, smooth_rows

    def _refresh(self, state: ServiceSteps, known: int) -> None:
        """The trailing baseline's median and scale (MAD), from the ``known`` step means held.

        The baseline moves slowly: it is recomputed every ``_REFRESH_STEPS`` steps, not at
        each.
        """
        window = state.baseline[:known].astype(np.float64)
        if np.isnan(window).any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no baseline
                median = np.nanmedian(window, axis=0)
                mad = np.nanmedian(np.abs(window - median), axis=0)
        else:  # the usual case, ten times faster
            median = _column_medians(window)
            mad = _column_medians(np.abs(window - median))
        state.center = median
        state.scale = np.maximum(1.4826 * mad, 1e-3 * np.abs(median) + 1e-9)


def _step_means(closes: list[Closed], sets: dict[tuple[str, ...], list[int]]) -> list[FloatArray]:
    """Each closed step's mean per feature (NaN where no value came), one matrix per set."""
    means: list[FloatArray] = [np.empty(0)] * len(closes)
    for members in sets.values():
        v_sum = np.array([closes[j].step.v_sum for j in members])
        v_count = np.array([closes[j].step.v_count for j in members])
        mean = np.full(v_sum.shape, math.nan)
        np.divide(v_sum, v_count, out=mean, where=v_count != 0)
        for j, row in zip(members, mean, strict=True):
            means[j] = row
    return means


def _z_rows(
    n: int,
    sets: dict[tuple[str, ...], list[int]],
    means: list[FloatArray],
    baselines: list[tuple[FloatArray, FloatArray] | None],
) -> list[FloatArray]:
    """Each step's compressed z-scores against its baseline (0 while it has none)."""
    z_rows: list[FloatArray] = [np.empty(0)] * n
    for names, members in sets.items():
        z = np.zeros((len(members), len(names)))
        known = [(i, b) for i, j in enumerate(members) if (b := baselines[j]) is not None]
        if known:
            center = np.array([b[0] for _, b in known])
            scale = np.array([b[1] for _, b in known])
            mean = np.array([means[members[i]] for i, _ in known])
            z[[i for i, _ in known]] = _compress_finite((mean - center) / scale)
        for j, row in zip(members, z, strict=True):
            z_rows[j] = row
    return z_rows
