"""Exactly-once alerts against the real broker: transactions per input partition, fencing.

With ``processing_guarantee=exactly_once`` a detector's alerts, dead letters and offsets go out
in one transaction per input partition and batch. Read with ``read_committed``, the alerts
topic holds each expected alert exactly once; a producer that initialises a partition's
transactional id fences the detector that owned it before, whose output is then aborted.
"""

from __future__ import annotations

import gc

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from stream.codec import decode
from stream.detector.detector import Detector, topic_specs
from stream.dev.simulate import MetricSimulator
from stream.kafka.topics import ensure_topics
from stream.kafka.transactions import TransactionalPublisher
from stream.schemas import MetricEvent
from stream.settings import Settings
from tests.integration.kafka_io import (
    committed_offsets,
    end_offsets,
    produce,
    read_all,
    run_until,
)
from tests.integration.processes import reference_alerts

pytestmark = pytest.mark.integration

EVENTS = 12_000


async def test_each_alert_is_committed_exactly_once_with_its_offsets(
    test_settings: Settings,
) -> None:
    settings = test_settings.model_copy(
        update={
            "processing_guarantee": "exactly_once",
            "anomaly_budget_per_day": 86.4,
            "max_batch": 500,
            "incident_risk": False,
        }
    )
    bootstrap = settings.bootstrap_servers
    await ensure_topics(bootstrap, topic_specs(settings))
    events = list(MetricSimulator(services=8, anomaly_rate=0.01, seed=7).events(EVENTS))
    messages = [(e.service.encode(), e.to_bytes()) for e in events]
    messages[100:100] = [(b"api", b"not json"), (b"db", b'{"service": "db"}')]
    produced = await produce(bootstrap, settings.topic_metrics, messages)
    valid = [p for p in produced if isinstance(decode(p.value, MetricEvent), MetricEvent)]
    expected = set(reference_alerts(settings, valid, chunk=500))
    assert expected

    detector = Detector(settings, serve_http=False)
    await detector.start()
    try:
        await run_until(detector, lambda: detector.counts["consumed"] >= len(messages))
    finally:
        await detector.stop()
    assert detector._transactions is not None
    assert detector._transactions.transactions > 0

    committed = await read_all(bootstrap, settings.topic_alerts, isolation_level="read_committed")
    alert_ids = [orjson.loads(r.value)["alert_id"] for r in committed]
    assert len(alert_ids) == len(set(alert_ids)), "an alert was committed twice"
    assert set(alert_ids) == expected
    letters = await read_all(bootstrap, settings.topic_dlq, isolation_level="read_committed")
    assert sorted(orjson.loads(r.value)["reason"] for r in letters) == [
        "invalid_json",
        "missing_field",
    ]
    ends = await end_offsets(bootstrap, settings.topic_metrics)
    assert await committed_offsets(bootstrap, settings.group_id) == {
        tp: offset for tp, offset in ends.items() if offset
    }


async def test_a_new_owner_fences_the_old_one_and_its_output_is_aborted(
    test_settings: Settings,
) -> None:
    settings = test_settings.model_copy(
        update={
            "processing_guarantee": "exactly_once",
            "anomaly_budget_per_day": 432.0,
            "incident_risk": False,
            "topic_partitions": 1,
        }
    )
    bootstrap = settings.bootstrap_servers
    await ensure_topics(bootstrap, topic_specs(settings))
    simulator = MetricSimulator(services=2, anomaly_rate=0.05, seed=3)
    events = list(simulator.events(4_000))
    first, second = events[:2_000], events[2_000:]
    await produce(
        bootstrap, settings.topic_metrics, [(e.service.encode(), e.to_bytes()) for e in first]
    )
    detector = Detector(settings, serve_http=False)
    await detector.start()
    zombie_fenced = False
    new_owner = TransactionalPublisher(
        bootstrap,
        alerts_topic=settings.topic_alerts,
        dlq_topic=settings.topic_dlq,
        client_id="new-owner",
        group_id=settings.group_id,
    )
    try:
        await run_until(detector, lambda: detector.counts["consumed"] >= len(first))
        before = await read_all(bootstrap, settings.topic_alerts, isolation_level="read_committed")
        assert before, "the first half should alert"
        # Another process takes the partition's transactional id over (as a new owner does
        # after a rebalance the old one missed): the old one is a zombie now.
        await new_owner._producer_for(TopicPartition(settings.topic_metrics, 0))
        await produce(
            bootstrap, settings.topic_metrics, [(e.service.encode(), e.to_bytes()) for e in second]
        )
        try:
            await run_until(detector, lambda: False, timeout_s=60)
        except KafkaError as exc:
            zombie_fenced = "Fenced" in type(exc).__name__
    finally:
        await new_owner.stop()
        await detector.stop()
        # aiokafka leaves the fenced transaction's internal futures unretrieved: collect them
        # now, not at a random later point (CPython 3.11 fails a compile() that a finalizer's
        # logging interrupts).
        gc.collect()
    assert zombie_fenced, "the old owner's transaction should have been fenced"
    after = await read_all(bootstrap, settings.topic_alerts, isolation_level="read_committed")
    assert len(after) == len(before), "nothing the zombie produced after the takeover is visible"
    committed = await committed_offsets(bootstrap, settings.group_id)
    assert committed[TopicPartition(settings.topic_metrics, 0)] == len(first)
