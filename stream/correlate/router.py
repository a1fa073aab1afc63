"""Alerts to the partition of their scope, in event-time order (:mod:`stream.core.problems.merge`).

Every alert is re-published to the scoped alerts topic keyed by its scope (the value of the
scope label): all alerts of a scope land on one partition, whichever service raised them, so
one correlator sees them all. Malformed alerts go to the dead-letter topic with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.codec import DecodeError, decode
from stream.core.problems.correlator import tie_order
from stream.core.problems.event_clock import EventClock
from stream.core.problems.merge import EventTimeMerge
from stream.kafka.publisher import Ack, Publisher
from stream.kafka.records import Record
from stream.schemas import Alert

__all__ = ["Router"]


class Router:
    """Routes the alerts of the alerts partitions this correlator holds.

    Args:
        publisher: Sends to the scoped alerts topic.
        topic: The scoped alerts topic.
        scope_label: The label whose value is an alert's scope (None: one scope).
        clock: Sees the event time of every alert routed (ticks extrapolate it).
        dead_letter: Sends a malformed record to the dead-letter topic.
        routed: Called once per alert routed (counting).
    """

    def __init__(
        self,
        publisher: Publisher,
        topic: str,
        scope_label: str | None,
        clock: EventClock,
        dead_letter: Callable[[Record, DecodeError], Awaitable[Ack]],
        routed: Callable[[], None],
    ) -> None:
        self.publisher, self.topic, self.scope_label = publisher, topic, scope_label
        self.clock = clock
        self._dead_letter, self._routed = dead_letter, routed
        self.merge: EventTimeMerge[tuple[bytes, bytes, float]] = EventTimeMerge()

    async def take(self, records: Sequence[Record]) -> list[Ack]:
        """Hold the alerts of ``records`` for the merge; dead-letter the malformed ones."""
        pending: list[Ack] = []
        label = self.scope_label
        for record in records:
            alert = decode(record.value, Alert)
            if isinstance(alert, DecodeError) or record.value is None:
                self.merge.passed(record.partition, record.offset)
                if isinstance(alert, DecodeError):
                    pending.append(await self._dead_letter(record, alert))
                continue
            scope = alert.labels.get(label, "") if label else ""
            event_s = alert.event_ts.timestamp()
            self.merge.add(
                record.partition,
                record.offset,
                event_s,
                (scope.encode(), record.value, event_s),
                tie=tie_order(alert),
            )
        return pending

    async def release(self, consumer: AIOKafkaConsumer, alerts_topic: str) -> list[Ack]:
        """Route what the merge releases: alerts no partition still behind can precede."""
        behind: set[int] = set()
        for tp in consumer.assignment():
            if tp.topic != alerts_topic:
                continue
            highwater = consumer.highwater(tp)
            if highwater is None or await consumer.position(tp) < highwater:
                behind.add(tp.partition)
        pending: list[Ack] = []
        now = time.time()
        for key, value, event_s in self.merge.release(behind):
            pending.append(await self.publisher.send_bytes(self.topic, key, value))
            self.clock.seen(event_s, now)
            self._routed()
        return pending

    def commits(self, alerts_topic: str) -> dict[TopicPartition, int]:
        """The alerts partitions' offsets up to which every alert is routed."""
        return {TopicPartition(alerts_topic, p): o for p, o in self.merge.commits().items()}
