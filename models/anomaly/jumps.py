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

from models.anomaly.memo import Memo, memo_of
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

    _memo: Memo | None = None

    def __init__(self, window: int = 1024, refresh_every: int = 256) -> None:
        self._scaler = RobustScaler(window=window, refresh_every=refresh_every)
        self._last: dict[str, float] = {}

    def nbytes(self) -> int:
        """Bytes held by the step windows."""
        return self._scaler.nbytes()

    def rows_to_refresh(self) -> int:
        """Rows that can be learned before the steps' spread next changes (at least 1)."""
        return self._scaler.rows_to_refresh()

    def steps(self, X: FloatArray, names: Sequence[str], *, complete: bool = False) -> FloatArray:
        """Each value minus the metric's last present value before it; NaN where the value
        is missing or none came before. ``complete`` says that ``X`` holds no NaN."""
        return self.steps_of(X, names, complete=complete)[0]

    def steps_of(
        self, X: FloatArray, names: Sequence[str], *, complete: bool = False
    ) -> tuple[FloatArray, bool]:
        """:meth:`steps`, and whether they hold no NaN (known when ``X`` is ``complete``:
        every metric has a value before; False otherwise)."""
        previous, seen = self._previous(names)
        if complete or not np.count_nonzero(np.isnan(X)):
            # Every value present: the row before is the last one (np.diff's arithmetic).
            diffs = np.empty_like(X)
            np.subtract(X[:1], previous, out=diffs[:1])
            np.subtract(X[1:], X[:-1], out=diffs[1:])
            return diffs, complete and seen
        filled = np.vstack([previous[None, :], X])
        index = np.where(np.isnan(filled), 0, np.arange(filled.shape[0])[:, None])
        np.maximum.accumulate(index, axis=0, out=index)  # the last present row, per column
        carried = np.take_along_axis(filled, index, axis=0)
        out: FloatArray = X - carried[:-1]
        return out, False

    def z(
        self, steps: FloatArray, names: Sequence[str], *, complete: bool = False
    ) -> tuple[FloatArray, FloatArray]:
        """Robust z-scores of the steps (0 where missing) and their spreads; ``complete``
        says that ``steps`` holds no NaN."""
        z, _, scale = self._scaler.standardize(steps, names, complete=complete)
        return z, scale

    def learn(self, steps: FloatArray, names: Sequence[str], *, complete: bool = False) -> None:
        """Learn steps (at most :meth:`rows_to_refresh` rows for one-at-a-time exactness)."""
        self._scaler.learn(steps, names, complete=complete)

    def advance(self, X: FloatArray, names: Sequence[str], *, complete: bool = False) -> None:
        """Remember each metric's last present value of these rows."""
        if X.shape[0] == 0:
            return
        last = X[-1]
        memo = memo_of(self)
        if complete or not np.count_nonzero(np.isnan(last)):  # the last row has every value
            self._last.update(zip(names, last.tolist(), strict=True))
            memo["last"] = (names, last.copy(), True)
            return
        memo.pop("last", None)
        present = ~np.isnan(X)
        for j, name in enumerate(names):
            rows = np.flatnonzero(present[:, j])
            if rows.size:
                self._last[name] = float(X[rows[-1], j])

    def set_floors(self, floors: Mapping[str, float]) -> None:
        """Step spreads never below the metrics' quanta."""
        self._scaler.set_floors(floors)

    def _previous(self, names: Sequence[str]) -> tuple[FloatArray, bool]:
        """The last value of each of ``names`` (NaN where none), and whether each has one."""
        last = memo_of(self).get("last")
        if last is not None and last[0] == names:
            return last[1], last[2]
        previous = np.array([self._last.get(n, np.nan) for n in names])
        complete = not np.count_nonzero(np.isnan(previous))
        memo_of(self)["last"] = (tuple(names), previous, complete)
        return previous, complete
