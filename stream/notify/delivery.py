"""Delivery to one sink: in order per problem, problems side by side, each notice retried
with backoff until the sink takes it, refuses it, or ``retry_max_s`` has passed.

A slow or failing sink holds up only its own notices: each sink has its own worker, and
within it each problem its own chain (a problem's notices never overtake each other).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import structlog

from stream.core.notifications import (
    Action,
    Attempt,
    backoff_s,
    classify_error,
    classify_status,
    parse_retry_after,
)
from stream.notify.metrics import NotifyMetrics, retry_reason
from stream.notify.sinks import Sink
from stream.schemas import Problem

__all__ = ["Job", "Origin", "RetryPolicy", "Settled", "SinkWorker"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Origin:
    """The record a notice came from: its offset waits for the notice, and a notice given
    up is dead-lettered with it."""

    partition: Hashable
    topic: str
    partition_id: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Job:
    """One notice for one sink; ``origin`` is None for a re-post."""

    problem: Problem
    action: Action
    origin: Origin | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often a notice is retried."""

    base_s: float
    cap_s: float
    max_s: float


Settled = Callable[[Sink, Job, Attempt], Awaitable[None]]
"""Called once per job with its last attempt (delivered, or given up)."""


class SinkWorker:
    """Delivers one sink's jobs.

    Args:
        sink: Where to.
        client: The HTTP client (its timeout bounds an attempt).
        retry: Backoff and give-up time.
        metrics: Counts retries.
        on_settled: Told of each job's end (delivered or given up).
        concurrency: Problems delivered at once.
        clock: Wall-clock time for requests (timestamps, Alertmanager's endsAt).
    """

    def __init__(
        self,
        sink: Sink,
        client: httpx.AsyncClient,
        retry: RetryPolicy,
        metrics: NotifyMetrics,
        on_settled: Settled,
        *,
        concurrency: int = 16,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sink = sink
        self._client = client
        self._retry = retry
        self._metrics = metrics
        self._on_settled = on_settled
        self._slots = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._chains: dict[str, deque[Job]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._random = random.Random()

    @property
    def busy(self) -> int:
        """Problems with notices waiting or in flight."""
        return len(self._chains)

    def has_pending(self, problem_id: str) -> bool:
        """Whether a notice of ``problem_id`` waits or is in flight."""
        return problem_id in self._chains

    def submit(self, job: Job) -> None:
        """Queue ``job`` after the problem's earlier ones."""
        problem_id = job.problem.problem_id
        chain = self._chains.get(problem_id)
        if chain is not None:
            chain.append(job)
            return
        self._chains[problem_id] = deque([job])
        task = asyncio.create_task(self._drain(problem_id), name=f"notify-{self.sink.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel what is in flight (its records stay uncommitted, read again later)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._chains.clear()

    async def _drain(self, problem_id: str) -> None:
        chain = self._chains[problem_id]
        try:
            while chain:
                job = chain[0]
                async with self._slots:
                    try:
                        attempt = await self.deliver(job)
                    except Exception:  # a bug, not the sink: give the job up, never hang
                        log.exception("notification_unexpected_error", sink=self.sink.name)
                        attempt = Attempt("permanent", "unexpected")
                chain.popleft()
                try:
                    await self._on_settled(self.sink, job, attempt)
                except Exception:
                    log.exception("notification_settle_failed", sink=self.sink.name)
        finally:
            self._chains.pop(problem_id, None)

    async def deliver(self, job: Job) -> Attempt:
        """Send ``job`` until the sink takes or refuses it, or the retries run out."""
        started = time.monotonic()
        number = 0
        while True:
            number += 1
            attempt = await self._attempt(job)
            if attempt.outcome != "retry":
                return attempt
            delay = backoff_s(
                number,
                base_s=self._retry.base_s,
                cap_s=self._retry.cap_s,
                retry_after_s=attempt.retry_after_s,
                jitter=0.2 * self._random.random(),
            )
            if time.monotonic() - started + delay > self._retry.max_s:
                return Attempt("permanent", "retries_exhausted")
            self._metrics.retries.labels(
                sink=self.sink.name, reason=retry_reason(attempt.reason)
            ).inc()
            log.info(
                "notification_retrying",
                sink=self.sink.name,
                problem_id=job.problem.problem_id,
                revision=job.problem.revision,
                reason=attempt.reason,
                attempt=number,
                retry_in_s=round(delay, 3),
            )
            await asyncio.sleep(delay)

    async def _attempt(self, job: Job) -> Attempt:
        now = self._clock()
        request = self.sink.request(job.problem, job.action, now)
        try:
            response = await self._client.post(
                request.url, content=request.body, headers=request.headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout):
            return classify_error("connect")
        except httpx.TimeoutException:
            return classify_error("timeout")
        except httpx.TransportError:  # a dropped connection, a broken response
            return classify_error("protocol")
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        return classify_status(response.status_code, retry_after)
