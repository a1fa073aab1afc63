"""The dead-letter path: a record that failed goes to the DLQ with why, counted and logged."""

from __future__ import annotations

import collections

import structlog

from stream.codec import DecodeError
from stream.core.pipeline import Clock
from stream.kafka.publisher import Ack, Publisher
from stream.kafka.records import Record, dead_letter_of
from stream.telemetry import DetectorMetrics

__all__ = ["DeadLetters"]

log = structlog.get_logger(__name__)


class DeadLetters:
    """Sends records that failed to the dead-letter topic, with the reason.

    Args:
        publisher: Sends the letters (each send returns an ack to await before committing).
        metrics: Counts them by topic and reason.
        counts: The detector's running totals (``dead_lettered``).
        clock: The time stamped on a letter.
    """

    def __init__(
        self,
        publisher: Publisher,
        metrics: DetectorMetrics,
        counts: collections.Counter[str],
        clock: Clock,
    ) -> None:
        self._publisher = publisher
        self._metrics = metrics
        self._counts = counts
        self._clock = clock

    async def send(self, record: Record, error: DecodeError) -> Ack:
        """Dead-letter ``record`` for ``error``; the send's ack."""
        self._metrics.dead_lettered.labels(topic=record.topic, reason=error.reason).inc()
        self._counts["dead_lettered"] += 1
        log.warning(
            "message_dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=error.reason,
            error=error.detail[:200],
        )
        letter = dead_letter_of(record, error, self._clock())
        return await self._publisher.send_dead_letter(letter, record.key)
