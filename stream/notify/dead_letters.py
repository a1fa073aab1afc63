"""The notifier's dead letters: a malformed record, or a notice a sink refused or that
could not be delivered in time, goes to the DLQ with why; the broker's ack is waited for
(a broker away is retried with backoff, never a crash) before the record's offset moves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import structlog
from aiokafka.errors import KafkaError

from stream.codec import DecodeError, dead_letter
from stream.kafka.publisher import Publisher
from stream.notify.delivery import Origin
from stream.notify.metrics import NotifyMetrics

__all__ = ["DeadLetters"]

log = structlog.get_logger(__name__)


class DeadLetters:
    """Sends dead letters and waits for their acks.

    Args:
        publisher: The producer (started by the caller).
        metrics: Counts them by topic and reason (``notify`` for every sink's).
        counts: The notifier's running totals (``dead_lettered``).
        clock: The time stamped on a letter.
        retry_s: First and longest wait between sends while the broker is away.
    """

    def __init__(
        self,
        publisher: Publisher,
        metrics: NotifyMetrics,
        counts: dict[str, int],
        clock: Callable[[], datetime],
        retry_s: tuple[float, float] = (0.5, 8.0),
    ) -> None:
        self._publisher = publisher
        self._metrics = metrics
        self._counts = counts
        self._clock = clock
        self._retry_s = retry_s

    async def send(self, origin: Origin, error: DecodeError) -> None:
        """Dead-letter ``origin``'s record for ``error``; return once acknowledged."""
        label = "notify" if error.reason.startswith("notify_") else error.reason
        self._metrics.dead_lettered.labels(topic=origin.topic, reason=label).inc()
        self._counts["dead_lettered"] += 1
        log.warning(
            "message_dead_lettered",
            topic=origin.topic,
            partition=origin.partition_id,
            offset=origin.offset,
            reason=error.reason,
            error=error.detail[:200],
        )
        letter = dead_letter(
            topic=origin.topic,
            partition=origin.partition_id,
            offset=origin.offset,
            key=origin.key,
            value=origin.value,
            error=error,
            failed_at=self._clock(),
        )
        delay, cap = self._retry_s
        while True:
            try:
                await (await self._publisher.send_dead_letter(letter, origin.key))
                return
            except KafkaError as exc:
                log.warning("dead_letter_send_retrying", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, cap)
