"""Incident-risk episodes: one alert when a service's risk rises, one when it falls (pure).

A risk alert is a page. While a service's risk stays high, paging again every minute tells
the operator nothing new, so risk alerts come per *episode*:

- **Opens** when the probability reaches the threshold for ``open_steps`` consecutive
  vectors of the service (like a Prometheus rule's ``for:``): one noisy step does not page.
  Vectors that may not open an episode (``HELD``: an incident is probably already under
  way, or the model has not learned enough yet) restart that count.
- **Stays quiet** while it lasts, however high the risk goes.
- **Resolves** when the probability stays below a lower *resolve level* for
  ``resolve_steps`` consecutive vectors (hysteresis, so a risk hovering at the threshold
  does not open and close episodes minute after minute), or at once when an incident of the
  service is known to be open (``INCIDENT``): the warning has been answered.

The resolve level (:func:`resolve_level`) is halfway back from the threshold to the base rate
in log-odds, the scale the model adds evidence on: the risk is then closer to normal than to
alarming. An episode's id is a hash of the service, the kind and the event time it started
(the first vector of the run that opened it), so a replay gives identical ids.

:func:`count_openings` counts the episodes this machine would open over recorded
probability series for a candidate threshold, as arrays: the ``episode_budget`` threshold
strategy searches it for the threshold that spends a budget of episodes per service-day.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "HELD",
    "INCIDENT",
    "EpisodeChange",
    "RiskEpisodes",
    "count_openings",
    "episode_id_for",
    "resolve_level",
]

INCIDENT = 1
"""Flag: an incident of the service is known to be open (closes an episode, opens none)."""
HELD = 2
"""Flag: the vector may not open an episode (an incident is probably already under way, or
the model is not ready); it restarts the count of steps over the threshold."""

FloatArray = npt.NDArray[np.float64]
FlagArray = npt.NDArray[np.uint8]


def episode_id_for(kind: str, service: str, started_s: float) -> str:
    """A stable episode id: a hash of the kind, the service and the start (event time).

    Examples:
        >>> episode_id_for("incident_risk", "api", 0.0) == episode_id_for("incident_risk", "api", 0)
        True
        >>> len(episode_id_for("incident_risk", "api", 0.0))
        32
    """
    started = datetime.fromtimestamp(started_s, UTC).isoformat()
    return hashlib.sha256(f"{kind}|{service}|{started}".encode()).hexdigest()[:32]


def resolve_level(threshold: float, base_rate: float | None) -> float:
    """The probability an open episode must stay below to resolve: halfway from the threshold
    back to the base rate in log-odds (half the threshold when the base rate is unknown or
    not below it).

    Examples:
        >>> round(resolve_level(0.2, 0.03), 4)
        0.0808
        >>> resolve_level(0.2, None), resolve_level(0.2, 0.5)
        (0.1, 0.1)
        >>> resolve_level(math.inf, 0.03)
        inf
    """
    if not math.isfinite(threshold):
        return threshold
    if base_rate is None or not 0.0 < base_rate < threshold < 1.0:
        return threshold / 2
    middle = (_logit(threshold) + _logit(base_rate)) / 2
    return 1.0 / (1.0 + math.exp(-middle))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@dataclass(frozen=True, slots=True)
class EpisodeChange:
    """An episode opened (its firing alert is due) or resolved (its resolved alert is due).

    Attributes:
        status: ``firing`` (opened) or ``resolved``.
        service: The episode's service.
        episode_id: Its stable id (the same for both alerts).
        started_s: The event time it started: the first vector of the run that opened it.
        ts_s: The event time of the vector that opened or resolved it.
        reason: Why it resolved: ``risk_fell`` or ``incident_opened`` (``""`` when opened).
    """

    status: Literal["firing", "resolved"]
    service: str
    episode_id: str
    started_s: float
    ts_s: float
    reason: str = ""


class _Track:
    """One service's episode state: the counts of consecutive vectors and the open episode."""

    __slots__ = ("above", "above_since_s", "below", "episode_id", "started_s")

    def __init__(self) -> None:
        self.above = 0  # consecutive vectors that reached the threshold (and could open)
        self.above_since_s = 0.0  # the first of them
        self.below = 0  # consecutive vectors under the resolve level while an episode is open
        self.episode_id: str | None = None
        self.started_s = 0.0

    def __getstate__(self) -> tuple[int, float, int, str | None, float]:
        return (self.above, self.above_since_s, self.below, self.episode_id, self.started_s)

    def __setstate__(self, state: tuple[int, float, int, str | None, float]) -> None:
        self.above, self.above_since_s, self.below, self.episode_id, self.started_s = state


class RiskEpisodes:
    """Each service's risk episode (see the module docstring).

    Vectors must come in event-time order per service; each is seen once, so the changes do
    not depend on how a stream was cut into batches.

    Args:
        open_steps: Consecutive vectors at or over the threshold that open an episode.
        resolve_steps: Consecutive vectors under the resolve level that resolve it.
        kind: The alert kind the episode ids are hashed with.

    Examples:
        >>> episodes = RiskEpisodes(open_steps=2, resolve_steps=2)
        >>> risk = [0.1, 0.5, 0.1, 0.5, 0.6, 0.9, 0.3, 0.1, 0.5, 0.1, 0.1, 0.1]
        >>> for t, p in enumerate(risk):
        ...     change = episodes.step("api", 60.0 * t, p, threshold=0.4, base_rate=0.1)
        ...     if change is not None:
        ...         print(t, change.status, change.started_s, change.reason or "-")
        4 firing 180.0 -
        10 resolved 180.0 risk_fell
        >>> episodes.is_open("api")
        False
    """

    def __init__(
        self, *, open_steps: int = 1, resolve_steps: int = 1, kind: str = "incident_risk"
    ) -> None:
        if open_steps < 1 or resolve_steps < 1:
            raise ValueError("open_steps and resolve_steps must be >= 1")
        self.open_steps = open_steps
        self.resolve_steps = resolve_steps
        self.kind = kind
        self._tracks: dict[str, _Track] = {}

    def __len__(self) -> int:
        """How many episodes are open."""
        return sum(track.episode_id is not None for track in self._tracks.values())

    def is_open(self, service: str) -> bool:
        """Whether ``service`` has an open episode."""
        track = self._tracks.get(service)
        return track is not None and track.episode_id is not None

    def step(
        self,
        service: str,
        ts_s: float,
        probability: float,
        *,
        threshold: float,
        base_rate: float | None,
        flags: int = 0,
    ) -> EpisodeChange | None:
        """One vector of ``service``: the episode it opens or resolves, if any.

        Args:
            service: The vector's service.
            ts_s: Its event time.
            probability: The probability that decides alerts.
            threshold: The threshold in force (opening needs ``probability >= threshold``).
            base_rate: The base rate in force (with the threshold, the resolve level).
            flags: :data:`INCIDENT` and/or :data:`HELD`.
        """
        track = self._tracks.get(service)
        if track is None:
            track = self._tracks[service] = _Track()
        if flags & INCIDENT:
            track.above = 0
            if track.episode_id is None:
                return None
            return self._resolve(service, track, ts_s, "incident_opened")
        if probability >= threshold and not flags & HELD:
            if track.above == 0:
                track.above_since_s = ts_s
            track.above += 1
        else:
            track.above = 0
        if track.episode_id is not None:
            lower = resolve_level(threshold, base_rate)
            track.below = track.below + 1 if probability < lower else 0
            if track.below >= self.resolve_steps:
                return self._resolve(service, track, ts_s, "risk_fell")
            return None
        if track.above >= self.open_steps:
            track.started_s = track.above_since_s
            track.episode_id = episode_id_for(self.kind, service, track.started_s)
            track.below = 0
            return EpisodeChange("firing", service, track.episode_id, track.started_s, ts_s)
        return None

    def _resolve(self, service: str, track: _Track, ts_s: float, reason: str) -> EpisodeChange:
        assert track.episode_id is not None
        change = EpisodeChange("resolved", service, track.episode_id, track.started_s, ts_s, reason)
        track.episode_id = None
        track.below = 0
        return change

    def export(self, services: Iterable[str]) -> dict[str, _Track]:
        """These services' state, for a snapshot (live objects: pickle them)."""
        return {s: track for s in services if (track := self._tracks.get(s)) is not None}

    def install(self, tracks: Mapping[str, _Track]) -> None:
        """Take over services' state from :meth:`export` (replacing their own)."""
        self._tracks.update(tracks)

    def forget(self, services: Iterable[str]) -> None:
        """Drop services' state (their partition went to another detector)."""
        for service in services:
            self._tracks.pop(service, None)


def count_openings(
    probabilities: FloatArray,
    flags: FlagArray,
    first: npt.NDArray[np.bool_],
    *,
    threshold: float,
    lower: float,
    open_steps: int,
    resolve_steps: int,
) -> int:
    """How many episodes :class:`RiskEpisodes` would open over recorded series, at once.

    The series of several services are concatenated, ``first`` marking each one's first
    vector. An episode opens at the first vector of a segment with ``open_steps`` consecutive
    openable vectors at or over the threshold, where segments are cut wherever an open
    episode would resolve (the ``resolve_steps``-th consecutive vector under ``lower``, an
    ``INCIDENT`` vector, a new service); so it is the number of segments holding such a
    vector. (A cut while no episode is open changes nothing, and the vector that opens an
    episode is never under ``lower``, so a run of them cannot straddle an opening.)

    Examples:
        >>> risk = np.array([0.1, 0.5, 0.1, 0.5, 0.6, 0.9, 0.3, 0.1, 0.5, 0.1, 0.1, 0.1])
        >>> flags = np.zeros(risk.size, np.uint8)
        >>> first = np.zeros(risk.size, bool)
        >>> first[0] = True
        >>> count_openings(risk, flags, first, threshold=0.4, lower=0.2, open_steps=2,
        ...                resolve_steps=2)
        1
        >>> count_openings(risk, flags, first, threshold=0.4, lower=0.2, open_steps=1,
        ...                resolve_steps=1)
        3
    """
    n = probabilities.size
    if n == 0:
        return 0
    index = np.arange(n)
    incident = (flags & INCIDENT) != 0
    openable = (probabilities >= threshold) & (flags == 0)
    armed = openable & (_run_lengths(openable, first, index) >= open_steps)
    if not armed.any():
        return 0
    low = (probabilities < lower) & ~incident
    cut = incident | first | (low & (_run_lengths(low, first, index) >= resolve_steps))
    segments = np.cumsum(cut)
    return int(np.unique(segments[armed]).size)


def _run_lengths(
    on: npt.NDArray[np.bool_], first: npt.NDArray[np.bool_], index: npt.NDArray[np.intp]
) -> npt.NDArray[np.intp]:
    """For each position, how many consecutive ``on`` positions end there (0 where off),
    runs restarting at each ``first``."""
    breaks = np.where(on, -1, index)
    breaks[first & on] = index[first & on] - 1
    last: npt.NDArray[np.intp] = np.maximum.accumulate(breaks)
    return np.where(on, index - last, 0)
