"""The ``episode_budget`` threshold: risk alerts per service-day, as the current model would
raise them (pure).

An on-call budget is a number of pages, and a page is an episode (see
:mod:`~models.incident.episodes`), not a vector: one threshold may open many episodes over a
day of noisy risk or few over a day of steady risk. So the threshold is the lowest at which
the episode rules, replayed over the last day of a sample of the group's services, would have
opened at most ``episode_budget`` episodes per service-day.

The day is replayed with the *current* models: the vectors are kept, not their
probabilities, and scored again at each search. While the model learns, its probabilities
spread out; a threshold fitted to yesterday's probabilities would then page far more than
the budget today.

Which services: at most 64 per group, those with the smallest CRC-32 of their names (a
"bottom-k" sample: the same services whatever order they appear in), each over its last
1,440 vectors (a day at one a minute; a whole day, so the budget holds over the daily cycle).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from models.incident.config import RiskConfig
from models.incident.episodes import HELD, INCIDENT, count_openings, resolve_level
from models.incident.feature_row import FeatureRow
from models.refresh import refresh_due

__all__ = ["EpisodeBudget", "Scorer"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

Scorer = Callable[[tuple[str, ...], npt.NDArray[np.float32]], tuple[FloatArray, BoolArray]]
"""Rows of one feature set → the probabilities that decide alerts, and whether each vector
is held back (an incident probably already under way)."""

_SERVICES = 64
_STEPS = 1_440
_DAY_S = 86_400.0
_MIN_EPISODES = 5.0
"""A search needs enough service-days to expect 5 episodes at the budget (until then, no
threshold: a rate estimated from fewer events is too rough to page by)."""
_EVERY_STEPS = 60
"""A new search once each followed service has 60 more vectors (an hour at one a minute;
after every 1/16th growth while young)."""


class _Series:
    """One service's last vectors (one feature set) and whether its incident was open."""

    __slots__ = ("count", "incident", "names", "rows")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.rows = np.zeros((_STEPS, len(names)), dtype=np.float32)
        self.incident = np.zeros(_STEPS, dtype=bool)
        self.count = 0

    def add(self, values: npt.NDArray[np.floating[Any]], incident: bool) -> None:
        at = self.count % _STEPS
        self.rows[at] = values
        self.incident[at] = incident
        self.count += 1

    def ordered(self) -> tuple[npt.NDArray[np.float32], BoolArray]:
        """Oldest first."""
        if self.count <= _STEPS:
            return self.rows[: self.count], self.incident[: self.count]
        at = self.count % _STEPS
        return np.roll(self.rows, -at, axis=0), np.roll(self.incident, -at)


class EpisodeBudget:
    """Finds the threshold that spends ``config.episode_budget`` episodes per service-day.

    Feed it every vector that could alert (the model ready), in event-time order per service
    (:meth:`record`); when :attr:`due`, :meth:`search` with the current models.

    Args:
        config: ``episode_budget``, ``open_steps`` and ``resolve_steps`` are used.
        step_s: Event time between two vectors of a service (service-days are counted by it).

    Examples:
        >>> budget = EpisodeBudget(RiskConfig(episode_budget=24.0, open_steps=1), step_s=60.0)
        >>> for t in range(720):  # half a day: the risk rises for 5 minutes every hour
        ...     budget.record("api", {"x": float(t % 60 < 5)}, incident=False)
        >>> def score(names, rows):
        ...     return rows[:, 0].astype(np.float64) * 0.5 + 0.01, np.zeros(len(rows), bool)
        >>> budget.due, round(budget.search(score, base_rate=0.02), 2)  # 24 a day: within 24
        (True, 0.51)
        >>> budget = EpisodeBudget(RiskConfig(episode_budget=1.0), step_s=60.0)
        >>> budget.record("api", {"x": 1.0}, incident=False)
        >>> budget.search(score, base_rate=0.02) is None  # a minute: too little to count
        True
    """

    def __init__(self, config: RiskConfig, step_s: float) -> None:
        self.config = config
        self.step_s = step_s
        self._series: dict[str, _Series] = {}
        self._hashes: dict[str, int] = {}
        self._largest = (-1, "")  # the followed service with the largest hash
        self._recorded = 0
        self._since = 0

    def record(self, service: str, vector: Mapping[str, float], incident: bool) -> None:
        """A vector that could alert, and whether its service's incident was known open."""
        series = self._series.get(service)
        if series is None:
            key = zlib.crc32(service.encode())
            if len(self._hashes) >= _SERVICES:
                if key >= self._largest[0]:
                    return
                del self._series[self._largest[1]], self._hashes[self._largest[1]]
            self._hashes[service] = key
            self._largest = max((k, s) for s, k in self._hashes.items())
        if type(vector) is FeatureRow:
            names, values = vector.names, vector.row
        else:
            names = tuple(vector)
            values = np.fromiter(vector.values(), np.float64, len(names))
        if series is None or series.names != names:  # a new feature set starts afresh
            series = self._series[service] = _Series(names)
        series.add(values, incident)
        self._recorded += 1
        self._since += 1

    @property
    def due(self) -> bool:
        """Whether enough was recorded since the last search for a new one."""
        return refresh_due(self._since, self._recorded, _EVERY_STEPS * max(1, len(self._series)))

    def search(self, score: Scorer, base_rate: float | None) -> float | None:
        """The lowest threshold (to 1/1000th in log-odds) whose episodes over the recorded
        vectors, scored now by ``score``, stay within the budget; None while too few
        service-days are recorded to tell."""
        self._since = 0
        parts = [self._series[name] for name in sorted(self._series)]
        total = sum(min(s.count, _STEPS) for s in parts)
        allowed = self.config.episode_budget * total * self.step_s / _DAY_S
        if allowed < _MIN_EPISODES:
            return None
        probabilities = np.empty(total)
        flags = np.zeros(total, dtype=np.uint8)
        first = np.zeros(total, dtype=bool)
        at = 0
        for series in parts:
            rows, incident = series.ordered()
            n = len(rows)
            p, held = score(series.names, rows)
            probabilities[at : at + n] = p
            flags[at : at + n] = np.where(incident, INCIDENT, np.where(held, HELD, 0))
            first[at] = True
            at += n
        # A risk alert says the risk is higher than usual: never a threshold under the base
        # rate (there, a service's ordinary minutes would hold an episode open for good, one
        # endless "episode" that spends no budget and tells nothing).
        floor = base_rate if base_rate is not None else 0.0
        openable = probabilities[(flags == 0) & (probabilities > floor)]
        if openable.size == 0:
            return None
        config = self.config

        def within(threshold: float) -> bool:
            opened = count_openings(
                probabilities,
                flags,
                first,
                threshold=threshold,
                lower=resolve_level(threshold, base_rate),
                open_steps=config.open_steps,
                resolve_steps=config.resolve_steps,
            )
            return opened <= allowed

        # Fewer episodes as the threshold rises (up to the odd hysteresis effect): bisect in
        # log-odds between the lowest and the highest probability that could open one.
        low, high = _logit(float(openable.min())), _logit(float(openable.max()))
        if within(_expit(low)):
            return _expit(low)
        if not within(_expit(high)):
            return float(np.nextafter(_expit(high), math.inf))
        while high - low > 1e-3:
            middle = (low + high) / 2
            if within(_expit(middle)):
                high = middle
            else:
                low = middle
        return _expit(high)


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return math.log(p / (1.0 - p))


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
