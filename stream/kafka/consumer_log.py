"""A snapshot keeper's view of its topic's partitions through the detector's consumer: the
committed offsets, the partitions' bounds, a record at an offset (a snapshot's anchor), and
the cluster's id (:class:`~stream.detector.snapshot_restore.PartitionLog`); and whether a
consumer has read a partition up to its high watermark (:func:`caught_up`, for the log stage
and the label reader)."""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Collection, Sequence
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.kafka.kafka_options import kafka_options
from stream.settings import Settings

__all__ = ["ConsumerLog", "Positioned", "caught_up", "partitions_of", "read_cluster_id"]

log = structlog.get_logger(__name__)


class ConsumerLog:
    """A keeper's view of its topic's partitions
    (:class:`~stream.detector.snapshot_restore.PartitionLog`), through the detector's consumer.
    The bounds of all ``partitions`` are asked for at once, on first use; single records are
    read by a probe consumer of its own (no group), started on first use and stopped by
    :meth:`close`."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        partitions: Sequence[int],
        cluster_id: str | None,
        settings: Settings,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._partitions = [TopicPartition(topic, p) for p in partitions]
        self._cluster_id = cluster_id
        self._settings = settings
        self._probe: AIOKafkaConsumer | None = None
        self._bounds: dict[TopicPartition, tuple[int, int]] | None = None

    @property
    def cluster_id(self) -> str | None:
        return self._cluster_id

    async def committed(self, partition: int) -> int | None:
        offset: int | None = await self._consumer.committed(TopicPartition(self._topic, partition))
        return offset

    async def bounds(self, partition: int) -> tuple[int, int] | None:
        if self._bounds is None:
            self._bounds = {}
            try:
                starts = await self._consumer.beginning_offsets(self._partitions)
                ends = await self._consumer.end_offsets(self._partitions)
            except Exception as exc:  # unknown bounds: snapshots are not checked against them
                log.warning("partition_bounds_unknown", topic=self._topic, error=str(exc))
            else:
                self._bounds = {tp: (int(starts[tp]), int(ends[tp])) for tp in self._partitions}
        return self._bounds.get(TopicPartition(self._topic, partition))

    async def record_at(self, partition: int, offset: int) -> tuple[int, int] | None:
        tp = TopicPartition(self._topic, partition)
        try:
            if self._probe is None:
                settings = self._settings
                self._probe = AIOKafkaConsumer(
                    bootstrap_servers=settings.bootstrap_servers,
                    group_id=None,
                    client_id=f"{settings.client_id}-probe",
                    enable_auto_commit=False,
                    **kafka_options(settings),
                )
                await asyncio.wait_for(self._probe.start(), _PROBE_TIMEOUT_S)
            self._probe.assign([tp])
            self._probe.seek(tp, offset)
            batch = await self._probe.getmany(tp, timeout_ms=_PROBE_TIMEOUT_S * 1000, max_records=1)
        except Exception as exc:  # unknown: the snapshot's anchor is not checked
            log.warning("snapshot_anchor_unread", partition=str(tp), error=str(exc))
            return None
        records = batch.get(tp, [])
        if not records or records[0].offset != offset:
            return None  # deleted by retention (or compacted away): not checked
        record = records[0]
        return int(record.timestamp), zlib.crc32(record.value or b"")

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(probe.stop(), _PROBE_TIMEOUT_S)


_PROBE_TIMEOUT_S = 5
"""Bound on each step of reading a snapshot's anchor record (start, fetch, stop)."""


async def read_cluster_id(settings: Settings) -> str | None:
    """The cluster's id, recorded in snapshots (None, logged, when it cannot be read)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-admin",
        **kafka_options(settings),
    )
    try:
        await asyncio.wait_for(admin.start(), settings.connect_timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), settings.connect_timeout_s)
    except Exception as exc:
        log.warning("cluster_id_unknown", error=str(exc))
        return None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    cluster_id = cluster.get("cluster_id")
    return str(cluster_id) if cluster_id else None


class Positioned(Protocol):
    """What :func:`caught_up` needs of a consumer: its partitions, how far it has read them
    and how far they go (the log stage depends on this, not on ``AIOKafkaConsumer``)."""

    def assignment(self) -> Collection[TopicPartition]: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    async def position(self, partition: TopicPartition) -> int: ...


async def caught_up(consumer: Positioned, tp: TopicPartition) -> bool:
    """Whether ``tp`` has been read up to its high watermark (as last fetched)."""
    highwater = consumer.highwater(tp)
    return highwater is not None and await consumer.position(tp) >= highwater


async def partitions_of(
    consumer: AIOKafkaConsumer, topic: str, *, refresh: bool = False
) -> set[int]:
    """The partitions of ``topic`` in ``consumer``'s metadata (empty: no such topic), asked of
    the cluster when the metadata has none (or always, with ``refresh``).

    A consumer that assigns partitions itself has no metadata of a topic it never subscribed
    to, and aiokafka offers no public call that refreshes the metadata ``partitions_for_topic``
    reads (``topics()`` fetches into a copy it throws away): this is the one place that asks
    its client directly.
    """
    found = None if refresh else consumer.partitions_for_topic(topic)
    if not found:
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
    return set(found or ())
