"""stream.core.logs.windows: event-time tumbling windows, watermark, lateness, silent keys."""

from __future__ import annotations

from stream.core.logs.windows import ClosedWindow, EventTimeWindows


def _windows(**kwargs: float) -> EventTimeWindows[list[float]]:
    return EventTimeWindows(30.0, 10.0, lambda key, start: [], **kwargs)


def _route(w: EventTimeWindows[list[float]], key: str, ts: float) -> bool:
    acc = w.route(key, ts)
    if acc is None:
        return False
    acc.append(ts)
    return True


def _summary(closed: list[ClosedWindow[list[float]]]) -> list[tuple[str, float, list[float]]]:
    return [(c.key, c.start_s, c.value) for c in closed]


def test_window_closes_only_when_the_watermark_passes_its_end_plus_lateness() -> None:
    w = _windows()
    _route(w, "api", 1.0)
    _route(w, "api", 39.0)  # watermark 29: [0, 30) still open
    assert w.pop_closed() == []
    _route(w, "api", 40.0)  # watermark 30: [0, 30) closes
    assert _summary(w.pop_closed()) == [("api", 0.0, [1.0])]
    assert w.closed == 1
    assert w.empty == 0


def test_late_event_within_lateness_lands_in_its_own_window() -> None:
    w = _windows()
    _route(w, "api", 35.0)
    assert _route(w, "api", 29.0)  # 6 s behind: window [0, 30) is still open
    _route(w, "api", 75.0)
    closed = _summary(w.pop_closed())
    assert closed[0] == ("api", 0.0, [29.0])
    assert closed[1] == ("api", 30.0, [35.0])
    assert w.late == 0


def test_event_beyond_lateness_is_counted_and_kept_out_of_windows() -> None:
    w = _windows()
    _route(w, "api", 5.0)
    _route(w, "api", 41.0)  # closes [0, 30)
    assert not _route(w, "api", 12.0)
    assert not _route(w, "db", 29.9)  # any key: the watermark is shared
    assert w.late == 2
    w.advance(1000.0)
    values = [v for _, _, vs in _summary(w.pop_closed()) for v in vs]
    assert 12.0 not in values
    assert 29.9 not in values


def test_silent_key_emits_empty_windows() -> None:
    w = _windows()
    _route(w, "api", 5.0)
    _route(w, "db", 6.0)
    for t in range(36, 160, 10):  # only db keeps logging
        _route(w, "db", float(t))
    closed = w.pop_closed()
    api = [(c.start_s, c.empty) for c in closed if c.key == "api"]
    assert api == [(0.0, False), (30.0, True), (60.0, True), (90.0, True)]
    assert w.empty == 3
    # Closed by start time, keys in first-seen order.
    assert [(c.key, c.start_s) for c in closed][:4] == [
        ("api", 0.0),
        ("db", 0.0),
        ("api", 30.0),
        ("db", 30.0),
    ]


def test_advance_closes_windows_when_no_events_arrive() -> None:
    w = _windows()
    _route(w, "api", 5.0)
    w.advance(100.0)
    assert [(c.start_s, c.empty) for c in w.pop_closed()] == [
        (0.0, False),
        (30.0, True),
        (60.0, True),
    ]
    w.advance(50.0)  # never backwards
    assert w.pop_closed() == []
    assert w.watermark_s == 90.0


def test_idle_key_stops_emitting_after_the_expiry() -> None:
    w = _windows(idle_expiry_s=90.0)
    _route(w, "api", 5.0)
    w.advance(10_000.0)
    starts = [c.start_s for c in w.pop_closed()]
    assert starts == [0.0, 30.0, 60.0, 90.0]  # windows starting within 90 s of its last line
    _route(w, "api", 10_005.0)  # it comes back: windows again from there
    w.advance(10_100.0)
    assert [c.start_s for c in w.pop_closed()] == [9990.0, 10_020.0, 10_050.0]


def test_out_of_order_first_events_are_not_lost() -> None:
    w = _windows()
    _route(w, "other", 35.0)
    _route(w, "api", 31.0)
    _route(w, "api", 25.0)  # before api's first window, yet on time
    w.advance(200.0)
    api = [(c.start_s, c.value) for c in w.pop_closed() if c.key == "api"]
    assert api[:2] == [(0.0, [25.0]), (30.0, [31.0])]


def test_same_events_same_windows_whatever_the_batches() -> None:
    events = [("api", 3.0), ("db", 8.0), ("api", 31.0), ("db", 22.0), ("api", 95.0), ("db", 61.0)]
    one = _windows()
    for key, ts in events:
        _route(one, key, ts)
    one.advance(500.0)
    other = _windows()
    seen: list[ClosedWindow[list[float]]] = []
    for key, ts in events:
        _route(other, key, ts)
        seen += other.pop_closed()
    other.advance(500.0)
    seen += other.pop_closed()
    assert _summary(one.pop_closed()) == _summary(seen)


def test_the_watermark_follows_the_slowest_source() -> None:
    w = _windows()
    _route_from(w, "api", 5.0, "p0")
    _route_from(w, "db", 6.0, "p1")
    _route_from(w, "api", 500.0, "p0")  # p0 is far ahead: p1 may still bring older lines
    assert w.pop_closed() == []
    assert _route_from(w, "db", 20.0, "p1")  # not late: p1's own time is what counts
    _route_from(w, "db", 75.0, "p1")  # now both are past 65: [0, 30) and [30, 60) close
    assert [(c.key, c.index) for c in w.pop_closed()] == [
        ("api", 0),
        ("db", 0),
        ("api", 1),
        ("db", 1),
    ]
    assert w.watermark_s == 65.0
    assert w.late == 0


def test_an_idle_source_stops_holding_the_watermark_until_it_delivers_again() -> None:
    w = _windows()
    _route_from(w, "api", 5.0, "p0")
    _route_from(w, "db", 6.0, "p1")
    _route_from(w, "api", 100.0, "p0")
    w.set_idle("p1")  # caught up: nothing more from p1 for now
    assert [c.index for c in w.pop_closed() if c.key == "api"] == [0, 1, 2]
    assert w.watermark_s == 90.0
    assert not _route_from(w, "db", 50.0, "p1")  # p1 comes back with an old line: late
    _route_from(w, "db", 101.0, "p1")
    _route_from(w, "api", 200.0, "p0")
    assert w.watermark_s == 91.0  # p1 is active again and the slowest; never moves back
    assert w.late == 1


def test_a_held_source_keeps_windows_open_until_it_delivers_or_goes_idle() -> None:
    w = _windows()
    w.hold("p1")
    _route_from(w, "api", 5.0, "p0")
    _route_from(w, "api", 300.0, "p0")
    assert w.pop_closed() == []
    assert _route_from(w, "db", 1.0, "p1")  # the backlog it was holding for is on time
    w.drop("p1")  # handed to another consumer: no longer waited for
    assert [c.key for c in w.pop_closed() if c.index == 0] == ["api", "db"]


def _route_from(w: EventTimeWindows[list[float]], key: str, ts: float, source: str) -> bool:
    acc = w.route(key, ts, source)
    if acc is None:
        return False
    acc.append(ts)
    return True
