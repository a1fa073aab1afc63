"""Which offsets may be committed: a record's, once every delivery it started is settled."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["OffsetTracker"]

P = TypeVar("P", bound=Hashable)


class OffsetTracker(Generic[P]):
    """Records read per partition, each with its deliveries outstanding; a partition's
    commit position advances over the records settled, in order.

    Examples:
        >>> tracker: OffsetTracker[str] = OffsetTracker()
        >>> tracker.add("p0", 10, pending=2)
        >>> tracker.add("p0", 11, pending=0)
        >>> tracker.committable()
        {}
        >>> tracker.settle("p0", 10); tracker.committable()
        {}
        >>> tracker.settle("p0", 10); tracker.committable()
        {'p0': 12}
        >>> tracker.committable(), tracker.pending
        ({}, 0)
    """

    def __init__(self) -> None:
        self._open: dict[P, OrderedDict[int, int]] = {}
        self._position: dict[P, int] = {}
        self._committed: dict[P, int] = {}
        self.pending = 0
        """Records with deliveries outstanding."""

    def add(self, partition: P, offset: int, *, pending: int) -> None:
        """A record read, with ``pending`` deliveries started for it."""
        records = self._open.setdefault(partition, OrderedDict())
        records[offset] = pending
        if pending:
            self.pending += 1
        self._advance(partition)

    def settle(self, partition: P, offset: int) -> None:
        """One delivery of the record is settled (a partition dropped since: ignored)."""
        records = self._open.get(partition)
        if records is None or offset not in records or records[offset] == 0:
            return
        records[offset] -= 1
        if records[offset] == 0:
            self.pending -= 1
            self._advance(partition)

    def _advance(self, partition: P) -> None:
        records = self._open[partition]
        while records:
            offset, left = next(iter(records.items()))
            if left:
                break
            records.popitem(last=False)
            self._position[partition] = offset + 1

    def committable(self) -> dict[P, int]:
        """The commit positions that moved since the last call."""
        moved = {
            p: position
            for p, position in self._position.items()
            if self._committed.get(p) != position
        }
        self._committed.update(moved)
        return moved

    def uncommit(self, positions: dict[P, int]) -> None:
        """Commits of ``positions`` failed: offer them again."""
        for partition in positions:
            self._committed.pop(partition, None)

    def drop(self, partitions: Iterable[P]) -> None:
        """Forget partitions no longer ours."""
        for partition in partitions:
            records = self._open.pop(partition, None)
            if records is not None:
                self.pending -= sum(1 for left in records.values() if left)
            self._position.pop(partition, None)
            self._committed.pop(partition, None)
