"""Incidents and feedback as global tables: every detector reads every partition of them.

The consumer group deals out the metrics and logs partitions; a service's incidents and
feedback may sit on any partition number (another producer partitioner, feedback keyed by
alert id), so each detector reads these small topics whole with a consumer of its own (no
group: ``assign``, never ``subscribe``) and applies every label. Labels of services it does
not hold are kept as incident spans (bounded per service) for when a service moves to it.

Where it starts: the beginning of each partition, at every start (retention bounds the
cost; see docs/incident_risk.md, "Labels as global tables"). Nothing is committed for it.
Partitions added to the topics while it runs are noticed within ``partition_check_s`` (the
client's metadata refresh) and read from their beginning; the others keep their positions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.kafka.consumer_log import caught_up, partitions_of
from stream.kafka.kafka_options import kafka_options
from stream.kafka.records import Record
from stream.settings import Settings

__all__ = ["LabelReader"]

log = structlog.get_logger(__name__)

_ENDS_TIMEOUT_S = 1.0
"""The longest wait for the incidents' end offsets (0.9 ms median here) before falling back
to the last fetch's high watermarks: a broker away must not stall the loop."""

_PARTITION_CHECK_S = 30.0
"""How often the reader's client refreshes the topics' metadata (one small request), so that
partitions added while the detector runs are read."""


class LabelReader:
    """Reads every partition of ``topics`` from its beginning, outside the consumer group.

    Args:
        settings: Connection settings (bootstrap servers, security, client id, isolation).
        topics: The label topics (incidents and feedback).
        incidents_topic: The one whose backlog holds vectors back (:meth:`incidents_behind`).
        partition_check_s: How often to look for partitions added to the topics.
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        incidents_topic: str,
        *,
        partition_check_s: float = _PARTITION_CHECK_S,
    ) -> None:
        self.settings = settings
        self.partition_check_s = partition_check_s
        self.topics = list(topics)
        self.incidents_topic = incidents_topic
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: AIOKafkaConsumer | None = None
        """A client that only asks for end offsets: on the reader's own connection the
        request waits behind its long-polling fetch (23 ms median, measured)."""
        self._partitions: list[TopicPartition] = []
        self.start_ends: dict[TopicPartition, int] = {}
        """Each partition's end when the reader started: records below it were there before
        (read again by every start) and are not dead-lettered again."""
        self._started_at = 0.0
        self._catching_up = True
        self.read = 0
        """Records read since the start."""

    async def start(self) -> None:
        """Connect and assign every partition of the topics, from their beginning."""
        settings = self.settings
        ends = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            client_id=f"{settings.client_id}-labels-ends",
            enable_auto_commit=False,
            **kafka_options(settings),
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            client_id=f"{settings.client_id}-labels",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=max(1, int(self.partition_check_s * 1000)),
            fetch_max_wait_ms=max(1, int(settings.batch_wait_s * 1000)),
            isolation_level=(
                "read_committed"
                if settings.processing_guarantee == "exactly_once"
                else "read_uncommitted"
            ),
            **kafka_options(settings),
        )
        try:
            await ends.start()
            await consumer.start()
            partitions = []
            for topic in self.topics:
                found = await partitions_of(consumer, topic)
                partitions += [TopicPartition(topic, p) for p in sorted(found)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            self.start_ends = await consumer.end_offsets(partitions)
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await ends.stop()
            raise
        self._consumer, self._ends = consumer, ends
        self._partitions = partitions
        self._started_at = time.monotonic()
        log.info(
            "labels_reader_started",
            partitions=len(partitions),
            backlog=sum(self.start_ends.values()),
        )

    async def stop(self) -> None:
        """Disconnect; safe to call twice."""
        consumer, self._consumer = self._consumer, None
        ends, self._ends = self._ends, None
        for client in (consumer, ends):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()

    async def fetch(self, max_records: int) -> dict[TopicPartition, list[Record]]:
        """What has arrived, without waiting."""
        if self._consumer is None:
            return {}
        await self._grow(self._consumer)
        batches: dict[TopicPartition, list[Record]] = await self._consumer.getmany(
            timeout_ms=0, max_records=max_records
        )
        self.read += sum(len(part) for part in batches.values())
        if self._catching_up and not await self._behind(self._partitions):
            self._catching_up = False
            log.info(
                "labels_caught_up",
                records=self.read,
                seconds=round(time.monotonic() - self._started_at, 3),
            )
        return batches

    async def _grow(self, consumer: AIOKafkaConsumer) -> None:
        """Read partitions added to the topics (the client's metadata, refreshed every
        ``partition_check_s``), from their beginning; the others keep their positions."""
        added = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
            if TopicPartition(topic, p) not in self._partitions
        ]
        if not added:
            return
        positions = {tp: await consumer.position(tp) for tp in self._partitions}
        partitions = [*self._partitions, *added]
        consumer.assign(partitions)
        for tp, offset in positions.items():
            consumer.seek(tp, offset)
        await consumer.seek_to_beginning(*added)
        self._partitions = partitions
        log.info(
            "labels_partitions_added", partitions=[f"{tp.topic}:{tp.partition}" for tp in added]
        )

    def replayed(self, record: Record) -> bool:
        """Whether ``record`` was on the topic before this reader started."""
        return int(record.offset) < self.start_ends.get(
            TopicPartition(record.topic, record.partition), 0
        )

    async def incidents_behind(self, *, fresh: bool = True) -> bool:
        """Whether incident records may wait unread.

        Args:
            fresh: Ask the broker for the partitions' ends now (ListOffsets, bounded to
                :data:`_ENDS_TIMEOUT_S`), so an incident acknowledged before a metric event
                that was just fetched is seen unread; else (and if the broker does not
                answer) compare with the high watermarks of the last fetch.
        """
        consumer, client = self._consumer, self._ends
        if consumer is None or client is None:
            return False
        partitions = [tp for tp in self._partitions if tp.topic == self.incidents_topic]
        if not fresh:
            return await self._behind(partitions)
        try:
            ends: dict[TopicPartition, int] = await asyncio.wait_for(
                client.end_offsets(partitions), _ENDS_TIMEOUT_S
            )
        except Exception:
            return await self._behind(partitions)
        for tp in partitions:
            if await consumer.position(tp) < ends[tp]:
                return True
        return False

    async def _behind(self, partitions: Sequence[TopicPartition]) -> bool:
        assert self._consumer is not None
        for tp in partitions:
            if not await caught_up(self._consumer, tp):
                return True
        return False
