"""Stopping in bounded time, whatever the broker does.

A stop talks to Kafka (commit, leave the group, flush the producer), and aiokafka retries a
broker that is away without end: a detector stopped during an outage waited for acks and
retried metadata for minutes after SIGTERM. Here every wait while stopping has a deadline
(:class:`StopDeadline`, counted from the signal), and a watchdog thread
(:func:`start_exit_watchdog`) ends the process when the deadline has passed and something
still does not return (a library's cleanup, a worker thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog

from stream.detector.lifelines import exit_at_once

__all__ = ["StopDeadline", "StopRequest", "start_exit_watchdog"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class StopDeadline:
    """The time left to stop in, shared by every step of a stop.

    Args:
        timeout_s: The whole stop's budget.
        started_at: When the stop was asked for (a ``clock`` reading; default: now).
        clock: Monotonic seconds (inject one in tests).

    Examples:
        >>> now = [100.0]
        >>> deadline = StopDeadline(30.0, clock=lambda: now[0])
        >>> now[0] = 110.0
        >>> deadline.left_s()
        20.0
        >>> async def never() -> None:
        ...     await asyncio.sleep(3600)
        >>> from structlog.testing import capture_logs
        >>> deadline = StopDeadline(0.05)
        >>> with capture_logs() as logs:
        ...     asyncio.run(deadline.wait("commit", never()))
        False
        >>> deadline.timed_out, logs[0]["event"]
        (['commit'], 'stop_step_timed_out')
    """

    def __init__(
        self,
        timeout_s: float,
        *,
        started_at: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._ends_at = (clock() if started_at is None else started_at) + timeout_s
        self.timed_out: list[str] = []
        """The steps cut short, in order."""

    def left_s(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self._ends_at - self._clock())

    async def wait(self, what: str, step: Awaitable[T], *, share: float = 1.0) -> bool:
        """Await ``step`` for at most ``share`` of the time left; past that it is cancelled,
        logged (``stop_step_timed_out``) and False is returned. Its errors propagate."""
        budget = self.left_s() * share
        try:
            await asyncio.wait_for(step, timeout=max(budget, 0.0))
        except TimeoutError:
            self.timed_out.append(what)
            log.warning("stop_step_timed_out", step=what, waited_s=round(budget, 3))
            return False
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this stop itself is cancelled
            # The step's own tasks were cancelled under it (aiokafka's fetcher, closed while
            # it waits out a retry backoff, re-raises their cancellation): it has ended.
            log.warning("stop_step_cancelled", step=what)
        return True

    async def settle(self, what: str, step: Awaitable[T], *, share: float = 1.0) -> bool:
        """:meth:`wait`, its errors suppressed (a peer that fails while being closed only
        means less was said goodbye to); False when it timed out or failed."""
        try:
            return await self.wait(what, step, share=share)
        except Exception:
            return False


def start_exit_watchdog(timeout_s: float, *, what: str) -> Callable[[], None]:
    """End the process with status 1 if it is still alive ``timeout_s`` from now, after one
    JSON line on stderr (:func:`~stream.detector.lifelines.exit_at_once`). Returns a function that
    disarms it."""

    def fire() -> None:
        exit_at_once("exit_forced", stopping=what, timeout_s=timeout_s)

    timer = threading.Timer(timeout_s, fire)
    timer.name = "vigil-exit-watchdog"
    timer.daemon = True
    timer.start()
    return timer.cancel


class StopRequest:
    """A process's stop, asked for once (by a signal): from then on it is bounded by a
    :class:`StopDeadline` of ``timeout_s`` and backed by :func:`start_exit_watchdog`.

    Args:
        timeout_s: The stop's budget, from the request.
        what: The process, named in the watchdog's line.
        on_request: Called at each request (e.g. the service's ``request_stop``).
        event: Logged at the first request, with the timeout.
    """

    def __init__(
        self, timeout_s: float, what: str, on_request: Callable[[], None], *, event: str
    ) -> None:
        self.timeout_s = timeout_s
        self.what = what
        self.event = event
        self._on_request = on_request
        self._asked = asyncio.Event()
        self.deadline: StopDeadline | None = None
        """Set at the first request."""

    def request(self) -> None:
        """Ask for the stop (signal-handler safe; later calls only repeat ``on_request``)."""
        if self.deadline is None:
            self.deadline = StopDeadline(self.timeout_s)
            start_exit_watchdog(self.timeout_s, what=self.what)
            log.info(self.event, timeout_s=self.timeout_s)
        self._asked.set()
        self._on_request()

    def deadline_or_now(self) -> StopDeadline:
        """The deadline of the request, or one starting now (a stop after a failure)."""
        return self.deadline if self.deadline is not None else StopDeadline(self.timeout_s)

    async def run(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` to its end; once a stop is asked for, it has half of the time left
        to end on its own (say, to finish the batch in hand) and is then cancelled. Its
        errors propagate."""
        task = asyncio.create_task(work)
        asked = asyncio.create_task(self._asked.wait())
        try:
            await asyncio.wait({task, asked}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                assert self.deadline is not None
                await self.deadline.wait("work_in_hand", asyncio.shield(task), share=0.5)
        finally:
            asked.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not task.cancelled():
            task.result()
