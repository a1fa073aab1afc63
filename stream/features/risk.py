"""Incident-risk feature vectors: one per service per step of event time (pure).

A risk vector summarises one service's step (default one minute) of metric events:

- ``z:<metric>``: the step's mean value against the service's own trailing baseline (median
  and MAD of its last ``baseline_steps`` step means, default six hours), as a robust z-score,
  log-compressed (``sign(z)·log1p(|z|)``: an incident's z of 200 should not swamp a
  precursor's 3 in a linear model). 0 until ``min_baseline_steps`` steps are known;
- ``dz:<metric>``: that value now minus ``trend_steps`` steps ago: slow creep and drift;
- ``anomaly_ratio``: the step's highest anomaly score over its threshold (0 while warming up);
- ``anomaly_flagged``: the share of the step's events that reached their threshold;
- ``deploy_recent``: the share of the step's events sent with ``deploy_recent``;
- ``log_ratio``, ``log_new_error_templates``: the service's latest closed log window, if any.

Why a trailing baseline rather than the anomaly model's z-scores: that model keeps learning
and its seasonal baseline needs a day per bucket, so a drift that builds over half an hour (the
usual precursor) fades from its z while it builds. Measured on the incident simulator (12
services, 3 days, prequential, see docs/incident_risk.md), the trailing z-scores carry the
signal; the anomaly model's z-scores as extra features added PR-AUC 0.161 → 0.167 at a
third more cost per vector, so they are left out (its score ratio stays).

A step's vector is emitted when the service's first event of a later step arrives, so
vectors follow event time alone: replay and live detection build the same ones.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.anomaly import Deviations
from stream.schemas import Evidence

__all__ = ["RiskFeatureBuilder", "RiskVector", "compress"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RiskVector:
    """One service's step, summarised for the incident-risk model."""

    service: str
    ts_s: float
    """Event time of the step's last event."""
    features: dict[str, float]
    locate: Callable[[], Evidence]
    """Where the step's last event is stored (asked only when the vector alerts)."""

    @property
    def evidence(self) -> Evidence:
        """Where the step's last event is stored."""
        return self.locate()


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


_REFRESH_STEPS = 30
"""The trailing baseline's median and MAD are recomputed every this many steps."""


@functools.cache
def _feature_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """``z:``, ``dz:`` and ``az:`` names of a feature set, built once per set."""
    return tuple(f"{prefix}:{n}" for prefix in ("z", "dz") for n in names)


class _Step:
    """Running sums of one service's current step."""

    __slots__ = (
        "count",
        "deploys",
        "flagged",
        "index",
        "last_row",
        "last_ts",
        "locate",
        "names",
        "ratio",
        "v_count",
        "v_sum",
    )

    def __init__(self, index: int, names: tuple[str, ...]) -> None:
        self.index = index
        self.names = names
        self.v_sum: list[float] = []
        self.v_count: list[float] = []
        self.count = 0
        self.ratio = 0.0
        self.flagged = 0
        self.deploys = 0
        self.last_ts = 0.0
        self.locate: Callable[[int], Evidence] | None = None
        self.last_row = 0


class _Service:
    """One service's open step, its trailing step means, recent z-scores and log window."""

    __slots__ = ("baseline", "center", "filled", "history", "log", "names", "scale", "step")

    def __init__(self) -> None:
        self.step: _Step | None = None
        self.names: tuple[str, ...] = ()
        self.baseline: npt.NDArray[np.float32] = np.empty((0, 0), dtype=np.float32)
        """Ring of the last step means (float32: a baseline needs no more)."""
        self.filled = 0
        self.center: list[float] | None = None
        self.scale: list[float] = []
        self.history: list[list[float]] = []
        self.log: dict[str, float] = {}

    def reset(self, names: tuple[str, ...], steps: int) -> None:
        """A new feature set: the baseline and trend start again."""
        self.names = names
        self.baseline = np.full((steps, len(names)), np.nan, dtype=np.float32)
        self.filled = 0
        self.center = None
        self.history = []


class RiskFeatureBuilder:
    """Builds risk vectors from the metric pipeline's per-service verdicts.

    Args:
        step_s: Event-time length of a step; one vector per service per step.
        trend_steps: How many steps back ``dz:`` features compare with.

    Examples:
        >>> builder = RiskFeatureBuilder(step_s=60.0, trend_steps=2)
        >>> ev = Evidence(topic="t", partition=0, offset=0)
        >>> def rows(t, z, value):
        ...     dev = Deviations(0, 1, ("cpu",), np.array([[z]]), np.array([[value]]))
        ...     return builder.add("api", np.array([t]), [dev], np.array([0.5]),
        ...                        np.array([False]), np.array([False]), lambda i: ev)
        >>> [rows(t, z, 50.0) for t, z in [(0, 1.0), (30, 1.0), (60, 3.0)]][:2]
        [[], []]
        >>> (vector,) = rows(120, 9.0, 50.0)
        >>> vector.ts_s, vector.features["z:cpu"], vector.features["anomaly_ratio"]
        (60.0, 0.0, 0.5)
    """

    def __init__(
        self,
        *,
        step_s: float = 60.0,
        trend_steps: int = 15,
        baseline_steps: int = 360,
        min_baseline_steps: int = 30,
    ) -> None:
        if step_s <= 0 or trend_steps < 1 or not 1 <= min_baseline_steps <= baseline_steps:
            raise ValueError(
                "need step_s > 0, trend_steps >= 1 and 1 <= min_baseline_steps <= baseline_steps"
            )
        self.step_s = step_s
        self.trend_steps = trend_steps
        self.baseline_steps = baseline_steps
        self.min_baseline_steps = min_baseline_steps
        self._services: dict[str, _Service] = {}

    def __len__(self) -> int:
        return len(self._services)

    def add(
        self,
        service: str,
        ts_s: FloatArray,
        deviations: Sequence[Deviations],
        ratios: FloatArray,
        flagged: npt.NDArray[np.bool_],
        deploys: npt.NDArray[np.bool_],
        evidence: Callable[[int], Evidence],
    ) -> list[RiskVector]:
        """Fold one service's rows of a batch in; return the vectors of the steps they closed.

        Args:
            service: The service.
            ts_s: Event time of each row, in order.
            deviations: The rows' z-scores (row ranges relative to these rows).
            ratios: Each row's anomaly score over its threshold (0 while warming up).
            flagged: Whether each row's score reached its threshold.
            deploys: Whether each row was sent with ``deploy_recent``.
            evidence: Where row ``i`` is stored (asked only for a step's last row, and only if
                its vector alerts: it must stay valid until then).
        """
        state = self._services.get(service)
        if state is None:
            state = self._services[service] = _Service()
        ts_s = np.asarray(ts_s, dtype=np.float64)
        steps = np.floor_divide(ts_s, self.step_s).astype(np.int64)
        # An event older than the open step (out of order) joins it: steps never go back.
        if state.step is not None and len(steps):
            steps[0] = max(int(steps[0]), state.step.index)
        np.maximum.accumulate(steps, out=steps)
        out: list[RiskVector] = []
        for dev in deviations:
            # Steps only go forward, so each step's rows are one run: sum every run at once.
            seg = steps[dev.start : dev.end]
            starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
            ends = np.r_[starts[1:], len(seg)]
            v_sums = np.add.reduceat(dev.values, starts, axis=0).tolist()
            if math.isnan(sum(map(math.fsum, v_sums))):  # a value was missing: count the rest
                present = ~np.isnan(dev.values)
                v_sums = np.add.reduceat(
                    np.where(present, dev.values, 0.0), starts, axis=0
                ).tolist()
                v_counts = np.add.reduceat(present, starts, axis=0).tolist()
            else:
                lengths = (ends - starts).tolist()
                width = len(dev.names)
                v_counts = [[float(n)] * width for n in lengths]
            at = dev.start + starts
            ratio_max = np.maximum.reduceat(ratios[dev.start : dev.end], starts).tolist()
            flags = np.add.reduceat(flagged[dev.start : dev.end], starts).tolist()
            deploy_counts = np.add.reduceat(deploys[dev.start : dev.end], starts).tolist()
            last_ts = ts_s[dev.start + ends - 1].tolist()
            for r, (index, a, b) in enumerate(
                zip(seg[starts].tolist(), at.tolist(), (dev.start + ends).tolist(), strict=True)
            ):
                step = state.step
                if step is not None and (step.index != index or step.names != dev.names):
                    out.append(self._close(service, state, step))
                    step = None
                if step is None:  # the usual case in a backlog: a run is a whole step
                    step = state.step = _Step(index, dev.names)
                    step.v_sum, step.v_count = v_sums[r], v_counts[r]
                else:
                    step.v_sum = [x + y for x, y in zip(step.v_sum, v_sums[r], strict=True)]
                    step.v_count = [x + y for x, y in zip(step.v_count, v_counts[r], strict=True)]
                step.count += b - a
                step.ratio = max(step.ratio, ratio_max[r])
                step.flagged += int(flags[r])
                step.deploys += int(deploy_counts[r])
                step.last_ts = last_ts[r]
                step.locate, step.last_row = evidence, b - 1
        return out

    def set_log_window(self, service: str, ratio: float, new_error_templates: int) -> None:
        """The service's latest closed log window: its score over threshold and new errors."""
        state = self._services.get(service)
        if state is None:
            state = self._services[service] = _Service()
        state.log = {
            "log_ratio": min(ratio, 10.0) if math.isfinite(ratio) else 0.0,
            "log_new_error_templates": float(new_error_templates),
        }

    def forget(self, service: str) -> None:
        """Drop a service's state (its partition went to another detector)."""
        self._services.pop(service, None)

    def _close(self, service: str, state: _Service, step: _Step) -> RiskVector:
        # A handful of values per vector: plain floats are cheaper here than numpy calls.
        state.step = None
        if state.names != step.names:
            state.reset(step.names, self.baseline_steps)
        mean = [
            total / n if n else math.nan for total, n in zip(step.v_sum, step.v_count, strict=True)
        ]
        z = self._trailing_z(state, mean)
        state.baseline[state.filled % self.baseline_steps] = mean
        state.filled += 1
        past = state.history[0] if state.history else z
        state.history.append(z)
        if len(state.history) > self.trend_steps:
            del state.history[0]
        trend = [now - then for now, then in zip(z, past, strict=True)]
        features = dict(zip(_feature_names(step.names), z + trend, strict=True))
        features["anomaly_ratio"] = min(step.ratio, 10.0)
        features["anomaly_flagged"] = step.flagged / step.count
        features["deploy_recent"] = step.deploys / step.count
        features.update(state.log)
        assert step.locate is not None
        return RiskVector(
            service, step.last_ts, features, functools.partial(step.locate, step.last_row)
        )

    def _trailing_z(self, state: _Service, mean: list[float]) -> list[float]:
        """Robust z-scores of ``mean`` against the trailing step means, log-compressed.

        The baseline (median, scale) moves slowly: it is recomputed every ``_REFRESH_STEPS``
        steps, not at each.
        """
        known = min(state.filled, self.baseline_steps)
        if known < self.min_baseline_steps:
            return [0.0] * len(mean)
        if state.center is None or state.filled % _REFRESH_STEPS == 0:
            window = state.baseline[:known].astype(np.float64)
            if np.isnan(window).any():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no baseline
                    median = np.nanmedian(window, axis=0)
                    mad = np.nanmedian(np.abs(window - median), axis=0)
            else:  # the usual case, ten times faster
                median = np.median(window, axis=0)
                mad = np.median(np.abs(window - median), axis=0)
            state.center = median.tolist()
            state.scale = np.maximum(1.4826 * mad, 1e-3 * np.abs(median) + 1e-9).tolist()
        out = []
        for value, center, scale in zip(mean, state.center, state.scale, strict=True):
            z = _compress((value - center) / scale)
            out.append(z if math.isfinite(z) else 0.0)
        return out
