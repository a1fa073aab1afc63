"""Producing alerts and dead letters; callers await acknowledgement before committing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream.codec import encode
from stream.kafka.kafka_options import kafka_options
from stream.schemas import Alert, DeadLetter
from stream.settings import Settings

__all__ = ["ALERT_PRODUCER_OPTIONS", "Publisher"]

ALERT_PRODUCER_OPTIONS: Mapping[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 2,
    "max_batch_size": 262_144,
}
"""How alerts and dead letters are produced, plain or transactional: acknowledged by every
in-sync replica, without duplicates from retries, in batches of up to 256 KiB."""

Ack = asyncio.Future[Any]
"""Resolves to the record's metadata once the broker has acknowledged it."""


class Publisher:
    """Sends alerts and dead letters with ``acks=all`` and idempotence.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        alerts_topic: Where alerts go.
        dlq_topic: Where dead letters go.
        client_id: Kafka client id.
        kafka_options: Security keyword arguments for the producer
            (:func:`stream.kafka.kafka_options.kafka_options`).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        alerts_topic: str,
        dlq_topic: str,
        client_id: str,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.alerts_topic = alerts_topic
        self.dlq_topic = dlq_topic
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._kafka_options = dict(kafka_options or {})
        self._producer: AIOKafkaProducer | None = None

    @classmethod
    def from_settings(cls, settings: Settings, client_id: str) -> Publisher:
        """A publisher to ``settings``' Kafka, alerts and dead-letter topics, as ``client_id``."""
        return cls(
            settings.bootstrap_servers,
            alerts_topic=settings.topic_alerts,
            dlq_topic=settings.topic_dlq,
            client_id=client_id,
            kafka_options=kafka_options(settings),
        )

    async def start(self) -> None:
        """Connect to the cluster (the client is created here, on the running loop)."""
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            request_timeout_ms=30_000,
            **ALERT_PRODUCER_OPTIONS,
            **self._kafka_options,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        """Flush and disconnect; safe to call twice."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    @property
    def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("Publisher.start() must be awaited first")
        return self._producer

    async def send_alert(self, alert: Alert) -> Ack:
        """Queue an alert (keyed by service); the returned future resolves on acknowledgement.

        The detector awaits every acknowledgement of a batch before it commits and fetches the
        next one: that is the backpressure that slows consumption when the alerts topic is
        slow (``docs/backpressure.md``).
        """
        fut: Ack = await self._started_producer.send(
            self.alerts_topic, value=encode(alert), key=alert.service.encode()
        )
        return fut

    async def send_json(self, topic: str, key: bytes, value: dict[str, Any]) -> Ack:
        """Queue a JSON record (e.g. a snapshot pointer on the compacted models topic)."""
        fut: Ack = await self._started_producer.send(topic, value=orjson.dumps(value), key=key)
        return fut

    async def send_bytes(
        self, topic: str, key: bytes, value: bytes, *, partition: int | None = None
    ) -> Ack:
        """Queue a record already serialized (to ``partition``, else the key's)."""
        fut: Ack = await self._started_producer.send(
            topic, value=value, key=key, partition=partition
        )
        return fut

    async def send_dead_letter(self, letter: DeadLetter, key: bytes | None) -> Ack:
        """Queue a dead letter (keyed like its source message)."""
        fut: Ack = await self._started_producer.send(self.dlq_topic, value=encode(letter), key=key)
        return fut
