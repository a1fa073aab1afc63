"""Partitions added to a label topic while a detector runs are read, from their beginning."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from stream.kafka.label_reader import LabelReader
from stream.kafka.topic_specs import TopicSpec
from stream.kafka.topics import ensure_topics
from stream.settings import Settings

pytestmark = pytest.mark.integration


async def _read(reader: LabelReader, want: int, timeout_s: float = 30.0) -> list[tuple[int, bytes]]:
    """(partition, value) of records read until ``want`` came (or the time is up)."""
    read: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout_s
    while len(read) < want and time.monotonic() < deadline:
        for tp, records in (await reader.fetch(100)).items():
            read += [(tp.partition, bytes(r.value or b"")) for r in records]
        await asyncio.sleep(0.05)
    return read


async def test_a_partition_added_while_reading_is_read_from_its_beginning(
    test_settings: Settings,
) -> None:
    settings, topic = test_settings, test_settings.topic_incidents
    await ensure_topics(settings.bootstrap_servers, [TopicSpec(topic, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    reader = LabelReader(settings, [topic], topic, partition_check_s=1.0)
    await producer.start()
    await admin.start()
    try:
        await producer.send_and_wait(topic, b"first", partition=0)
        await reader.start()
        assert await _read(reader, 1) == [(0, b"first")]

        await admin.create_partitions({topic: NewPartitions(total_count=2)})
        await producer.stop()  # its metadata knows one partition: a new client's knows both
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
        await producer.start()
        assert len(await producer.partitions_for(topic)) == 2
        await producer.send_and_wait(topic, b"on-the-new-one", partition=1)
        await producer.send_and_wait(topic, b"second", partition=0)
        # The new partition from its beginning; the old one from where it was, not again.
        assert sorted(await _read(reader, 2)) == [(0, b"second"), (1, b"on-the-new-one")]
        assert await _read(reader, 1, timeout_s=2.0) == []
        assert not await reader.incidents_behind()
        assert reader.read == 3
    finally:
        await reader.stop()
        await admin.close()
        await producer.stop()
