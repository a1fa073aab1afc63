"""Which log offsets may be committed while windows are still open (pure bookkeeping).

A log line's output is the alert of the window it falls in, and that alert exists only once
the watermark closes the window, possibly many batches later. Committing the line's offset
before then would lose the window if the process died: a restart would resume after the line,
and the window would be scored without it, or not at all. So, per partition, the committable
offset is the first offset of the oldest window still open there (re-read from it after a
crash, every open window is rebuilt whole), or the next offset when none is open.

Windows close for every service at once (one watermark), so a single number, the index below
which windows are closed, tells which entries to drop.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["OpenWindowOffsets"]

P = TypeVar("P", bound=Hashable)


class OpenWindowOffsets(Generic[P]):
    """Per partition, the first offset of each open window, and the offset after the last.

    Examples:
        >>> gate = OpenWindowOffsets()
        >>> for offset, window in [(0, 1), (1, 1), (2, 2), (3, None), (4, 2)]:
        ...     gate.add("p0", offset, window)   # None: a line in no window (dead-lettered)
        >>> gate.committable(closed_below=1)     # window 1 is open: hold at its first line
        {'p0': 0}
        >>> gate.committable(closed_below=2)     # window 1 closed, 2 open since offset 2
        {'p0': 2}
        >>> gate.committable(closed_below=3)     # all closed: everything read is done
        {'p0': 5}
    """

    def __init__(self) -> None:
        self._first: dict[P, dict[int, int]] = {}
        self._next: dict[P, int] = {}

    def add(self, partition: P, offset: int, window: int | None) -> None:
        """Record that ``offset`` of ``partition`` was read, into ``window`` (None: no window).

        Offsets of a partition must come in increasing order, as a consumer reads them.
        """
        self._next[partition] = offset + 1
        if window is not None:
            firsts = self._first.setdefault(partition, {})
            if window not in firsts:
                firsts[window] = offset

    def committable(self, closed_below: int) -> dict[P, int]:
        """The offset each partition may be committed to, given windows below are closed."""
        out: dict[P, int] = {}
        for partition, following in self._next.items():
            firsts = self._first.get(partition)
            if firsts:
                for window in [w for w in firsts if w < closed_below]:
                    del firsts[window]
            out[partition] = min(firsts.values()) if firsts else following
        return out

    def held(self) -> int:
        """How many open windows hold a partition's commit back (one per window and partition)."""
        return sum(len(firsts) for firsts in self._first.values())

    def export(self, partition: P) -> tuple[dict[int, int], int | None]:
        """A partition's open windows' first offsets and its next offset (for a snapshot)."""
        return dict(self._first.get(partition, {})), self._next.get(partition)

    def install(self, partition: P, state: tuple[dict[int, int], int | None]) -> None:
        """Take a partition's bookkeeping back from :meth:`export` (a restored snapshot)."""
        firsts, following = state
        self._first[partition] = dict(firsts)
        if following is not None:
            self._next[partition] = following

    def forget(self, partitions: Iterable[P]) -> None:
        """Drop partitions this consumer no longer owns (after a rebalance)."""
        for partition in partitions:
            self._first.pop(partition, None)
            self._next.pop(partition, None)
