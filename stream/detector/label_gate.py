"""Metrics wait for incident labels: the one place of that rule.

A vector of a service becomes a negative once its horizon passes without an incident of the
service. If an incident record waits unread on the incidents topic, that would be wrong: so
while incidents are behind, incident risk holds its horizons (nothing becomes a negative) and
the metrics partitions are paused, so that a metrics backlog is not read far ahead of the
labels (vectors wait for their labels in a bounded buffer, and reading ahead would fill it
and evict them as negatives before the incident that makes them positive is read). The
incidents topic is small: reading it first costs little, and labels read before their vectors
are kept for them.

Whether incidents are behind is asked of the broker after the metrics were fetched: an
incident produced before them is then known to be unread, and no vector of the batch becomes a
negative before it is read. A batch without metrics, when nothing is held, compares with the
last fetch instead (no request per idle step).

With incident-risk state per partition (``VIGIL_INCIDENT_STATE=partition``) the rule is
strict: metrics fetched while incidents are behind are not processed at all (their partitions
are sought back to them, and wait paused). Processing them with horizons held would predict
later vectors with models that missed the learning a caught-up run does, and the alerts would
depend on when the labels were read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Protocol

from aiokafka import TopicPartition
from prometheus_client import Counter

from stream.core.incident_risk import IncidentRiskPipeline
from stream.kafka.label_reader import LabelReader
from stream.kafka.records import Record

Batches = dict[TopicPartition, list[Record]]

__all__ = ["LabelGate", "Pausable"]


class Pausable(Protocol):
    """What the gate needs of a consumer: its assignment, and pausing partitions."""

    def assignment(self) -> Collection[TopicPartition]: ...

    def paused(self) -> Collection[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def partitions_for_topic(self, topic: str) -> Collection[int] | None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


class LabelGate:
    """Whether incidents wait unread, and the metrics paused while they do.

    Args:
        reader: The labels reader (asked whether incident records wait unread).
        pipeline: Incident risk (None when off: nothing is ever held).
        metrics_topic: The topic whose partitions are paused.
        paused_total: Counts each pause.
        held_back_total: Counts the metric records fetched again (strict rule only).
    """

    def __init__(
        self,
        reader: LabelReader,
        pipeline: IncidentRiskPipeline | None,
        metrics_topic: str,
        paused_total: Counter,
        held_back_total: Counter | None = None,
    ) -> None:
        self.reader = reader
        self.pipeline = pipeline
        self.metrics_topic = metrics_topic
        self.paused_total = paused_total
        self.held_back_total = held_back_total
        self.strict = pipeline is not None and pipeline.state == "partition"
        """Metrics fetched while incidents are behind are not processed (state per
        partition)."""

    async def behind(self, consumer: Pausable, fetched: Iterable[TopicPartition]) -> bool:
        """Whether incident records may wait unread, for the batch of ``fetched`` partitions
        (asked of the broker when the batch has metrics or something is held)."""
        pipeline = self.pipeline
        if pipeline is None or not consumer.assignment():
            return False
        fresh = pipeline.hold_labels or any(tp.topic == self.metrics_topic for tp in fetched)
        return await self.reader.incidents_behind(fresh=fresh)

    def hold_back(self, consumer: Pausable, batches: Batches, behind: bool) -> Batches:
        """The batch to process: under the strict rule, while ``behind``, without its
        metrics (each of their partitions sought back to its first record, fetched again
        once the labels are read); else as it is."""
        if not (self.strict and behind):
            return batches
        kept: Batches = {}
        for tp, part in batches.items():
            if tp.topic != self.metrics_topic:
                kept[tp] = part
                continue
            consumer.seek(tp, part[0].offset)
            if self.held_back_total is not None:
                self.held_back_total.inc(len(part))
        return kept

    def apply(self, consumer: Pausable, behind: bool) -> None:
        """Pause the metrics partitions while ``behind``, resume them once not (incident risk
        holds its horizons with the same ``behind``: :meth:`RiskStage.handle`)."""
        if behind:
            paused = [tp for tp in consumer.assignment() if tp.topic == self.metrics_topic]
            if paused and not consumer.paused():
                consumer.pause(*paused)
                self.paused_total.inc()
        elif consumer.paused():
            consumer.resume(*consumer.paused())

    def designated(self, consumer: Pausable) -> Callable[[Record], bool]:
        """Whether this detector is the one to dead-letter a label record (every detector
        reads every label): the owner of the metrics partition of the record's partition
        number (modulo), and only for a record first read live (every start reads the label
        topics again)."""
        owned = consumer.assignment()
        count = len(consumer.partitions_for_topic(self.metrics_topic) or ()) or 1
        topic, reader = self.metrics_topic, self.reader

        def designated(record: Record) -> bool:
            home = TopicPartition(topic, record.partition % count)
            return home in owned and not reader.replayed(record)

        return designated
