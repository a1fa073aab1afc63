"""Monotone counters are scored as rates, as Prometheus users read them.

A counter (``requests_total``) only grows: its value says nothing, its rate everything.
Scored raw, it is a ramp that every baseline lags behind (the seasonal profile a whole day),
so it would alert on its own growth. :class:`CounterRates` watches each feature's first
``decide_after`` values: one that never decreased and rose at least a quarter of the time is a
counter, and from then on it is replaced by its per-second increase since its previous value
(a decrease is a reset: the new value is the increase since it). Until the decision a
feature's values are held back (missing: imputed at the baseline, not learned), so neither
reading ever enters a baseline meant for the other.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from models.anomaly.memo import Memo, memo_of

__all__ = ["CounterRates"]

FloatArray = npt.NDArray[np.float64]


class _Feature:
    __slots__ = ("counter", "increases", "last_ts", "last_value", "seen")

    def __init__(self) -> None:
        self.seen = 0
        self.increases = 0
        self.counter: bool | None = None  # None: not decided yet
        self.last_value = np.nan
        self.last_ts = np.nan


class CounterRates:
    """Decides which features are counters and turns counters into rates.

    Args:
        decide_after: Values of a feature seen before it is called a counter or not.

    Examples:
        >>> rates = CounterRates(decide_after=4)
        >>> X = np.array([[0.0, 5.0], [10.0, 4.0], [20.0, 6.0], [30.0, 5.0], [40.0, 5.5],
        ...               [55.0, 6.0], [5.0, 4.0]])
        >>> rates.transform(X, np.arange(7) * 10.0, ("hits_total", "cpu")).tolist()[3:]
        [[nan, 5.0], [1.0, 5.5], [1.5, 6.0], [0.5, 4.0]]
        >>> rates.counters()
        ['hits_total']
    """

    _memo: Memo | None = None

    def __init__(self, decide_after: int = 32) -> None:
        self.decide_after = decide_after
        self._features: dict[str, _Feature] = {}

    def counters(self) -> list[str]:
        """The features decided to be counters."""
        return sorted(n for n, f in self._features.items() if f.counter)

    def transform(
        self, X: FloatArray, ts_s: FloatArray, names: Sequence[str], *, commit: bool = True
    ) -> FloatArray:
        """Rows as the model scores them: counters as rates, undecided features missing.

        With ``commit`` the decisions and last values advance through the rows; without, the
        same result is computed on a copy of the state (a preview).
        """
        memo = memo_of(self)
        key = names if isinstance(names, tuple) else tuple(names)
        if key in memo:  # every one of them decided not a counter: nothing to do, ever again
            return X
        out = X
        plain = True
        for j, name in enumerate(names):
            feature = self._features.get(name)
            if feature is not None and feature.counter is False:
                continue
            plain = False
            if feature is None:
                feature = _Feature()
                if commit:
                    self._features[name] = feature
            elif not commit:
                feature = copy.copy(feature)
            if out is X:
                out = X.copy()
            out[:, j] = self._column(feature, X[:, j], ts_s)
        if plain:
            memo[key] = True
        return out

    def _column(self, feature: _Feature, x: FloatArray, ts: FloatArray) -> FloatArray:
        present = ~np.isnan(x)
        values, times = x[present], ts[present]
        result = np.full(x.size, np.nan)
        if values.size == 0:
            return result
        decided_at = 0  # values before this index are held back (undecided)
        if feature.counter is None:
            decided_at = self._watch(feature, values)
            if feature.counter is None:
                return result
        if feature.counter:
            prev_v = np.concatenate(([feature.last_value], values[:-1]))
            prev_t = np.concatenate(([feature.last_ts], times[:-1]))
            rise = np.where(values >= prev_v, values - prev_v, values)  # a drop is a reset
            gap = times - prev_t
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(gap > 0, rise / gap, np.nan)
            rate[:decided_at] = np.nan
            result[present] = rate
        else:
            kept = values.copy()
            kept[:decided_at] = np.nan
            result[present] = kept
        feature.last_value, feature.last_ts = float(values[-1]), float(times[-1])
        return result

    def _watch(self, feature: _Feature, values: FloatArray) -> int:
        """Take in values until the feature is decided (its first fall, or ``decide_after``
        values); returns how many were taken (they stay held back, the deciding one too)."""
        before = np.concatenate(([feature.last_value], values))  # NaN: no value before
        steps = before[1:] - before[:-1]  # np.diff's arithmetic, without its wrapper
        pending = self.decide_after - feature.seen
        falls = np.flatnonzero(steps < 0)
        taken = min(values.size, pending, int(falls[0]) + 1 if falls.size else values.size)
        feature.increases += int(np.count_nonzero(steps[:taken] > 0))
        feature.seen += taken
        feature.last_value = float(values[taken - 1])
        if falls.size and falls[0] < taken:
            feature.counter = False
        elif feature.seen >= self.decide_after:
            feature.counter = feature.increases * 4 >= self.decide_after
        return taken
