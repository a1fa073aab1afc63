"""Alerts of several partitions merged into event-time order before they are routed.

Problems are decided on event time, so the alerts of one scope should reach its partition in
event-time order. Live they nearly do (every detector keeps up); after an outage, or when
``vigil correlate`` starts on a backlog, one partition's alerts can be hours ahead of
another's. The merge holds each alert until no partition still being read can bring an
older one: the frontier is the oldest of the newest event times of the partitions that are
behind (a partition read up to its end holds nothing back). Offsets are committed only up to
the first alert still held.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["EventTimeMerge"]

T = TypeVar("T")


@dataclass(order=True)
class _Held(Generic[T]):
    event_s: float
    tie: tuple[Any, ...]
    partition: int
    offset: int
    item: T = field(compare=False)


class EventTimeMerge(Generic[T]):
    """Items of several partitions, released in event-time order.

    Examples:
        >>> merge = EventTimeMerge[str]()
        >>> merge.add(0, 10, 100.0, "a0"); merge.add(1, 7, 50.0, "b0")
        >>> merge.add(0, 11, 300.0, "a1")
        >>> merge.release(behind={0, 1, 2})  # 2 has brought nothing yet: it may be oldest
        []
        >>> merge.release(behind={0, 1})  # 1 is at 50 s: newer items may still come from it
        ['b0']
        >>> merge.commits()
        {0: 10, 1: 8}
        >>> merge.release(behind={0})  # 1 is read up to its end
        ['a0', 'a1']
        >>> merge.add(1, 8, 400.0, "b1")
        >>> merge.release(behind={0, 1}), merge.commits()
        ([], {0: 12, 1: 8})
    """

    def __init__(self) -> None:
        self._held: list[_Held[T]] = []
        self._latest: dict[int, float] = {}
        self._next: dict[int, int] = {}

    def add(
        self, partition: int, offset: int, event_s: float, item: T, tie: tuple[Any, ...] = ()
    ) -> None:
        """An item read from ``partition`` at ``offset``; items of the same event time are
        released in ``tie`` order (then by partition and offset), whatever partition brought
        them first."""
        heapq.heappush(self._held, _Held(event_s, tie, partition, offset, item))
        self._latest[partition] = max(self._latest.get(partition, event_s), event_s)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def passed(self, partition: int, offset: int) -> None:
        """A record of ``partition`` at ``offset`` that is no item (a dead letter)."""
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def release(self, behind: set[int]) -> list[T]:
        """The items no partition in ``behind`` (still being read) can precede, oldest first."""
        frontier = min((self._latest.get(p, -math.inf) for p in behind), default=math.inf)
        out: list[T] = []
        while self._held and self._held[0].event_s <= frontier:
            out.append(heapq.heappop(self._held).item)
        return out

    def commits(self) -> dict[int, int]:
        """Per partition, the offset up to which everything is released."""
        first_held: dict[int, int] = {}
        for held in self._held:
            partition = held.partition
            first_held[partition] = min(first_held.get(partition, held.offset), held.offset)
        return {p: first_held.get(p, n) for p, n in self._next.items()}

    def drop(self, partition: int) -> None:
        """Forget ``partition`` (revoked): its held items are read again by its next owner."""
        self._held = [h for h in self._held if h.partition != partition]
        heapq.heapify(self._held)
        self._latest.pop(partition, None)
        self._next.pop(partition, None)

    @property
    def held(self) -> int:
        return len(self._held)
