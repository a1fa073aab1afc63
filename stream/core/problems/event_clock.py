"""Event time when no event comes: the latest event's time plus the wall time since it came.

Problems resolve on event time (a replay of the same alerts gives the same problems), but a
scope whose alerts stopped would never see its clock move, and a problem whose members all
resolved would stay open until the next alert. ``vigil correlate`` therefore writes ticks into
its input log, each carrying :meth:`EventClock.now` less an allowed lateness: the log, ticks
included, decides everything, so a restart that replays it decides the same.

A backlog read fast moves the clock by its events (milliseconds of wall time between them
add milliseconds); an idle stream moves it by the wall clock.
"""

from __future__ import annotations

__all__ = ["EventClock"]


class EventClock:
    """Event time extrapolated by the wall clock.

    Examples:
        >>> clock = EventClock()
        >>> clock.now(wall_s=100.0) is None  # no event seen yet
        True
        >>> clock.seen(event_s=1_000.0, wall_s=100.0)
        >>> clock.now(wall_s=130.0)
        1030.0
        >>> clock.seen(event_s=900.0, wall_s=131.0)  # an older event moves nothing
        >>> clock.now(wall_s=131.0)
        1031.0
    """

    def __init__(self) -> None:
        self._event_s: float | None = None
        self._wall_s = 0.0

    def seen(self, event_s: float, wall_s: float) -> None:
        """An event of time ``event_s`` came at wall time ``wall_s``."""
        current = self.now(wall_s)
        if current is None or event_s > current:
            self._event_s, self._wall_s = event_s, wall_s

    def now(self, wall_s: float) -> float | None:
        """The event time now (None before the first event)."""
        if self._event_s is None:
            return None
        return self._event_s + max(0.0, wall_s - self._wall_s)
