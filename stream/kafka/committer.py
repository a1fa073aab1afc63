"""Offset commits off the detector's critical path, in order, newest offsets winning.

A commit is a round trip to the group coordinator (~6 ms here), and the detector used to
wait for it after every batch, with the next records waiting behind it. Here the detector
hands over the offsets of a batch whose output is acknowledged and goes on fetching; one
background task commits whatever is newest, one commit at a time, so a partition's committed
offset never moves back. Nothing is committed before it is handed over, and nothing is handed
over before its alerts are acknowledged, so the at-least-once guarantee is unchanged: a crash
loses at most the commits still in flight, and those records are re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["BackgroundCommitter"]

P = TypeVar("P", bound=Hashable)


class BackgroundCommitter(Generic[P]):
    """Commits submitted offsets in the background, serially, coalescing what piles up.

    Args:
        commit: Commits one mapping of partition to offset (awaits the broker).

    Examples:
        >>> import asyncio
        >>> async def demo() -> list[dict[str, int]]:
        ...     done: list[dict[str, int]] = []
        ...     async def commit(offsets: dict[str, int]) -> None:
        ...         await asyncio.sleep(0.01)
        ...         done.append(dict(offsets))
        ...     committer = BackgroundCommitter(commit)
        ...     committer.submit({"p0": 10})
        ...     await asyncio.sleep(0)              # the first commit is in flight
        ...     committer.submit({"p0": 20, "p1": 5})
        ...     committer.submit({"p0": 30})        # coalesced with the one before
        ...     await committer.close()
        ...     return done
        >>> asyncio.run(demo())
        [{'p0': 10}, {'p0': 30, 'p1': 5}]
    """

    def __init__(self, commit: Callable[[dict[P, int]], Awaitable[None]]) -> None:
        self._commit = commit
        self._waiting: dict[P, int] = {}
        self._lock = asyncio.Lock()
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, offsets: dict[P, int]) -> None:
        """Queue ``offsets`` for committing; newer offsets of a partition replace older ones.

        Raises:
            Exception: the error that stopped an earlier background commit.
        """
        self.check()
        self._waiting.update(offsets)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="offset-committer")
        self._wanted.set()

    def check(self) -> None:
        """Re-raise the error that stopped the background commits, if one did."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            error = self._task.exception()
            if error is not None:
                raise error

    async def flush(self) -> None:
        """Commit everything submitted so far, and wait for it."""
        async with self._lock:
            await self._commit_waiting()

    async def close(self) -> None:
        """Flush, then stop the background task."""
        try:
            await self.flush()
        finally:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            async with self._lock:
                await self._commit_waiting()

    async def _commit_waiting(self) -> None:
        offsets, self._waiting = self._waiting, {}
        if offsets:
            await self._commit(offsets)
