"""Producing alerts and dead letters; callers await acknowledgement before committing."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from stream.codec import encode
from stream.schemas import Alert, DeadLetter

__all__ = ["Publisher"]

Ack = asyncio.Future[Any]
"""Resolves to the record's metadata once the broker has acknowledged it."""


class Publisher:
    """Sends alerts and dead letters with ``acks=all`` and idempotence.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        alerts_topic: Where alerts go.
        dlq_topic: Where dead letters go.
        client_id: Kafka client id.
    """

    def __init__(
        self, bootstrap_servers: str, *, alerts_topic: str, dlq_topic: str, client_id: str
    ) -> None:
        self.alerts_topic = alerts_topic
        self.dlq_topic = dlq_topic
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=262_144,
            request_timeout_ms=30_000,
        )
        self._started = False

    async def start(self) -> None:
        """Connect to the cluster."""
        if not self._started:
            await self._producer.start()
            self._started = True

    async def stop(self) -> None:
        """Flush and disconnect; safe to call twice."""
        if self._started:
            self._started = False
            await self._producer.stop()

    async def send_alert(self, alert: Alert) -> Ack:
        """Queue an alert (keyed by service); the returned future resolves on acknowledgement.

        Awaiting this call itself only waits when the producer's buffer is full: that is the
        backpressure that slows consumption when the alerts topic is slow.
        """
        fut: Ack = await self._producer.send(
            self.alerts_topic, value=encode(alert), key=alert.service.encode()
        )
        return fut

    async def send_dead_letter(self, letter: DeadLetter, key: bytes | None) -> Ack:
        """Queue a dead letter (keyed like its source message)."""
        fut: Ack = await self._producer.send(self.dlq_topic, value=encode(letter), key=key)
        return fut
