"""stream.core.logs.offsets: log offsets are committable only past lines of closed windows."""

from __future__ import annotations

from stream.core.logs.offsets import OpenWindowOffsets


def test_each_partition_holds_at_the_first_line_of_its_oldest_open_window() -> None:
    gate: OpenWindowOffsets[str] = OpenWindowOffsets()
    for offset, window in enumerate([3, 3, 4, 3, 5]):  # window 3 gets a line out of order
        gate.add("a", offset, window)
    for offset, window in enumerate([4, 4, 5], start=10):
        gate.add("b", offset, window)
    assert gate.committable(closed_below=3) == {"a": 0, "b": 10}
    assert gate.held() == 5
    assert gate.committable(closed_below=4) == {"a": 2, "b": 10}
    assert gate.committable(closed_below=5) == {"a": 4, "b": 12}
    assert gate.committable(closed_below=6) == {"a": 5, "b": 13}
    assert gate.held() == 0


def test_late_and_dead_lettered_lines_hold_nothing() -> None:
    gate: OpenWindowOffsets[str] = OpenWindowOffsets()
    gate.add("a", 7, None)  # dead-lettered
    gate.add("a", 8, 1)  # late: its window (1) is already closed
    assert gate.committable(closed_below=2) == {"a": 9}


def test_forgotten_partitions_are_not_committed() -> None:
    gate: OpenWindowOffsets[str] = OpenWindowOffsets()
    gate.add("a", 0, 1)
    gate.add("b", 0, 1)
    gate.forget(["a"])
    assert gate.committable(closed_below=0) == {"b": 0}
