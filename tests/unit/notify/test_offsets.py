"""OffsetTracker: a partition's commit position moves over settled records, in order."""

from __future__ import annotations

from stream.notify.offsets import OffsetTracker


def test_positions_wait_for_the_oldest_unsettled_record() -> None:
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.add(0, 5, pending=1)
    tracker.add(0, 6, pending=1)
    tracker.add(1, 9, pending=0)
    assert tracker.committable() == {1: 10}
    tracker.settle(0, 6)  # the later one first: still held by 5
    assert tracker.committable() == {}
    assert tracker.pending == 1
    tracker.settle(0, 5)
    assert tracker.committable() == {0: 7}
    assert tracker.pending == 0


def test_failed_commits_are_offered_again_and_dropped_partitions_forgotten() -> None:
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.add(0, 1, pending=0)
    positions = tracker.committable()
    tracker.uncommit(positions)
    assert tracker.committable() == {0: 2}
    tracker.add(0, 2, pending=3)
    tracker.drop([0])
    assert tracker.pending == 0
    tracker.settle(0, 2)  # a delivery that ends after the revoke
    assert tracker.committable() == {}
