"""Calibrated scores: how unusual a raw score is for this service, as a tail probability.

A raw anomaly score means different things in different services: a flat gauge scores 0 for
ever, a noisy one scores 0.6 on an ordinary day. :class:`ScoreCalibrator` turns each raw score
into the probability ``p`` of a score at least as high under the service's own recent score
distribution (the idea behind HTM's anomaly likelihood), so one threshold on ``p`` means the
same thing for every service and every metric shape.

``p`` is conformal where data supports it and extrapolated where it cannot:

* within the observed scores, ``p = (#{history >= s} + 1) / (n + 1)``: ties count in full, so a
  score that recurs (a quantized gauge, a sparse counter's usual 1) is never rare;
* above the ``tail_share`` quantile, the excesses are modelled by a generalized Pareto
  distribution (the peaks-over-threshold step of extreme value theory, as in Siffer et al.,
  "Anomaly detection in streams with extreme value theory", KDD 2017), fitted by probability-
  weighted moments (Hosking & Wallis 1987: closed form, no optimiser). It gives tail
  probabilities far below ``1 / n`` for scores beyond everything seen, which a per-day budget
  at a 10 s cadence needs (``alpha`` ~ 3e-5 with 10,000 scores of history);
* degenerate histories are explicit: a constant history has a point-mass tail (any higher score
  has ``p = 0``; equal scores ``p = 1``). A young history cannot call a score it has seen
  rarer than ``1 / (n + 1)``: below a smaller ``alpha``, only scores past its maximum can be.
* the tail weighs recent scores more (``recency``: weighted conformal p-values, where every
  decision is taken; :mod:`models.anomaly.recency`): its share is the weight above its
  threshold and its fit weighs each excess; below it ``p`` stays counted, floored at the
  tail's share;
* an episode's opening (learned once, at most at the threshold's score) is not a score seen:
  it weighs in the tail's fit, but not in the count that keeps a recurring score common.
  Counted there, one earlier episode in the history held every lower score's ``p`` at
  ``1 / (n + 1)`` or more, above ``alpha`` at any cadence under ~90 s, so a problem smaller
  than the last one could not alert (docs/anomaly.md: planted level shifts 7 -> 9 of 10).

The history refreshes on the schedule of :mod:`models.refresh`, counted in learned scores,
so a batch is calibrated exactly as one score at a time.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from models.anomaly.gpd import TailShapes, fit_gpd
from models.anomaly.memo import Memo, memo_of
from models.anomaly.recency import half_life, slot_weights, sorted_weights, weighted_tails
from models.refresh import aligned_refresh_due, aligned_steps_to_refresh

__all__ = ["ScoreCalibrator", "fit_gpd"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Float32Array = npt.NDArray[np.float32]
IntpArray = npt.NDArray[np.intp]

_SORTED_LOOKUP = 64  # from this many scores on, they are looked up in increasing order


def _count_below(ordered: Float32Array, scores: Float32Array) -> IntpArray:
    """How many of ``ordered`` (sorted) are below each score. Many scores are looked up in
    increasing order: neighbours then share the cache lines a binary search ends in (a
    calibration holds thousands of scores, searched a few hundred at a time)."""
    if scores.size < _SORTED_LOOKUP:
        found: IntpArray = ordered.searchsorted(scores)
        return found
    order = scores.argsort()
    found = np.empty(scores.size, dtype=np.intp)
    found[order] = ordered.searchsorted(scores[order])  # side="left": #{ordered < s}
    return found


def _ring_write(ring: npt.NDArray[np.generic], values: npt.NDArray[np.generic], first: int) -> None:
    """Write ``values`` (at most the ring's length, along the last axis) into ``ring`` from
    slot ``first``, wrapping round to its start."""
    split = min(values.shape[-1], ring.shape[-1] - first)
    ring[..., first : first + split] = values[..., :split]
    ring[..., : values.shape[-1] - split] = values[..., split:]


class ScoreCalibrator:
    """Recent raw scores of one or more channels, and the tail probability of new ones.

    The channels (columns) share one history and one refresh: a row of scores is learned or
    not as a whole, so one ring write and one sort serve them all.

    Args:
        window: Recent rows of scores kept (a ring buffer).
        refresh_every: Refresh the sorted history and the tail fits at least this often.
        tail_share: Share of the history above the tail threshold (the GPD's excesses).
        min_tail: Fewest excesses a tail fit uses.
        channels: Scores per row.
        recency: The half-life of a score's weight in the tail, as a share of ``window``,
            and at least a week of the cadence :meth:`learn` was last given
            (:func:`models.anomaly.recency.half_life`; None: every score weighs 1).

    Examples:
        >>> calibrator = ScoreCalibrator(window=1000, refresh_every=100)
        >>> calibrator.learn(np.random.default_rng(1).exponential(1.0, 1000))
        >>> p = calibrator.p_values(np.array([0.7, 5.0, 20.0]))
        >>> round(float(p[0]), 1), bool(p[1] < 0.02), bool(p[2] < 1e-6)
        (0.5, True, True)

        A flat history: the same score is never rare, a higher one always is.

        >>> flat = ScoreCalibrator(window=100)
        >>> flat.learn(np.zeros(100))
        >>> flat.p_values(np.array([0.0, 0.3])).tolist()
        [1.0, 0.0]

        Channels side by side:

        >>> two = ScoreCalibrator(window=100, channels=2)
        >>> two.learn(np.column_stack([np.zeros(100), np.arange(100.0)]))
        >>> two.p_values(np.array([[0.0, 49.5], [1.0, 200.0]])).round(2).tolist()
        [[1.0, 0.5], [0.0, 0.0]]
    """

    _memo: Memo | None = None
    _opening: BoolArray | None = None
    """Which history slots hold an episode's opening (None: none ever learned)."""
    _openings: Float32Array | None = None
    """The openings of the current calibration, sorted per channel (None: none)."""
    # With recency (None: unit weights): the weight at or above each sorted opening, and each
    # of the tail's sorted positions, per channel, then 0; the history's weight; the cadence
    # last given to learn (a week in samples).
    _openings_weight: Float32Array | None = None
    _tail_at_least: FloatArray | None = None
    _total: float = 0.0
    _cadence_s: float = 60.0

    def __init__(
        self,
        window: int = 4096,
        refresh_every: int = 256,
        tail_share: float = 0.05,
        min_tail: int = 10,
        channels: int = 1,
        recency: float | None = None,
    ) -> None:
        if window < 2 or refresh_every < 1 or channels < 1:
            raise ValueError("window must be at least 2, refresh_every and channels at least 1")
        if not 0.0 < tail_share < 1.0:
            raise ValueError("tail_share must be in (0, 1)")
        self.window = window
        self.refresh_every = refresh_every
        self.tail_share = tail_share
        self.min_tail = min_tail
        self.channels = channels
        self.recency = recency
        # float32: half the memory, and scores are compared as float32 too, so a score that
        # recurs exactly is still a tie.
        self._scores = np.empty((channels, window), dtype=np.float32)
        self._count = 0
        self._scheduled = 0  # rows counted by the refresh schedule
        self._since_refresh = 0
        self.refreshes = 0
        self._sorted = np.empty((channels, 0), dtype=np.float32)
        self._u = np.full(channels, np.inf)  # tail threshold: scores above it use the GPD
        self._tail_p = np.zeros(channels)  # share of the history above u
        self._xi = np.zeros(channels)
        self._sigma = np.zeros(channels)

    @property
    def count(self) -> int:
        """Rows learned so far."""
        return self._count

    @property
    def size(self) -> int:
        """Rows the current calibration is taken over."""
        return int(self._sorted.shape[1])

    def nbytes(self) -> int:
        """Bytes held by the history, its sorted copy, its openings and the tail's weights."""
        held = self._scores.nbytes + self._sorted.nbytes
        for extra in (self._opening, self._openings, self._openings_weight, self._tail_at_least):
            held += 0 if extra is None else extra.nbytes
        return int(held)

    def rows_to_refresh(self) -> int:
        """Rows that can be learned before the calibration next changes (at least 1)."""
        return aligned_steps_to_refresh(self._since_refresh, self._scheduled, self.refresh_every)

    def p_values(self, scores: FloatArray) -> FloatArray:
        """The tail probability of each score under the current calibration (1 if none yet),
        shaped like ``scores`` (``(n,)`` for one channel, ``(n, channels)``).

        ``max(GPD tail, #{history >= s} / (n + 1))`` above the tail threshold (ties keep a
        recurring score common, the GPD extrapolates past the maximum), the conformal
        ``(#{history >= s} + 1) / (n + 1)`` below it.
        """
        flat = scores.ndim == 1
        rows = scores[:, None] if flat else scores
        n = self._sorted.shape[1]
        if n == 0:
            return np.ones(scores.shape)
        # As the history holds them (float32: a recurring score ties), a channel a row.
        columns = rows.T.astype(np.float32, order="C")
        below = np.empty(columns.shape, dtype=np.intp)
        few = columns.shape[1] < _SORTED_LOOKUP
        for j, ordered in enumerate(self._sorted):
            scores_j = columns[j]
            below[j] = ordered.searchsorted(scores_j) if few else _count_below(ordered, scores_j)
        p: FloatArray = np.empty(rows.shape)
        np.subtract(n, below.T, out=p)  # #{history >= s}, row by row
        p += 1.0
        p /= n + 1.0
        weighted = self._tail_at_least is not None
        if weighted:  # nothing at or below the tail's threshold is rarer than the tail
            np.maximum(p, self._tail_p, out=p)
        high = columns > self._u[:, None]
        if not np.count_nonzero(high):  # no score past its tail threshold
            return p[:, 0] if flat else p
        if columns.shape[1] < _SORTED_LOOKUP:  # a few rows: all of them, as they are
            y = rows.astype(np.float32).astype(np.float64) - self._u
            at_least = self._at_least(below) - self._openings_at_least(columns)
            p = np.where(high.T, np.maximum(self._gpd_tails(y), at_least / self._scale), p)
        else:
            # Only the rows with a score in a tail: their scores go through the same
            # arithmetic, row by row, as the whole segment's would.
            hit = np.logical_or.reduce(high, axis=0).nonzero()[0]
            y = rows.astype(np.float32)[hit].astype(np.float64) - self._u
            at_least = self._at_least(below[:, hit])
            at_least -= self._openings_at_least(columns[:, hit])
            tails = np.maximum(self._gpd_tails(y), at_least / self._scale)
            p[hit] = np.where(high.T[hit], tails, p[hit])
        return p[:, 0] if flat else p

    def score_at(self, p: float) -> FloatArray:
        """Each channel's score whose tail probability is ``p`` (inf before any calibration).

        Examples:
            >>> calibrator = ScoreCalibrator(window=1000)
            >>> calibrator.learn(np.random.default_rng(1).exponential(1.0, 1000))
            >>> s = calibrator.score_at(1e-4)
            >>> round(float(calibrator.p_values(s)[0]) * 1e4, 2)
            1.0
        """
        n = self._sorted.shape[1]
        out = np.full(self.channels, np.inf)
        if n == 0:
            return out
        for j in range(self.channels):
            tail_p, sigma, xi = self._tail_p[j], self._sigma[j], self._xi[j]
            if p >= tail_p or sigma <= 0.0:
                rank = min(n - 1, max(0, math.ceil(n * (1.0 - p)) - 1))
                out[j] = float(self._sorted[j, rank])
            elif xi < 1e-9:
                out[j] = self._u[j] + sigma * math.log(tail_p / p)
            else:
                out[j] = self._u[j] + sigma / xi * ((tail_p / p) ** xi - 1.0)
        return out

    def learn(
        self,
        scores: FloatArray,
        *,
        unscheduled: int = 0,
        openings: BoolArray | None = None,
        cadence_s: float | None = None,
    ) -> None:
        """Add rows of scores to the history; refresh the calibration when due.

        ``unscheduled`` of them do not count towards the refresh schedule (episode openings:
        the schedule then stays on the rows every other statistic counts). ``openings``: the
        rows that open an episode (None: none). They shape the tail's fit like any score, but
        are not counted as a score seen again: the count of history scores at least as high,
        which keeps a recurring score common, counts observations of normal behaviour.
        ``cadence_s``: the service's cadence (recency's half-life is at least a week of it).
        """
        if cadence_s is not None:
            self._cadence_s = cadence_s
        if scores.shape[0] == 0:
            return
        rows = scores.shape[0]
        kept = (scores[:, None] if scores.ndim == 1 else scores)[-self.window :].T
        self._count += max(0, rows - self.window)
        first = self._count % self.window
        _ring_write(self._scores, kept, first)
        if openings is not None or self._opening is not None:
            if self._opening is None:
                self._opening = np.zeros(self.window, dtype=bool)
            k = kept.shape[1]
            flags = np.zeros(k, dtype=bool) if openings is None else openings[rows - k :]
            _ring_write(self._opening, flags, first)
        self._count += kept.shape[1]
        self._scheduled += rows - unscheduled
        self._since_refresh += rows - unscheduled
        if aligned_refresh_due(self._since_refresh, self._scheduled, self.refresh_every):
            self._refresh()

    # -- internals ------------------------------------------------------------------------------

    @property
    def _scale(self) -> float:  # the history's weight and the new score's
        return (self._total if self._tail_at_least is not None else self._sorted.shape[1]) + 1.0

    def _at_least(self, below: IntpArray) -> FloatArray:
        """Per row and channel, the history at or above scores with ``below`` scores under
        them (a channel a row), weighed in the tail (only rows above its threshold read)."""
        n = self._sorted.shape[1]
        tail = self._tail_at_least
        if tail is None:
            return np.subtract(n, below.T, dtype=np.float64)
        k = tail.shape[1] - 1  # the tail's positions n - k .. n, channel after channel
        at = below + (np.arange(0, tail.size, k + 1) - (n - k))[:, None]
        out: FloatArray = tail.reshape(-1).take(at, mode="clip").T
        return out

    def _openings_at_least(self, columns: Float32Array) -> FloatArray | float:
        """Per row and channel, the current calibration's openings at least as high as the
        row's score (``columns``: a channel a row, as float32)."""
        openings = self._openings
        if openings is None:
            return 0.0
        out = np.empty((columns.shape[1], self.channels))
        m = openings.shape[1]
        weight = self._openings_weight
        for j in range(self.channels):
            at = openings[j].searchsorted(columns[j])
            out[:, j] = m - at if weight is None else weight[j].take(at)
        return out

    def _gpd_tails(self, y: FloatArray) -> FloatArray:
        """Each channel's tail probability of excesses ``y`` over its threshold, ``y`` of shape
        ``(rows, channels)`` (only excesses over a channel's threshold are read)."""
        memo = memo_of(self)
        shapes: TailShapes | None = memo.get("tails")
        if shapes is None or shapes.refreshes != self.refreshes:
            shapes = memo["tails"] = TailShapes.of(self.refreshes, self._xi, self._sigma)
        return shapes.tail_probabilities(y, self._tail_p)

    def _refresh(self) -> None:
        held = min(self._count, self.window)
        history = self._scores[:, :held]
        self._sorted = np.sort(history, axis=1)
        self._tail_at_least = None
        self.refreshes += 1
        self._since_refresh = 0
        k = max(self.min_tail, round(self.tail_share * held))
        young = k >= held  # too few scores for a tail: conformal p-values only, counted
        weights = None
        if self.recency is not None and not young:
            weights, self._total = slot_weights(
                self._count,
                held,
                self.window,
                half_life(self.window, self.recency, self._cadence_s),
            )
        opening = None if self._opening is None else self._opening[:held]
        self._openings = self._openings_weight = None
        if opening is not None and opening.any():
            self._openings, self._openings_weight = sorted_weights(
                history[:, opening], None if weights is None else weights[opening]
            )
        if young:
            self._u[:], self._tail_p[:], self._xi[:], self._sigma[:] = np.inf, 0.0, 0.0, 0.0
            return
        n = held
        self._u = self._sorted[:, n - k - 1].astype(np.float64)
        if weights is not None:  # the tail weighed by recency (models.anomaly.recency)
            tails = weighted_tails(history, weights, self._total, self._u, k)
            self._tail_at_least, self._tail_p = tails.at_least, tails.shares
            for j in range(self.channels):
                self._xi[j], self._sigma[j] = fit_gpd(tails.excesses[j], tails.weights[j])
            return
        excesses = self._sorted[:, n - k :].astype(np.float64) - self._u[:, None]
        above = excesses > 0.0
        self._tail_p = np.count_nonzero(above, axis=1) / n
        for j in range(self.channels):
            self._xi[j], self._sigma[j] = fit_gpd(excesses[j, above[j]])
