"""Log windows of a key whose events arrive years apart from different sources (issue 8).

One log line with a clock years off, on one partition, while its service logs on another: when
the watermark caught up, the key emitted every empty window in between (a billion for a year
9998 timestamp) and the detector ran out of memory. Found by ``tests/integration/
test_fuzz_dlq.py``; fixed in ``stream/core/logs/windows.py`` (``_active``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream.core.logs.windows as windows_module
from stream.core.logs.windows import ClosedWindow, EventTimeWindows

YEAR_S = 365 * 86_400.0


def _windows() -> EventTimeWindows[list[float]]:
    return EventTimeWindows(30.0, 10.0, lambda key, start: [], idle_expiry_s=3600.0)


def test_a_key_years_apart_on_two_sources_emits_a_bounded_number_of_windows() -> None:
    w = _windows()
    start = 1_795_420_800.0
    for key, ts, source in [
        ("api", start, "p0"),
        ("api", start + 8000 * YEAR_S, "p1"),  # a clock 8,000 years ahead
        ("db", start + 8000 * YEAR_S + 100.0, "p0"),  # p0 catches up: the watermark jumps
    ]:
        stats = w.route(key, ts, source)
        assert stats is not None
        stats.append(ts)
    w.advance(start + 8000 * YEAR_S + 7200.0)
    api = [c for c in w.pop_closed() if c.key == "api"]
    assert [c.value for c in api if not c.empty] == [[start], [start + 8000 * YEAR_S]]
    # An hour of empty windows after each line (and none for the 8,000 years between).
    assert len(api) < 2 * (3600 / 30 + 3)
    assert api[0].start_s == start
    assert api[-1].start_s < start + 8000 * YEAR_S + 3600.0 + 30.0


_events = st.lists(
    st.tuples(
        st.sampled_from(["api", "db", "web"]),
        st.floats(min_value=0.0, max_value=9.0) | st.floats(min_value=100.0, max_value=5000.0),
        st.floats(min_value=0.0, max_value=9.0),  # how far back (within the lateness)
    ),
    max_size=60,
)


def _run(events: list[tuple[str, float, float]]) -> list[ClosedWindow[list[float]]]:
    w = _windows()
    now = 1_000_000.0
    for key, gap, back in events:
        now += gap
        stats = w.route(key, now - back)
        if stats is not None:
            stats.append(now - back)
    w.advance(now + 10_000.0)
    return w.pop_closed()


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(_events)
def test_events_in_order_from_one_source_close_the_same_windows_as_before(
    events: list[tuple[str, float, float]],
) -> None:
    """From one source in event-time order (``vigil replay``; the usual partition), every
    window of the range is emitted, as it was before the fix."""
    new = _run(events)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(windows_module, "_active", lambda start, stop, *_: range(start, stop))
        before = _run(events)
    assert new == before
