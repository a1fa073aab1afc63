"""Event-time tumbling windows per key, closed by a watermark with allowed lateness.

Window ``k`` of a key covers event times ``[k * window_s, (k + 1) * window_s)``; window ``k``
closes once the watermark reaches its end, for every key at once. An event whose window has
already closed is *late*: it is counted and goes into no window (it would distort a window
already scored, or the wrong one).

Events come from *sources* (Kafka partitions; a replayed file is one source). Each source's
events arrive roughly in event-time order, but sources are read at their own pace: a consumer
can be an hour into one partition's backlog and a minute into another's. So the watermark
follows the slowest source: it is the smallest, over the active sources, of the largest
event time each has delivered, minus the allowed lateness. A source that has nothing more to
deliver (a caught-up partition) is marked *idle* and leaves that minimum until it delivers
again, so a quiet partition does not hold every window open; a source known to have events
still to deliver can be *held* (it counts as having delivered nothing yet). The watermark
never moves back.

A key that goes silent still closes its windows, as empty ones: a drop to zero lines is often
the incident. After ``idle_expiry_s`` of silence a key stops emitting windows until it logs
again (its models stay), which bounds the work a long gap or a retired service costs.

Everything is driven by event times and the calls made, never the wall clock, so the same
calls give the same windows, whatever the batch boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
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
    """Tumbling event-time windows per key, with a shared watermark over sources.

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
        >>> w.hold("p1")                      # a source with events to come holds the watermark
        >>> w.route("api", 75.0).append("c")
        >>> w.pop_closed()
        []
        >>> w.set_idle("p1")                  # it had none after all: watermark 65
        >>> [(c.key, c.start_s, c.value, c.empty) for c in w.pop_closed()]
        [('api', 30.0, [], True), ('db', 30.0, ['b'], False)]
        >>> w.advance(100.0)                   # watermark 90: [60, 90) closes
        >>> [(c.key, c.start_s, c.empty) for c in w.pop_closed()]
        [('api', 60.0, False), ('db', 60.0, True)]
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
        self._active: dict[Hashable, float] = {}  # source -> largest event time it delivered
        self._idle: dict[Hashable, float] = {}
        self._front = -math.inf  # the watermark plus the lateness (never moves back)
        self._latest = -math.inf
        self._closed_below = -(2**62)  # windows with a lower index are closed
        self._next_close = -math.inf  # an event time that may close window _closed_below
        self._closed: list[ClosedWindow[A]] = []
        self.late = 0
        self.closed = 0
        self.empty = 0

    @property
    def watermark_s(self) -> float:
        """Event time below which windows are closed (``-inf`` before any event)."""
        return max(self._front, self._slowest()) - self.lateness_s

    @property
    def closed_below(self) -> int:
        """Windows with a lower index are closed (and events in them are late)."""
        return self._closed_below

    @property
    def latest_s(self) -> float:
        """The largest event time seen or advanced to, over all sources (``-inf`` before any)."""
        return self._latest

    def index_of(self, ts_s: float) -> int:
        """The index of the window event time ``ts_s`` falls in."""
        return math.floor(ts_s / self.window_s)

    def __len__(self) -> int:
        """How many keys have been seen."""
        return len(self._keys)

    def open_windows(self) -> int:
        """How many windows are open (holding events, not yet closed)."""
        return sum(len(state.open) for state in self._keys.values())

    def route(self, key: str, ts_s: float, source: Hashable = None) -> A | None:
        """The accumulator of the window ``ts_s`` falls in, or None if that window has closed.

        The event moves its source's event time first, which may move the watermark and close
        windows (see :meth:`pop_closed`).
        """
        if ts_s > self._active.get(source, -math.inf):
            self._observe(source, ts_s)
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
        """Move every source to ``to_ts_s`` as an event there would (a consumer gone idle)."""
        for sources in (self._active, self._idle):
            for source, ts in sources.items():
                sources[source] = max(ts, to_ts_s)
        self._latest = max(self._latest, to_ts_s)
        self._settle(to_ts_s)

    def hold(self, source: Hashable) -> None:
        """``source`` has events still to deliver: the watermark waits for it."""
        if source not in self._active:
            # An idle source's time may be behind the watermark: it counts from there.
            self._active[source] = min(self._idle.pop(source, -math.inf), self._front)

    def set_idle(self, source: Hashable) -> None:
        """``source`` has nothing more to deliver for now: the watermark stops waiting for it."""
        ts = self._active.pop(source, None)
        if ts is not None:
            self._idle[source] = ts
            self._settle()

    def drop(self, source: Hashable) -> None:
        """Forget ``source`` (a partition handed to another consumer)."""
        self._idle.pop(source, None)
        if self._active.pop(source, None) is not None:
            self._settle()

    def export_keys(self, keys: Iterable[str]) -> dict[str, _KeyState[A]]:
        """These keys' open windows, for a snapshot (live objects: pickle them)."""
        return {key: state for key in keys if (state := self._keys.get(key)) is not None}

    def install_keys(self, states: Mapping[str, _KeyState[A]], closed_below: int) -> None:
        """Take over keys' open windows from :meth:`export_keys`, taken when windows below
        ``closed_below`` were closed: those are not emitted again here either."""
        if closed_below > self._closed_below:
            self._closed_below = closed_below
            self._front = max(self._front, closed_below * self.window_s + self.lateness_s)
            self._next_close = closed_below * self.window_s + self.window_s + self.lateness_s
        for key, state in states.items():
            state.first = max(state.first, self._closed_below)
            self._keys[key] = state

    def forget_keys(self, keys: Iterable[str]) -> None:
        """Drop keys (their source went to another consumer)."""
        for key in keys:
            self._keys.pop(key, None)

    def pop_closed(self) -> list[ClosedWindow[A]]:
        """The windows closed since the last call, by start time, then key in first-seen order."""
        closed, self._closed = self._closed, []
        return closed

    def _observe(self, source: Hashable, ts_s: float) -> None:
        if source not in self._active:
            self._idle.pop(source, None)
        self._active[source] = ts_s
        if ts_s > self._latest:
            self._latest = ts_s
        if ts_s >= self._next_close:
            self._settle()

    def _slowest(self) -> float:
        return min(self._active.values()) if self._active else -math.inf

    def _settle(self, floor: float = -math.inf) -> None:
        """Move the watermark to the slowest active source (or ``floor``), closing windows."""
        front = max(self._slowest(), floor)
        if front <= self._front:
            return
        self._front = front
        below = math.floor((front - self.lateness_s) / self.window_s)
        if below > self._closed_below:
            self._close(below)

    def _close(self, below: int) -> None:
        step: list[ClosedWindow[A]] = []
        w = self.window_s
        reach = math.ceil(self.idle_expiry_s / w) + 1
        band = math.ceil(self.lateness_s / w) + 1
        for key, state in self._keys.items():
            # Empty windows only while the key is not idle: up to idle_expiry_s after its last
            # event. Its windows with events all start before that.
            expiry = math.ceil((state.last_ts + self.idle_expiry_s) / w)
            start, stop = max(self._closed_below, state.first), min(below, expiry)
            for index in _active(start, stop, state.open, reach, band):
                value = state.open.pop(index, None)
                empty = value is None
                if value is None:
                    value = self._new_value(key, index * w)
                    self.empty += 1
                step.append(ClosedWindow(key, index, index * w, (index + 1) * w, value, empty))
        self._closed_below = below
        self._next_close = below * w + w + self.lateness_s
        step.sort(key=lambda c: c.index)  # stable: keys keep their first-seen order
        self.closed += len(step)
        self._closed.extend(step)


def _active(
    start: int, stop: int, open_: Mapping[int, object], reach: int, band: int
) -> Iterator[int]:
    """The windows in ``[start, stop)`` a key emits: those with events, and empty ones up to
    ``reach`` windows after one with events (or after ``start``) or ``band`` windows before
    one.

    Read in event-time order, a key's events close its earlier windows as they come, so its
    windows with events are never far apart and this is every window in the range. Read from
    sources far apart in event time (a partition hours ahead, a line with a clock years off),
    one key can hold windows with events years apart: the silence between them is not emitted
    window by window (that took all memory).
    """
    cursor, until = start, start + reach
    for index in sorted(i for i in open_ if i < stop):
        yield from range(cursor, min(index, until))
        yield from range(max(cursor, until, index - band), index)
        yield index
        cursor, until = index + 1, index + 1 + reach
    yield from range(cursor, min(stop, until))
