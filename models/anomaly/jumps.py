"""Sudden changes: how far each metric stepped from its previous sample.

The residual from the seasonal baseline says how far a value is from the usual level at this
time of day; a metric whose level wanders (load drifting for an hour) makes that spread wide,
and a sharp step inside it looks ordinary. The step from the previous sample, in robust sds of
the metric's own steps, sees it: the first difference is the classic spike and jump detector,
and it needs no baseline at all. :class:`Jumps` keeps each metric's last value and a robust
scaler of its steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from models.anomaly.scaling import RobustScaler

__all__ = ["Jumps"]

FloatArray = npt.NDArray[np.float64]


class Jumps:
    """Each metric's step from its previous sample, as a robust z-score of its steps.

    Args:
        window: Recent steps per metric that define their spread.
        refresh_every: Refresh the spreads at least this often (in learned rows).

    Examples:
        >>> jumps = Jumps(window=64)
        >>> X = np.array([[10.0], [11.0], [10.0], [11.0], [10.0], [11.0], [10.0], [11.0]] * 4)
        >>> steps = jumps.steps(X, ("rps",))
        >>> jumps.learn(steps, ("rps",)); jumps.advance(X, ("rps",))
        >>> z, _ = jumps.z(jumps.steps(np.array([[30.0]]), ("rps",)), ("rps",))
        >>> round(float(z[0, 0]), 1)
        9.0
    """

    def __init__(self, window: int = 1024, refresh_every: int = 256) -> None:
        self._scaler = RobustScaler(window=window, refresh_every=refresh_every)
        self._last: dict[str, float] = {}

    def nbytes(self) -> int:
        """Bytes held by the step windows."""
        return self._scaler.nbytes()

    def rows_to_refresh(self) -> int:
        """Rows that can be learned before the steps' spread next changes (at least 1)."""
        return self._scaler.rows_to_refresh()

    def steps(self, X: FloatArray, names: Sequence[str]) -> FloatArray:
        """Each value minus the metric's last present value before it; NaN where the value
        is missing or none came before."""
        previous = np.array([self._last.get(n, np.nan) for n in names])
        filled = np.vstack([previous[None, :], X])
        if not np.isnan(X).any():  # every value present: the row before is the last one
            diffs: FloatArray = np.diff(filled, axis=0)
            return diffs
        index = np.where(np.isnan(filled), 0, np.arange(filled.shape[0])[:, None])
        np.maximum.accumulate(index, axis=0, out=index)  # the last present row, per column
        carried = np.take_along_axis(filled, index, axis=0)
        out: FloatArray = X - carried[:-1]
        return out

    def z(self, steps: FloatArray, names: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """Robust z-scores of the steps (0 where missing) and their spreads."""
        z, _ = self._scaler.scale(steps, names)
        return z, self._scaler.scales(names)

    def learn(self, steps: FloatArray, names: Sequence[str]) -> None:
        """Learn steps (at most :meth:`rows_to_refresh` rows for one-at-a-time exactness)."""
        self._scaler.learn(steps, names)

    def advance(self, X: FloatArray, names: Sequence[str]) -> None:
        """Remember each metric's last present value of these rows."""
        if X.shape[0] == 0:
            return
        last = X[-1]
        if not np.isnan(last).any():  # the last row has every value
            self._last.update(zip(names, last.tolist(), strict=True))
            return
        present = ~np.isnan(X)
        for j, name in enumerate(names):
            rows = np.flatnonzero(present[:, j])
            if rows.size:
                self._last[name] = float(X[rows[-1], j])

    def set_floors(self, floors: Mapping[str, float]) -> None:
        """Step spreads never below the metrics' quanta."""
        self._scaler.set_floors(floors)
