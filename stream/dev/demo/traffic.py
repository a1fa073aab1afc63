"""What the demo sends and reads back through Kafka: the scenario's metric samples, incident
labels and log lines, published at their rates, and the alerts read from the alerts topic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.dev.demo.scenario import Scenario
from stream.dev.incident_sim import IncidentRecord
from stream.dev.simulate import Publishable, publish
from stream.kafka.kafka_options import kafka_options
from stream.schemas import Alert
from stream.settings import Settings

__all__ = ["alerts_read", "demo_clients", "publish_scenario"]


@contextlib.asynccontextmanager
async def demo_clients(
    settings: Settings,
) -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer]]:
    """A started producer, and a started consumer of the alerts topic from its start."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-demo",
        linger_ms=5,
        **kafka_options(settings),
    )
    alerts = AIOKafkaConsumer(
        settings.topic_alerts,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka_options(settings),
    )
    await producer.start()
    try:
        await alerts.start()
    except BaseException:
        await producer.stop()
        raise
    try:
        yield producer, alerts
    finally:
        await alerts.stop()
        await producer.stop()


def publish_scenario(
    producer: AIOKafkaProducer,
    settings: Settings,
    scenario: Scenario,
    *,
    rate: float | None,
    stop: asyncio.Event,
) -> asyncio.Future[Any]:
    """Publish the metric samples and labels at ``rate`` events/s, and the log lines at the
    scenario's rate, until ``stop``; done when both are."""

    def topic_of(item: Publishable) -> str:
        if isinstance(item, IncidentRecord):
            return settings.topic_incidents
        return settings.topic_metrics

    return asyncio.gather(
        publish(producer, topic_of, scenario.metric_items(), rate=rate, stop=stop),
        publish(
            producer, settings.topic_logs, scenario.log_items(), rate=scenario.log_rate, stop=stop
        ),
    )


async def alerts_read(consumer: AIOKafkaConsumer) -> AsyncIterator[Alert]:
    """The alerts on the alerts topic, as they come (a record that is not an Alert skipped)."""
    async for record in consumer:
        try:
            alert = Alert.model_validate(orjson.loads(record.value or b""))
        except ValueError:
            continue
        yield alert
