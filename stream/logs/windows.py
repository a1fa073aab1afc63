"""Event-time tumbling windows per key, closed by a watermark with allowed lateness.

Window ``k`` of a key covers event times ``[k * window_s, (k + 1) * window_s)``. The watermark
is the largest event time seen (across all keys) minus the allowed lateness, or a later time
given to :meth:`EventTimeWindows.advance`; window ``k`` closes once the watermark reaches its
end, for every key at once. An event whose window has already closed is *late*: it is counted
and goes into no window (it would distort a window already scored, or the wrong one).

A key that goes silent still closes its windows, as empty ones: a drop to zero lines is often
the incident. After ``idle_expiry_s`` of silence a key stops emitting windows until it logs
again (its models stay), which bounds the work a long gap or a retired service costs.

Everything is driven by event times, never the wall clock, so the same events give the same
windows, whatever the batch boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["ClosedWindow", "EventTimeWindows"]

A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class ClosedWindow(Generic[A]):
    """A window that the watermark closed, with what was accumulated in it."""

    key: str
    index: int
    start_s: float
    end_s: float
    value: A
    empty: bool


class _KeyState(Generic[A]):
    __slots__ = ("first", "last_ts", "open")

    def __init__(self, first: int, ts_s: float) -> None:
        self.first = first
        self.last_ts = ts_s
        self.open: dict[int, A] = {}


class EventTimeWindows(Generic[A]):
    """Tumbling event-time windows per key, with a shared watermark.

    Args:
        window_s: Window length in seconds.
        lateness_s: How far behind the largest event time seen an event may be and still land
            in its window.
        new_value: Makes a window's accumulator from its key and start time (also for the
            empty windows of a silent key).
        idle_expiry_s: A key silent for this long stops emitting (empty) windows.

    Examples:
        >>> w = EventTimeWindows(30.0, 10.0, lambda key, start: [])
        >>> w.route("api", 5.0).append("a")
        >>> w.route("db", 41.0).append("b")   # watermark 31: window [0, 30) closes
        >>> [(c.key, c.start_s, c.value, c.empty) for c in w.pop_closed()]
        [('api', 0.0, ['a'], False)]
        >>> w.route("api", 12.0) is None, w.late   # its window has closed: late
        (True, 1)
        >>> w.advance(100.0)                     # watermark 90: [30, 60) and [60, 90) close
        >>> [(c.key, c.start_s, c.empty) for c in w.pop_closed()]
        [('api', 30.0, True), ('db', 30.0, False), ('api', 60.0, True), ('db', 60.0, True)]
    """

    def __init__(
        self,
        window_s: float,
        lateness_s: float,
        new_value: Callable[[str, float], A],
        *,
        idle_expiry_s: float = 3600.0,
    ) -> None:
        if window_s <= 0 or lateness_s < 0 or idle_expiry_s <= 0:
            raise ValueError("window_s and idle_expiry_s must be positive, lateness_s >= 0")
        self.window_s = window_s
        self.lateness_s = lateness_s
        self.idle_expiry_s = idle_expiry_s
        self._new_value = new_value
        self._keys: dict[str, _KeyState[A]] = {}
        self._max_ts = -math.inf
        self._closed_below = -(2**62)  # windows with a lower index are closed
        self._closed: list[ClosedWindow[A]] = []
        self.late = 0
        self.closed = 0
        self.empty = 0

    @property
    def watermark_s(self) -> float:
        """Event time below which windows are closed (``-inf`` before any event)."""
        return self._max_ts - self.lateness_s

    def __len__(self) -> int:
        """How many keys have been seen."""
        return len(self._keys)

    def open_windows(self) -> int:
        """How many windows are open (holding events, not yet closed)."""
        return sum(len(state.open) for state in self._keys.values())

    def route(self, key: str, ts_s: float) -> A | None:
        """The accumulator of the window ``ts_s`` falls in, or None if that window has closed.

        The event moves the watermark first, which may close windows (see :meth:`pop_closed`).
        """
        if ts_s > self._max_ts:
            self._observe(ts_s)
        index = math.floor(ts_s / self.window_s)
        if index < self._closed_below:
            self.late += 1
            return None
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState(index, ts_s)
        else:
            if ts_s > state.last_ts:
                state.last_ts = ts_s
            if index < state.first:  # out of order, yet on time
                state.first = index
        value = state.open.get(index)
        if value is None:
            value = state.open[index] = self._new_value(key, index * self.window_s)
        return value

    def advance(self, to_ts_s: float) -> None:
        """Move the watermark as an event at ``to_ts_s`` would (for a consumer that is idle)."""
        if to_ts_s > self._max_ts:
            self._observe(to_ts_s)

    def pop_closed(self) -> list[ClosedWindow[A]]:
        """The windows closed since the last call, by start time, then key in first-seen order."""
        closed, self._closed = self._closed, []
        return closed

    def _observe(self, ts_s: float) -> None:
        self._max_ts = ts_s
        below = math.floor((ts_s - self.lateness_s) / self.window_s)
        if below > self._closed_below:
            self._close(below)

    def _close(self, below: int) -> None:
        step: list[ClosedWindow[A]] = []
        w = self.window_s
        for key, state in self._keys.items():
            # Empty windows only while the key is not idle: up to idle_expiry_s after its last
            # event. Its windows with events all start before that.
            expiry = math.ceil((state.last_ts + self.idle_expiry_s) / w)
            for index in range(max(self._closed_below, state.first), min(below, expiry)):
                value = state.open.pop(index, None)
                empty = value is None
                if value is None:
                    value = self._new_value(key, index * w)
                    self.empty += 1
                step.append(ClosedWindow(key, index, index * w, (index + 1) * w, value, empty))
        self._closed_below = below
        step.sort(key=lambda c: c.index)  # stable: keys keep their first-seen order
        self.closed += len(step)
        self._closed.extend(step)
