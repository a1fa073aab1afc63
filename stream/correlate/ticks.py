"""Ticks: the correlator's event time, less the allowed lateness, written into every scoped
alerts partition every ``correlate_tick_s``, so that event time moves (and problems resolve)
while no alert comes (:mod:`stream.core.problems.event_clock`)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer
from prometheus_client import Counter

from stream.core.problems.event_clock import EventClock
from stream.core.problems.scoped_log import tick_value
from stream.kafka.publisher import Publisher

__all__ = ["Ticker"]


class Ticker:
    """Writes the ticks into the scoped alerts topic.

    Args:
        publisher: Sends the ticks.
        topic: The scoped alerts topic: a tick goes into each of its partitions.
        clock: The event time the ticks carry.
        every_s: Wall seconds between ticks.
        lateness_s: Event seconds a tick stays behind the clock, for alerts of other
            partitions still on their way.
        written: Counts the ticks written.
    """

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        clock: EventClock,
        *,
        every_s: float,
        lateness_s: float,
        written: Counter,
    ) -> None:
        self.publisher, self.topic, self.clock = publisher, topic, clock
        self.every_s, self.lateness_s = every_s, lateness_s
        self._written = written
        self._ticked_at = 0.0

    async def tick_if_due(self, consumer: AIOKafkaConsumer) -> None:
        """Every ``every_s``: event time (less the lateness) into every partition, once the
        clock has seen an event."""
        wall = time.time()
        if wall - self._ticked_at < self.every_s:
            return
        event_s = self.clock.now(wall)
        if event_s is None:
            return
        self._ticked_at = wall
        value = tick_value(event_s - self.lateness_s)
        sends = [
            await self.publisher.send_bytes(self.topic, b"", value, partition=p)
            for p in sorted(consumer.partitions_for_topic(self.topic) or ())
        ]
        await asyncio.gather(*sends)
        self._written.inc(len(sends))
