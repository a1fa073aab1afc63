"""A segment's rows read against the baselines as they stand (nothing learned): values as
scored, seasonal residuals, robust z-scores from the nearer level, steps and jumps, in the
directions that alert. :mod:`~models.anomaly.segment` decides and learns from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.anomaly.counters import CounterRates
from models.anomaly.jumps import Jumps
from models.anomaly.scaling import RobustScaler
from models.anomaly.seasonal import SeasonalBaseline
from models.anomaly.shifts import LevelShifts

__all__ = ["Reading", "SegmentRows", "read_rows"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class SegmentRows:
    """A segment's rows as they came: values, event times and what is known of them."""

    raw: FloatArray
    """Rows by features (NaN where missing)."""
    ts: FloatArray
    """Event times, seconds."""
    buckets: IntArray | None
    """Season buckets of the event times (None without seasons)."""
    complete: bool
    """``raw`` holds no NaN."""

    @classmethod
    def of_run(
        cls, raw: FloatArray, ts: FloatArray, seasonal: SeasonalBaseline | None
    ) -> SegmentRows:
        """A run's rows: whether a value is missing and the season buckets, found once."""
        buckets = seasonal.bucket_of(ts) if seasonal is not None else None
        return cls(raw, ts, buckets, not np.count_nonzero(np.isnan(raw)))

    def part(self, start: int, stop: int) -> SegmentRows:
        """Rows ``start:stop``."""
        rows = slice(start, stop)
        buckets = self.buckets[rows] if self.buckets is not None else None
        return SegmentRows(self.raw[rows], self.ts[rows], buckets, self.complete)


@dataclass(slots=True)
class Reading:
    """A segment's rows against the baselines, rows by features (all of the model's
    features, a candidate's included)."""

    raw: FloatArray
    """The values as they came (NaN where missing)."""
    values: FloatArray
    """As scored: monotone counters as rates."""
    residual: FloatArray
    """``values`` minus their seasonal baselines (``values`` without seasons)."""
    baselines: FloatArray | None
    """The values' seasonal baselines (None without seasons)."""
    medians: FloatArray
    """The residuals' medians, one per feature."""
    z_raw: FloatArray
    """Robust z from the current level."""
    z_eff: FloatArray
    """Robust z from the nearer of the current and the remembered previous level."""
    z_prev: FloatArray | None
    """Robust z from the previous level (NaN where none), None when none is remembered."""
    steps: FloatArray
    """Each value minus the feature's previous one."""
    signs: FloatArray
    """The direction that alerts, per feature: +1 rises, -1 drops, 0 both."""
    z: FloatArray
    """``z_eff`` in the directions that alert (0 against them)."""
    jumps: FloatArray
    """Steps in robust sds of the feature's steps, where they land off the expected value on
    their own side and in a direction that alerts (0 elsewhere)."""
    complete: tuple[bool, bool, bool] = (False, False, False)
    """Whether ``values``, ``residual`` and ``steps`` hold no NaN (False: not known)."""

    @property
    def expected(self) -> FloatArray:
        """Each value's expected value: seasonal baseline plus the residuals' median (found
        when asked: only episodes and explanations read it)."""
        if self.baselines is None:
            return np.broadcast_to(self.medians, self.values.shape)
        out: FloatArray = self.baselines + self.medians
        return out

    @property
    def deviations(self) -> FloatArray:
        """Each value's distance from its expected value, in the metric's units."""
        out: FloatArray = self.values - self.expected
        return out


def read_rows(
    rows: SegmentRows,
    names: tuple[str, ...],
    signs: FloatArray,
    *,
    counters: CounterRates,
    seasonal: SeasonalBaseline | None,
    scaler: RobustScaler,
    jumps: Jumps,
    shifts: LevelShifts,
) -> Reading:
    """Read ``rows`` (over ``names``) against the baselines as they stand; nothing is
    learned."""
    raw, ts = rows.raw, rows.ts
    values = counters.transform(raw, ts, names, commit=False)
    complete = rows.complete and values is raw  # counters may hold values back (NaN)
    if seasonal is not None:
        assert rows.buckets is not None
        baselines, gaps = seasonal.baselines_at(rows.buckets, names)
        residual = values - baselines
        residual_complete = complete and not gaps
    else:
        baselines, residual, residual_complete = None, values, complete
    z_raw, medians, scales = scaler.standardize(residual, names, complete=residual_complete)
    steps, steps_complete = jumps.steps_of(values, names, complete=complete)
    jump_z, _ = jumps.z(steps, names, complete=steps_complete)
    z_eff, z_prev = shifts.effective(z_raw, names, scales)
    # A step counts when it lands off the expected value on its own side: a step back
    # towards the baseline is a recovery, not a new problem.
    # (Same signs, compared by their signs: 1e300-sized values would overflow a product.)
    away = np.sign(jump_z) * np.sign(z_eff) > 0.0
    z = z_eff
    if np.count_nonzero(signs):  # directional's arithmetic, its own test made here once
        z = np.where(z_eff * signs < 0.0, 0.0, z_eff)
        jump_z = np.where(jump_z * signs < 0.0, 0.0, jump_z)
    return Reading(
        raw=raw,
        values=values,
        residual=residual,
        baselines=baselines,
        medians=medians,
        z_raw=z_raw,
        z_eff=z_eff,
        z_prev=z_prev,
        steps=steps,
        signs=signs,
        z=z,
        jumps=np.where(away, np.abs(jump_z), 0.0),
        complete=(complete, residual_complete, steps_complete),
    )
