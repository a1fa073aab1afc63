"""Talking to the real broker in tests: produce, read back, offsets, stepping a detector."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError

from stream.detector.detector import Detector


@dataclass(frozen=True)
class Produced:
    """Where a produced message landed."""

    partition: int
    offset: int
    value: bytes


async def produce(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]]
) -> list[Produced]:
    """Send ``(key, value)`` pairs in order; return where each landed, once acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks="all")
    await producer.start()
    try:
        futures = []
        values = []
        for key, value in messages:
            futures.append(await producer.send(topic, value=value, key=key))
            values.append(value)
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Produced(m.partition, m.offset, v) for m, v in zip(metas, values, strict=True)]


async def read_all(
    bootstrap: str, topic: str, *, idle_s: float = 2.0, isolation_level: str = "read_uncommitted"
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic``, reading until nothing new arrives for ``idle_s``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        last_new = time.monotonic()
        while time.monotonic() - last_new < idle_s:
            batch = await consumer.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
                last_new = time.monotonic()
    finally:
        await consumer.stop()
    return records


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """The group's committed offsets (none while its coordinator is not known yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets: dict[TopicPartition, Any] = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:
        return {}
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """The high watermark of each partition of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []
            ]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return ends


async def run_until(detector: Detector, done: Callable[[], bool], timeout_s: float = 120.0) -> None:
    """Step the detector until ``done()`` or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"detector did not finish in {timeout_s}s: {dict(detector.counts)}")
        await detector.step()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 60.0) -> None:
    """Poll ``check`` until it is true or fail."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        await asyncio.sleep(0.2)


async def produce_paced(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes]],
    *,
    rate_per_s: float,
    acknowledged: list[Produced],
    chunk: int = 250,
) -> None:
    """Send ``(key, value)`` pairs in order at about ``rate_per_s``, ``chunk`` at a time,
    appending where each landed to ``acknowledged`` as the broker acknowledges them.

    The producer is idempotent: when the broker goes away and comes back, the sends waiting
    for it are retried without duplicates or reordering (if it is back within a minute).
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=60_000,
    )
    await producer.start()
    try:
        started = time.monotonic()
        for start in range(0, len(messages), chunk):
            part = messages[start : start + chunk]
            futures = [await producer.send(topic, value=v, key=k) for k, v in part]
            metas = await asyncio.gather(*futures)
            acknowledged.extend(
                Produced(m.partition, m.offset, v) for m, (_, v) in zip(metas, part, strict=True)
            )
            ahead_s = started + (start + len(part)) / rate_per_s - time.monotonic()
            if ahead_s > 0:
                await asyncio.sleep(ahead_s)
    finally:
        await producer.stop()


async def group_members(bootstrap: str, group: str) -> list[dict[str, Any]]:
    """The consumer group's members as the broker describes them (``member_id``,
    ``client_id``, ...)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (described,) = response.to_object()["groups"]
    return list(described["members"])
