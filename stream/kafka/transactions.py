"""Exactly-once alerts (``VIGIL_PROCESSING_GUARANTEE=exactly_once``): one Kafka transaction per
input partition and batch, with that partition's output and its consumed offsets.

aiokafka's ``send_offsets_to_transaction`` sends the consumer group's id only, not its
generation and member id (KIP-447's group metadata), so the broker cannot fence a zombie by
its group generation. Vigil fences the way Kafka Streams did before KIP-447 ("eos-alpha"):
one transactional producer per input partition, with the transactional id
``vigil-<group>-<topic>-<partition>``. Whoever owns a partition now initialises that id,
which aborts the previous owner's open transaction and fences its producer: a detector that
lost a partition without noticing (a long pause, a network split) can no longer commit output
or offsets for it. See ``docs/exactly_once.md`` for the design and its cost.

Alerts and dead letters are attributed to the input partition of the event they point at
(alerts: ``evidence``; dead letters: their source). An alert always points at an event of its
own service, and a service's events live on one partition, so that is the partition whose
records produced it. Snapshot pointers and training rows are not part of the transactions:
they go through the plain producer (both are safe to repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from stream.codec import encode
from stream.kafka.publisher import ALERT_PRODUCER_OPTIONS, Ack, Publisher
from stream.schemas import Alert, DeadLetter

__all__ = ["TransactionalPublisher", "transactional_id"]

log = structlog.get_logger(__name__)

_START_RETRY_S = 0.5
_MAX_RETRY_S = 10.0

_Record = tuple[str, bytes | None, bytes]  # topic, key, value


def transactional_id(group_id: str, tp: TopicPartition) -> str:
    """The transactional id of an input partition's producer.

    Examples:
        >>> transactional_id("vigil", TopicPartition("vigil.metrics", 3))
        'vigil-vigil-vigil.metrics-3'
    """
    return f"vigil-{group_id}-{tp.topic}-{tp.partition}"


class TransactionalPublisher(Publisher):
    """A :class:`Publisher` whose alerts and dead letters wait, per input partition, for
    :meth:`commit` to send them with the partition's offsets in one transaction.

    ``send_alert`` and ``send_dead_letter`` return futures that are already resolved: nothing
    is acknowledged one by one; the transaction's commit is the acknowledgement, and
    :meth:`commit` returns only once every transaction has committed.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        alerts_topic: Where alerts go.
        dlq_topic: Where dead letters go.
        client_id: Kafka client id.
        group_id: The consumer group whose offsets the transactions commit.
        kafka_options: Security keyword arguments for every producer.
        transaction_timeout_ms: How long the broker lets a transaction stay open before
            aborting it (a detector that died mid-transaction holds up read_committed readers
            of its partitions at most this long, unless a new owner fences it first).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        alerts_topic: str,
        dlq_topic: str,
        client_id: str,
        group_id: str,
        kafka_options: Mapping[str, Any] | None = None,
        transaction_timeout_ms: int = 60_000,
    ) -> None:
        super().__init__(
            bootstrap_servers,
            alerts_topic=alerts_topic,
            dlq_topic=dlq_topic,
            client_id=client_id,
            kafka_options=kafka_options,
        )
        self.group_id = group_id
        self._transaction_timeout_ms = transaction_timeout_ms
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}
        self._outbox: dict[TopicPartition, list[_Record]] = {}
        self.transactions = 0
        """Transactions committed by this process."""

    async def send_alert(self, alert: Alert) -> Ack:
        """Hold an alert for its input partition's next transaction."""
        tp = TopicPartition(alert.evidence.topic, alert.evidence.partition)
        self._outbox.setdefault(tp, []).append(
            (self.alerts_topic, alert.service.encode(), encode(alert))
        )
        return _resolved()

    async def send_dead_letter(self, letter: DeadLetter, key: bytes | None) -> Ack:
        """Hold a dead letter for its source partition's next transaction."""
        tp = TopicPartition(letter.topic, letter.partition)
        self._outbox.setdefault(tp, []).append((self.dlq_topic, key, encode(letter)))
        return _resolved()

    def held(self) -> int:
        """Records waiting for a transaction."""
        return sum(len(records) for records in self._outbox.values())

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Send what each input partition produced with its next offsets, one transaction per
        partition (run concurrently); returns when all have committed.

        Raises:
            aiokafka.errors.KafkaError: a transaction failed (e.g. ``ProducerFenced``: another
                detector owns the partition now). Its output and offsets are aborted: the
                owner re-reads from the last committed offset.
        """
        outbox, self._outbox = self._outbox, {}
        partitions = sorted(set(outbox) | set(offsets))
        if partitions:
            await asyncio.gather(
                *(self._transaction(tp, outbox.get(tp, ()), offsets.get(tp)) for tp in partitions)
            )

    async def _transaction(
        self, tp: TopicPartition, records: Iterable[_Record], offset: int | None
    ) -> None:
        producer = await self._producer_for(tp)
        async with producer.transaction():
            for topic, key, value in records:
                sent = await producer.send(topic, value=value, key=key)
                # The commit reports a failure; each send's future would otherwise warn.
                sent.add_done_callback(_retrieved)
            if offset is not None:
                await producer.send_offsets_to_transaction({tp: offset}, self.group_id)
        self.transactions += 1

    async def _producer_for(self, tp: TopicPartition) -> AIOKafkaProducer:
        """The partition's transactional producer, started on its first batch. A broker
        that cannot be reached then (an outage while a partition's first output waits) is
        retried with backoff, the batch held, as the plain producer's sends are: it never
        ends the detector. A stop cancels the wait."""
        producer = self._producers.get(tp)
        delay_s = _START_RETRY_S
        while producer is None:
            candidate = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap_servers,
                client_id=f"{self._client_id}-{tp.topic}-{tp.partition}",
                transactional_id=transactional_id(self.group_id, tp),
                transaction_timeout_ms=self._transaction_timeout_ms,
                **ALERT_PRODUCER_OPTIONS,
                **self._kafka_options,
            )
            try:
                await candidate.start()  # initialises the id: fences the previous owner
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await candidate.stop()
                if not exc.retriable:
                    raise
                log.warning(
                    "transactional_producer_start_retried",
                    partition=f"{tp.topic}:{tp.partition}",
                    error=str(exc),
                    retry_in_s=delay_s,
                )
                await asyncio.sleep(delay_s)
                delay_s = min(2 * delay_s, _MAX_RETRY_S)
                continue
            except BaseException:
                with contextlib.suppress(Exception):
                    await candidate.stop()
                raise
            producer = self._producers[tp] = candidate
            log.info("transactional_producer_started", partition=f"{tp.topic}:{tp.partition}")
        return producer

    async def release(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked: stop their producers (their transactions are all committed:
        revocation waits for the batch in hand) and drop anything still held for them."""
        for tp in partitions:
            self._outbox.pop(tp, None)
            producer = self._producers.pop(tp, None)
            if producer is not None:
                with contextlib.suppress(Exception):
                    await producer.stop()

    async def stop(self) -> None:
        """Stop every transactional producer, then the plain one; safe to call twice."""
        await self.release(list(self._producers))
        self._outbox.clear()
        await super().stop()


def _retrieved(future: Ack) -> None:
    if not future.cancelled():
        future.exception()


def _resolved() -> Ack:
    ack: Ack = asyncio.get_running_loop().create_future()
    ack.set_result(None)
    return ack
