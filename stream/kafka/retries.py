"""A service's start against a cluster that may not be up yet: retried with backoff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from aiokafka.errors import KafkaError

__all__ = ["start_with_retries"]

log = structlog.get_logger(__name__)


async def start_with_retries(
    start: Callable[[], Awaitable[None]],
    timeout_s: float,
    stop_requested: Callable[[], bool],
    *,
    first_delay_s: float = 0.5,
    max_delay_s: float = 8.0,
) -> None:
    """Await ``start()``, retrying retriable Kafka errors (a broker not up yet) with
    exponential backoff for up to ``timeout_s``; a stop request or a non-retriable error
    ends the retries (the error propagates)."""
    deadline = time.monotonic() + timeout_s
    delay = first_delay_s
    while True:
        try:
            await start()
            return
        except KafkaError as exc:
            left = deadline - time.monotonic()
            if not getattr(exc, "retriable", False) or left <= 0 or stop_requested():
                raise
            log.warning("kafka_unreachable_retrying", error=str(exc), retry_in_s=delay)
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, max_delay_s)
