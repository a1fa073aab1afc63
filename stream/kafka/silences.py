"""The silences topic: followed into a :class:`~stream.core.problems.silences.SilenceBook`,
and written by ``vigil silence``.

The topic is compacted and keyed by ``silence_id``; a record's value is a Silence (JSON), and
a tombstone (no value) ends the silence of its key. Every process that needs silences reads
the topic whole, outside any consumer group (``assign``, never ``subscribe``), from its
beginning at every start, and keeps following it: a silence added or removed reaches it
within about ``poll_s`` plus the client's fetch wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import ValidationError

from stream.codec import encode
from stream.core.problems.silences import SilenceBook
from stream.kafka.consumer_log import partitions_of
from stream.kafka.kafka_options import kafka_options
from stream.kafka.topic_specs import topic_spec
from stream.kafka.topics import ensure_topics
from stream.schemas import Silence
from stream.settings import Settings

__all__ = ["OUTCOMES", "SilenceFollower", "publish_silence", "publish_tombstone"]

log = structlog.get_logger(__name__)

OUTCOMES = ("put", "removed", "malformed")
"""What became of each record read (``vigil_silences_records_total{outcome}``)."""

_MIN_STALL_S = 10.0
"""Catching up at start, the longest wait for a record short of the end (at least; else
``connect_timeout_s``) before giving up: a broker gone away mid-read."""

_NEW_TOPIC_S = 10.0
"""The longest wait for the silences topic, just created, to show in the metadata."""

_BACKOFF_S = (0.5, 8.0)
"""Retries of an unreachable broker: the first wait, doubling up to the second."""


class SilenceFollower:
    """Reads the silences topic whole, then follows it, into ``book``.

    Args:
        settings: Connection settings and ``topic_silences``; ``create_topics`` creates the
            topic when missing; ``connect_timeout_s`` bounds the first connection.
        book: Where silences go (default: ``settings.silence_book()``, the configured
            windows and deploy rule).
        poll_s: The longest a follow step waits for records.

    Attributes:
        book: The silences read so far.
        counts: Records by outcome (:data:`OUTCOMES`), and ``errors`` (failed reads retried).
    """

    def __init__(
        self, settings: Settings, book: SilenceBook | None = None, *, poll_s: float = 0.5
    ) -> None:
        self.settings = settings
        self.book = book if book is not None else settings.silence_book()
        self.poll_s = poll_s
        self.counts: Counter[str] = Counter({outcome: 0 for outcome in (*OUTCOMES, "errors")})
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, follow: bool = True) -> None:
        """Connect, read the topic up to its end (the high watermark as of now) and return;
        with ``follow``, keep reading in a background task until :meth:`stop`.

        Raises:
            KafkaError: The cluster could not be reached within ``connect_timeout_s``, or
                answered with a non-retriable error, or stopped answering before the end
                was read (``KafkaTimeoutError``).
            RuntimeError: The topic does not exist (and ``create_topics`` is off).
        """
        if self._consumer is not None:
            return
        began = time.monotonic()
        consumer = await self._connect()
        try:
            partitions = await self._assign(consumer)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            stall_s = max(self.settings.connect_timeout_s, _MIN_STALL_S)
            progress = time.monotonic()
            while await _behind(consumer, ends):
                if await self._read(consumer):
                    progress = time.monotonic()
                elif time.monotonic() - progress > stall_s:
                    raise KafkaTimeoutError(
                        f"no record of {self.settings.topic_silences} for {stall_s:g} s "
                        "short of its end"
                    )
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer
        log.info(
            "silences_read",
            silences=len(self.book),
            records=sum(ends.values()),
            seconds=round(time.monotonic() - began, 3),
        )
        if follow:
            self._task = asyncio.create_task(self._follow(consumer), name="silences-follower")

    async def stop(self) -> None:
        """Stop following and disconnect; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    def apply(self, key: bytes | None, value: bytes | None, *, offset: int = -1) -> str:
        """Apply one record to the book; its outcome (:data:`OUTCOMES`). A malformed record
        (no key, not a Silence, a key that is not its ``silence_id``) is logged and counted,
        and changes nothing."""
        outcome, why = self._outcome(key, value)
        self.counts[outcome] += 1
        if why:
            log.warning(
                "silence_record_malformed",
                topic=self.settings.topic_silences,
                offset=offset,
                reason=why,
            )
        return outcome

    def _outcome(self, key: bytes | None, value: bytes | None) -> tuple[str, str]:
        try:
            silence_id = key.decode() if key else ""
        except UnicodeDecodeError:
            return "malformed", "key is not UTF-8"
        if not silence_id:
            return "malformed", "no key"
        if value is None:
            self.book.remove(silence_id)
            return "removed", ""
        try:
            silence = Silence.model_validate_json(value)
        except ValidationError as exc:
            return "malformed", f"not a Silence: {exc.errors(include_url=False)[0]['msg']}"
        if silence.silence_id != silence_id:
            return "malformed", "key differs from silence_id"
        self.book.put(silence)
        return "put", ""

    async def _connect(self) -> AIOKafkaConsumer:
        """A started consumer (no group), retrying retriable errors for ``connect_timeout_s``."""
        settings = self.settings
        deadline = time.monotonic() + settings.connect_timeout_s
        delay, most = _BACKOFF_S
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=settings.bootstrap_servers,
                group_id=None,
                client_id=f"{settings.client_id}-silences",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=max(1, int(self.poll_s * 1000)),
                **kafka_options(settings),
            )
            try:
                await consumer.start()
                return consumer
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                left = deadline - time.monotonic()
                if not getattr(exc, "retriable", False) or left <= 0:
                    raise
                log.warning("kafka_unreachable_retrying", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, most)

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """Every partition of the topic (created first if missing and allowed), from the
        beginning."""
        settings = self.settings
        topic = settings.topic_silences
        if settings.create_topics:
            await ensure_topics(
                settings.bootstrap_servers,
                [topic_spec(settings, "topic_silences")],
                client_id=f"{settings.client_id}-admin",
                kafka_options=kafka_options(settings),
            )
        found = await _partitions(consumer, topic, _NEW_TOPIC_S if settings.create_topics else 0)
        if not found:
            raise RuntimeError(f"the silences topic {topic} does not exist")
        partitions = [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return partitions

    async def _read(self, consumer: AIOKafkaConsumer) -> int:
        """Apply what has arrived (waiting up to ``poll_s``); how many records."""
        batches = await consumer.getmany(timeout_ms=int(self.poll_s * 1000), max_records=1000)
        for records in batches.values():
            for record in records:
                self.apply(record.key, record.value, offset=record.offset)
        return sum(len(records) for records in batches.values())

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        """Read until cancelled; a failed read (the client reconnects by itself) is logged,
        counted and retried after a backoff, never fatal."""
        first, most = _BACKOFF_S
        delay = first
        while True:
            try:
                await self._read(consumer)
                delay = first
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.counts["errors"] += 1
                log.warning("silences_read_failed", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, most)

    def collect(self) -> Iterator[Metric]:
        """Prometheus collector protocol (``registry.register(follower)``):
        ``vigil_silences_records_total{outcome}``, ``vigil_silences_read_errors_total`` and
        ``vigil_silences_held``."""
        records = CounterMetricFamily(
            "vigil_silences_records",
            "Records read from the silences topic, by outcome (put, removed, malformed).",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            records.add_metric([outcome], self.counts[outcome])
        yield records
        yield CounterMetricFamily(
            "vigil_silences_read_errors",
            "Reads of the silences topic that failed and were retried.",
            value=self.counts["errors"],
        )
        yield GaugeMetricFamily(
            "vigil_silences_held", "Ad-hoc silences held (expired ones too).", value=len(self.book)
        )


async def _partitions(consumer: AIOKafkaConsumer, topic: str, wait_s: float) -> set[int]:
    """The partitions of ``topic`` (empty: no such topic), waiting up to ``wait_s`` for a
    topic just created to show in the metadata (brokers learn of it a moment later)."""
    deadline = time.monotonic() + wait_s
    while True:
        found = await partitions_of(consumer, topic, refresh=True)
        if found or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.1)


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


def _producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-silence",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=max(1000, int(settings.connect_timeout_s * 1000)),
        **kafka_options(settings),
    )


async def _send(settings: Settings, key: str, value: bytes | None) -> None:
    producer = _producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_silences, value=value, key=key.encode())
    finally:
        await producer.stop()


async def publish_silence(settings: Settings, silence: Silence) -> None:
    """Write ``silence`` to the silences topic (keyed by its id) and wait for the ack."""
    await _send(settings, silence.silence_id, encode(silence))


async def publish_tombstone(settings: Settings, silence_id: str) -> None:
    """End ``silence_id``: a tombstone on the silences topic, acknowledged."""
    await _send(settings, silence_id, None)
