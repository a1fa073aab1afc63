"""Seasonal baselines: what each feature usually is at this time of day (or week).

Real metrics follow the clock: traffic peaks every afternoon, batch jobs run every night. A
detector that compares a value with the recent median flags every daily peak and misses a
spike at 3 a.m. that would be normal at 3 p.m. :class:`SeasonalBaseline` learns, per feature,
a robust location for each bucket of the season (by default 288 five-minute buckets of a day),
keyed by *event* time, and the model scores the residual ``value - baseline`` instead of the
raw value.

Learning is folded in at known event counts (the schedule of :mod:`models.refresh`): learned
rows wait in a small buffer, and at each fold every bucket seen in the buffer moves towards
the median of its buffered values: by the running mean of those medians while the bucket is
young (its first sample does not stand for it alone), then a share ``alpha`` of the way.
Between folds the profile is constant, so a batch can be processed in segments between folds
with exactly the result of one row at a time. A bucket never seen yet falls back to the mean
of the feature's learned buckets (its level: on a service's first day, every time of day is
new); before any fold the baseline is NaN (no residual: the model imputes a neutral z-score
and does not learn the residual).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from models.anomaly.memo import Memo, memo_of
from models.refresh import aligned_refresh_due, aligned_steps_to_refresh

__all__ = ["SeasonalBaseline"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_YOUNG = 3  # samples below which a bucket is shrunk towards the feature's level


class SeasonalBaseline:
    """Per-feature robust profiles over the buckets of a season, learned in event time.

    Args:
        period_s: Length of the season in seconds (86,400: a day; 604,800: a week).
        buckets: Buckets per season (288 over a day: five-minute buckets).
        alpha: Share of the way a bucket moves to the median of newly folded values.
        fold_every: Fold buffered rows into the profile at least every this many rows (more
            often while young).
        fold_span_s: Also fold once the buffered rows span this much event time (None: by
            count only): a 5-minute metric folds 250 samples in 21 hours, and must learn its
            first days' times of day within the day.

    Examples:
        A value that is normal at noon is unusual at midnight:

        >>> baseline = SeasonalBaseline(period_s=86_400, buckets=24, alpha=0.5)
        >>> ts = np.arange(0, 3 * 86_400, 600, dtype=np.float64)
        >>> day = np.where((ts % 86_400) // 3600 == 12, 100.0, 10.0)[:, None]
        >>> _ = baseline.baselines_learn(day, ts, ["rps"])
        >>> at = np.array([12 * 3600.0, 0.0]) + 3 * 86_400
        >>> baseline.baselines_learn(np.zeros((2, 1)), at, ["rps"], learn=False)[:, 0].tolist()
        [100.0, 10.0]
    """

    _memo: Memo | None = None

    def __init__(
        self,
        period_s: float = 86_400.0,
        buckets: int = 288,
        alpha: float = 0.2,
        fold_every: int = 256,
        fold_span_s: float | None = None,
    ) -> None:
        if period_s <= 0 or buckets < 1:
            raise ValueError("period_s and buckets must be positive")
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        if fold_every < 1:
            raise ValueError("fold_every must be at least 1")
        self.period_s = period_s
        self.buckets = buckets
        self.alpha = alpha
        self.fold_every = fold_every
        self.fold_span_s = fold_span_s
        self._columns: dict[str, int] = {}
        self._profile = np.full((buckets, 0), np.nan)  # NaN: bucket not learned yet
        self._counts = np.zeros((buckets, 0), dtype=np.int64)  # samples folded per bucket
        self._level = np.full(0, np.nan)  # mean of the learned buckets, per feature
        self._level_stale = False  # the profile changed since the level was computed
        self._served_cache: FloatArray | None = None
        self._quantum = np.full(0, np.inf)  # smallest step between a feature's values so far
        self.folds = 0
        self._buffer = np.empty((fold_every, 0))
        self._buffer_buckets = np.empty(fold_every, dtype=np.int64)
        self._buffer_ts = np.empty(fold_every)
        self._buffered = 0
        self._events = 0
        self._since_fold = 0

    def nbytes(self) -> int:
        """Bytes held by the profile, the levels and the fold buffer."""
        arrays = (
            self._profile, self._counts, self._level, self._buffer, self._buffer_buckets,
        )  # fmt: skip
        return sum(int(a.nbytes) for a in arrays)

    def bucket_of(self, ts_s: FloatArray) -> IntArray:
        """The season bucket of each event time."""
        phase = np.mod(ts_s, self.period_s) * (self.buckets / self.period_s)
        # np.clip, without its Python wrapper
        return np.minimum(np.maximum(phase.astype(np.int64), 0), self.buckets - 1)

    def baselines_learn(
        self, X: FloatArray, ts_s: FloatArray, names: Sequence[str], *, learn: bool = True
    ) -> FloatArray:
        """The seasonal baseline of each value, then (optionally) learn the rows.

        Row ``i`` gets the baselines in force after learning rows ``< i``, exactly as one row
        at a time would. NaN in ``X`` marks a missing value (not learned); NaN in the result
        marks a feature with no baseline yet.

        Args:
            X: Raw values, shape ``(n, len(names))``.
            ts_s: Event time of each row, seconds.
            names: The feature of each column.
            learn: Whether to learn the rows (and fold them in on schedule).

        Returns:
            Baselines shaped like ``X``.
        """
        if learn:
            for name in names:
                if name not in self._columns:
                    self._add_column(name)
        # Every column, in order (a model's usual call): whole rows, no masks.
        whole, columns, _, _ = self._layout(names)
        ts = np.asarray(ts_s, dtype=np.float64)
        buckets = self.bucket_of(ts)
        out = np.empty(X.shape) if whole else np.full(X.shape, np.nan)
        n = X.shape[0]
        start = 0
        while start < n:
            end = n if not learn else min(n, start + self._rows_to_fold(ts[start:]))
            out[start:end] = self.baselines_at(buckets[start:end], names)[0]
            if not learn:
                break
            self._buffer_rows(
                X[start:end], buckets[start:end], None if whole else columns, ts[start:end]
            )
            start = end
        return out

    def baselines(self, ts_s: FloatArray, names: Sequence[str]) -> FloatArray:
        """The seasonal baseline of each feature at each event time (nothing learned).

        NaN marks a feature with no baseline yet.
        """
        return self.baselines_at(self.bucket_of(np.asarray(ts_s, dtype=np.float64)), names)[0]

    def baselines_at(self, buckets: IntArray, names: Sequence[str]) -> tuple[FloatArray, bool]:
        """:meth:`baselines` of rows in season buckets ``buckets`` (:meth:`bucket_of`), and
        whether they may hold a NaN (False: none does)."""
        whole, _, known, cols = self._layout(names)
        served = self._served()
        memo = memo_of(self)
        gaps = memo.get("served_nan")
        if gaps is None:  # the served profile changed: has it a bucket not learned yet?
            gaps = memo["served_nan"] = bool(np.count_nonzero(np.isnan(served)))
        profile = served.take(buckets, axis=0) if whole else served[buckets[:, None], cols[None, :]]
        if gaps:
            unseen = np.isnan(profile)
            if np.count_nonzero(unseen):
                profile = np.where(unseen, self._levels()[cols], profile)
                gaps = bool(np.count_nonzero(np.isnan(profile)))
        if whole:
            return profile, gaps
        out = np.full((buckets.shape[0], len(names)), np.nan)
        out[:, known] = profile
        return out, True

    def rows_to_fold(self, ts_s: FloatArray | None = None) -> int:
        """Rows that can be learned before the profile next changes (at least 1); with the
        coming rows' event times, the time span that folds is counted too."""
        return self._rows_to_fold(ts_s)

    def learn(
        self,
        X: FloatArray,
        ts_s: FloatArray,
        names: Sequence[str],
        *,
        buckets: IntArray | None = None,
    ) -> None:
        """Learn rows (NaN values are skipped); folds them in when due.

        Give it at most :meth:`rows_to_fold` rows for one-at-a-time exactness. ``buckets``:
        the rows' season buckets, if known (:meth:`bucket_of`).
        """
        whole, columns, known, _ = self._layout(names)
        if not whole and not known.all():
            for name in names:
                if name not in self._columns:
                    self._add_column(name)
            whole, columns, _, _ = self._layout(names)
        if X.shape[0] == 0:
            return
        ts = np.asarray(ts_s, dtype=np.float64)
        buckets = self.bucket_of(ts) if buckets is None else buckets
        self._buffer_rows(X, buckets, None if whole else columns, ts)

    def quanta(self) -> dict[str, float]:
        """Each feature's resolution: the smallest step between two of its values seen so far
        (features whose values never differed are left out).

        Residuals mix the buckets' baselines, so their own steps say nothing of the metric's:
        an integer gauge still moves by whole units.
        """
        return {
            name: float(self._quantum[j])
            for name, j in self._columns.items()
            if np.isfinite(self._quantum[j])
        }

    def shift(self, name: str, delta: float) -> None:
        """Move a feature's whole profile (and its rows waiting to be folded) by ``delta``:
        its level changed, its daily shape did not."""
        column = self._columns.get(name)
        if column is None:
            return
        self._profile[:, column] += delta
        self._buffer[: self._buffered, column] += delta
        self._level_stale = True
        self._served_cache = None

    # -- internals ------------------------------------------------------------------------------

    def _add_column(self, name: str) -> None:
        self._columns[name] = len(self._columns)
        self._profile = np.hstack([self._profile, np.full((self.buckets, 1), np.nan)])
        self._counts = np.hstack([self._counts, np.zeros((self.buckets, 1), dtype=np.int64)])
        self._level = np.append(self._levels(), np.nan)
        self._served_cache = None
        self._buffer = np.hstack([self._buffer, np.full((self.fold_every, 1), np.nan)])
        self._quantum = np.append(self._quantum, np.inf)

    def _layout(self, names: Sequence[str]) -> tuple[bool, IntArray, BoolArray, IntArray]:
        """Where ``names`` are in the profile: whether they are all its columns in order, each
        one's column (-1 if none), which have one, and those columns."""
        key = (tuple(names), len(self._columns))
        memo = memo_of(self)
        layout = memo.get(key)
        if layout is None:
            positions = [self._columns.get(n, -1) for n in names]
            columns = np.array(positions, dtype=np.int64)
            known = columns >= 0
            whole = positions == list(range(len(self._columns)))
            layout = memo[key] = (whole, columns, known, columns[known])
        result: tuple[bool, IntArray, BoolArray, IntArray] = layout
        return result

    def _served(self) -> FloatArray:
        """The profile as baselines are read from it: a bucket with fewer than
        ``_YOUNG`` samples is pulled towards the level, as if the level were one more sample
        (a 5-minute metric folds one sample per bucket a day, and one sample of a quantized
        gauge does not say what its time of day is)."""
        if self._served_cache is None:
            memo_of(self).pop("served_nan", None)
            young = (self._counts > 0) & (self._counts < _YOUNG)
            if young.any():
                c = self._counts
                shrunk = (c * self._profile + self._levels()[None, :]) / (c + 1)
                self._served_cache = np.where(young, shrunk, self._profile)
            else:
                self._served_cache = self._profile
        return self._served_cache

    def _levels(self) -> FloatArray:
        """The mean of each feature's learned buckets (NaN if none), computed when needed.

        Only a bucket never seen uses the level: once a season's buckets are all learned, the
        level is no longer recomputed at every fold.
        """
        if self._level_stale:
            learned = ~np.isnan(self._profile)
            counts = learned.sum(axis=0)
            # A feature with no learned bucket has no level (NaN), without a 0/0 warning.
            self._level = np.divide(
                np.where(learned, self._profile, 0.0).sum(axis=0),
                counts,
                out=np.full(counts.size, np.nan),
                where=counts > 0,
            )
            self._level_stale = False
        return self._level

    def _rows_to_fold(self, ts_s: FloatArray | None = None) -> int:
        rows = aligned_steps_to_refresh(self._since_fold, self._events, self.fold_every)
        if self.fold_span_s is not None and ts_s is not None and len(ts_s):
            first = self._buffer_ts[0] if self._buffered else ts_s[0]
            late = (np.asarray(ts_s[:rows]) - first >= self.fold_span_s).nonzero()[0]
            if late.size:
                rows = int(late[0]) + 1
        return rows

    def _span_due(self) -> bool:
        if self.fold_span_s is None or not self._buffered:
            return False
        buffered = self._buffer_ts[: self._buffered]
        return bool(np.maximum.reduce(buffered) - buffered[0] >= self.fold_span_s)

    def _buffer_rows(
        self, X: FloatArray, buckets: IntArray, columns: IntArray | None, ts_s: FloatArray
    ) -> None:
        """Buffer rows whose columns are ``columns`` (None: every column, in order)."""
        m = X.shape[0]
        rows = slice(self._buffered, self._buffered + m)
        if columns is None:
            self._buffer[rows] = X
        else:
            self._buffer[rows] = np.nan
            self._buffer[rows, columns] = X
        self._buffer_buckets[rows] = buckets
        self._buffer_ts[rows] = ts_s
        self._buffered += m
        self._events += m
        self._since_fold += m
        if aligned_refresh_due(self._since_fold, self._events, self.fold_every) or self._span_due():
            self._fold()

    def _fold(self) -> None:
        """Move every buffered (bucket, feature) towards the median of its buffered values."""
        m = self._buffered
        self.folds += 1
        if m > 1:
            ordered = np.sort(self._buffer[:m], axis=0)  # NaN sorts last
            gaps = ordered[1:] - ordered[:-1]  # np.diff's arithmetic, without its wrapper
            gaps[~(gaps > 0.0)] = np.inf
            np.minimum(self._quantum, gaps.min(axis=0), out=self._quantum)
        values = self._buffer[:m].T.reshape(-1)  # feature-major: feature j's rows together
        keys = np.add.outer(
            np.arange(self._buffer.shape[1]) * self.buckets, self._buffer_buckets[:m]
        )
        present = ~np.isnan(values)
        values, keys = values[present], keys.reshape(-1)[present]
        if keys.size:
            values, keys = _sorted_by_key_then_value(values, keys)
            starts = np.concatenate(([True], keys[1:] != keys[:-1])).nonzero()[0]
            ends = np.concatenate((starts, [keys.size]))
            counts = ends[1:] - ends[:-1]
            medians = 0.5 * (values[starts + (counts - 1) // 2] + values[starts + counts // 2])
            feature, bucket = np.divmod(keys[starts], self.buckets)
            old = self._profile[bucket, feature]
            seen = self._counts[bucket, feature] + counts
            self._counts[bucket, feature] = seen
            # A running mean of the fold medians while a bucket is young, then the EWMA: a
            # bucket's first sample does not stand for it alone.
            weight = np.maximum(self.alpha, counts / seen)
            self._profile[bucket, feature] = np.where(
                np.isnan(old), medians, old + weight * (medians - old)
            )
            self._level_stale = True
            self._served_cache = None
        self._buffered = 0
        self._since_fold = 0


def _sorted_by_key_then_value(values: FloatArray, keys: IntArray) -> tuple[FloatArray, IntArray]:
    """``values`` and ``keys`` ordered by key, then by value within a key.

    What ``np.lexsort((values, keys))`` orders, in about half the time: the values are ranked
    by one float sort, then ``key * n + rank`` is sorted as plain integers (the order of equal
    values within a key may differ from lexsort's, which the medians cannot tell).

    Examples:
        >>> v, k = _sorted_by_key_then_value(np.array([3.0, 1.0, 2.0]), np.array([1, 1, 0]))
        >>> v.tolist(), k.tolist()
        ([2.0, 1.0, 3.0], [0, 1, 1])
    """
    n = values.size
    by_value = np.argsort(values)
    composite = keys[by_value] * n + np.arange(n)
    composite.sort()
    key, rank = np.divmod(composite, n)
    return values[by_value[rank]], key
