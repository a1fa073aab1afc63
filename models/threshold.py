"""Alert thresholds that adapt to a target alert rate per service."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from models.refresh import refresh_due, steps_to_refresh

__all__ = ["AdaptiveThreshold"]

FloatArray = npt.NDArray[np.float64]


class AdaptiveThreshold:
    """The score above which a service alerts, tracking a target alert rate.

    The threshold is the ``1 - target_rate`` quantile of the service's recent scores (a ring
    buffer of ``window`` scores), recomputed after every score while young, then after every
    1/16th growth, then every ``refresh_every`` scores. With fewer than ``1 / target_rate``
    scores that quantile is the largest score seen so far, so a young service alerts only on
    scores it has never seen before, which is conservative. A fixed ``override`` replaces the
    adaptive value entirely (the operator's word wins).

    Args:
        target_rate: The share of scores that should exceed the threshold, e.g. 0.001.
        window: How many recent scores the quantile is taken over.
        refresh_every: Recompute the quantile at least this often (in scores).
        override: A fixed threshold, or None to adapt.

    Examples:
        >>> t = AdaptiveThreshold(target_rate=0.01, window=1000, refresh_every=10)
        >>> for i in range(1000):
        ...     t.learn_one(i / 1000)
        >>> round(t.value, 2)
        0.99
        >>> t.is_exceeded(0.995), t.is_exceeded(0.5)
        (True, False)
        >>> AdaptiveThreshold(override=0.7).value
        0.7
    """

    def __init__(
        self,
        target_rate: float = 0.001,
        window: int = 10_000,
        refresh_every: int = 250,
        override: float | None = None,
    ) -> None:
        if not 0.0 < target_rate < 1.0:
            raise ValueError("target_rate must be in (0, 1)")
        if window < 1 or refresh_every < 1:
            raise ValueError("window and refresh_every must be positive")
        self.target_rate = target_rate
        self.window = window
        self.refresh_every = refresh_every
        self.override = override
        self._scores = np.empty(window, dtype=np.float64)
        self._count = 0
        self._since_refresh = 0
        self._value = math.inf

    @property
    def value(self) -> float:
        """The threshold in force (``inf`` before any score was learned)."""
        return self.override if self.override is not None else self._value

    @property
    def count(self) -> int:
        """How many scores have been learned."""
        return self._count

    def is_exceeded(self, score: float) -> bool:
        """Whether ``score`` reaches the threshold in force."""
        return score >= self.value

    def learn_one(self, score: float) -> None:
        """Add a score to the window; refresh the quantile when due."""
        self.thresholds_learn(np.array([score]))

    def thresholds_learn(self, scores: FloatArray, *, learn: bool = True) -> FloatArray:
        """The threshold in force for each score, learning them in order (unless told not to).

        Score ``i`` is compared with the threshold after learning scores ``< i``, exactly as
        one-at-a-time processing would.
        """
        n = scores.size
        out = np.empty(n, dtype=np.float64)
        if not learn:
            out[:] = self.value
            return out
        start = 0
        while start < n:
            end = min(n, start + self._scores_to_refresh())
            out[start:end] = self.value
            self._add(scores[start:end])
            start = end
        return out

    def nbytes(self) -> int:
        """Bytes held by the score window."""
        return int(self._scores.nbytes)

    def _scores_to_refresh(self) -> int:
        return steps_to_refresh(self._since_refresh, self._count, self.refresh_every)

    def _add(self, scores: FloatArray) -> None:
        self._count += max(0, scores.size - self.window)
        scores = scores[-self.window :]
        first = self._count % self.window
        if first + scores.size <= self.window:
            self._scores[first : first + scores.size] = scores
        else:
            positions = (first + np.arange(scores.size)) % self.window
            self._scores[positions] = scores
        self._count += scores.size
        self._since_refresh += scores.size
        if refresh_due(self._since_refresh, self._count, self.refresh_every):
            self._refresh()

    def _refresh(self) -> None:
        scores = self._scores[: min(self._count, self.window)]
        # The "higher" quantile: an observed score, so exceeding it is a real exceedance.
        index = math.ceil((scores.size - 1) * (1.0 - self.target_rate))
        self._value = float(np.partition(scores, index)[index])
        self._since_refresh = 0
