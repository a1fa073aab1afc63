"""SIGKILL a ``vigil detect`` mid-stream and restart it: nothing acknowledged is lost.

Each service's events live on one partition and its model is deterministic, so the alerts the
first process must have produced for every event below its committed offsets can be computed
offline with the same pipeline. All of them must be on the alerts topic: committed offsets
never pass events whose alerts were not acknowledged. The second process then scores the rest.
"""

from __future__ import annotations

import asyncio
import signal

import orjson
import pytest
from aiokafka import TopicPartition

from stream.detector.detector import topic_specs
from stream.dev.broker import free_port
from stream.dev.simulate import MetricSimulator
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from tests.integration.kafka_io import (
    committed_offsets,
    end_offsets,
    eventually,
    produce,
    read_all,
)
from tests.integration.processes import detector_process, reference_alerts, scraped_counter

pytestmark = pytest.mark.integration

EVENTS = 30_000


async def test_sigkill_mid_stream_loses_nothing(test_settings: Settings) -> None:
    settings = test_settings.model_copy(update={"anomaly_budget_per_day": 86.4, "max_batch": 500})
    bootstrap, group = settings.bootstrap_servers, settings.group_id
    await ensure_topics(bootstrap, topic_specs(settings))
    simulated = list(MetricSimulator(services=8, anomaly_rate=0.01, seed=33).events(EVENTS))
    produced = await produce(
        bootstrap, settings.topic_metrics, ((e.service.encode(), e.to_bytes()) for e in simulated)
    )
    total = len(produced)

    async def committed_total() -> int:
        return sum((await committed_offsets(bootstrap, group)).values())

    with detector_process(settings, free_port()) as first:

        async def some_progress() -> bool:
            return await committed_total() >= total // 4

        await eventually(some_progress, timeout_s=120)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    committed = await committed_offsets(bootstrap, group)
    assert 0 < sum(committed.values()) < total, "kill landed before or after the stream"

    # What one process that never died alerts on: the same pipeline, each service in its
    # partition's order. The first process must have acknowledged the alerts of every event
    # below the committed offsets before committing them.
    reference = reference_alerts(settings, produced)
    expected = {
        alert_id
        for alert_id, position in reference.items()
        if position.offset
        < committed.get(TopicPartition(settings.topic_metrics, position.partition), 0)
    }
    expected_after = set(reference) - expected
    assert expected, "the first process should have alerted before the kill"
    alerts_after_kill = {
        orjson.loads(r.value)["alert_id"] for r in await read_all(bootstrap, settings.topic_alerts)
    }
    assert expected <= alerts_after_kill

    port = free_port()
    with detector_process(settings, port) as second:
        ends = await end_offsets(bootstrap, settings.topic_metrics)

        async def caught_up() -> bool:
            return await committed_offsets(bootstrap, group) == {
                tp: off for tp, off in ends.items() if off
            }

        await eventually(caught_up, timeout_s=180)
        consumed = await scraped_counter(
            port, f'vigil_events_consumed_total{{topic="{settings.topic_metrics}"}}'
        )
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 30) == 0
    # Every event is scored at least once: the first process scored everything it committed,
    # the second everything from there on.
    assert consumed >= total - sum(committed.values())

    # The second process restored the first one's models from their snapshots (re-reading
    # what came after them, its alerts not sent twice) and went on with exactly their state:
    # the alerts on the topic are exactly those of one process that never died.
    alerts = [
        orjson.loads(r.value)["alert_id"] for r in await read_all(bootstrap, settings.topic_alerts)
    ]
    assert set(alerts) == expected | expected_after
