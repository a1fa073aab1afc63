"""Incident labels reach the detector that owns the service, whatever the partitioner.

Metrics are produced keyed by service with aiokafka's partitioner (murmur2, as Java's); the
incidents are put on partitions chosen by CRC32 of the key (librdkafka's default, as kcat's),
so a service's incidents and its metrics are on different partition numbers. A fleet of
detectors in one group must label exactly the positives a single detector labels; with
incident-risk state per partition (``VIGIL_INCIDENT_STATE=partition``) and the incidents read
first, through a kill and a join, it must publish exactly the reference's risk and anomaly
alerts too.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from models.incident.labelled import LabelledVector
from stream.detector.detector import Detector
from stream.dev.incident_sim import IncidentRecord, IncidentSimulator
from stream.dev.simulate import SimulatedEvent
from stream.kafka.topic_specs import topic_specs
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from tests.integration.fleet import Fleet, Progress, paced_stream, producer_done
from tests.integration.kafka_io import Produced, produce, read_all
from tests.integration.processes import scraped_total

pytestmark = pytest.mark.integration

DAYS = 1.0
SERVICES = 12
FLEET = 5
"""Detectors in the fleet: 5 on 6 partitions, where the round-robin assignor dealt a
service's incidents to another detector than its metrics."""

EXACT = {"incident_state": "partition", "incident_episode_budget": 20.0}
"""Risk state per partition. Per partition the default budget (2.5 a service-day) pages only
after about two service-days of a partition's vectors: more a day, to page within the day."""


def crc32_partition(key: bytes, partitions: int) -> int:
    """librdkafka's default partitioner (``consistent_random``) for a non-empty key."""
    return zlib.crc32(key) % partitions


@dataclass
class Run:
    """What a fleet learned: positives (service, event time, incident) and labeler counts."""

    positives: set[tuple[str, float, str]] = field(default_factory=set)
    counts: list[dict[str, int]] = field(default_factory=list)

    def per_service(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(s for s, _, _ in self.positives).items()))


def _own(settings: Settings, suffix: str) -> Settings:
    """The same settings on topics and a group of their own."""
    names = (
        "topic_metrics",
        "topic_logs",
        "topic_incidents",
        "topic_feedback",
        "topic_alerts",
        "topic_dlq",
        "topic_models",
        "topic_features",
    )
    update: dict[str, object] = {n: f"{getattr(settings, n)}{suffix}" for n in names}
    update["group_id"] = f"{settings.group_id}{suffix}"
    return settings.model_copy(update=update)


async def _produce_to(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes, int]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k, partition=p) for k, v, p in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _fleet_run(
    settings: Settings,
    size: int,
    metrics: list[tuple[bytes, bytes]],
    incidents: list[tuple[bytes, bytes]],
) -> Run:
    """Start ``size`` detectors, let the group settle, produce the incidents (CRC32) and then
    the metrics (murmur2), and run until every metric record is processed."""
    run = Run()
    fleet = [
        Detector(settings.model_copy(update={"client_id": f"vigil-{i}"}), serve_http=False)
        for i in range(size)
    ]

    def learned(group: str, item: LabelledVector) -> None:
        if item.label and item.origin == "horizon":
            assert item.incident_id is not None
            run.positives.add((item.service, item.ts_s, item.incident_id))

    for detector in fleet:
        assert detector.risk.pipeline is not None
        detector.risk.pipeline.on_labelled = learned
        await detector.start()
    stop = asyncio.Event()

    async def loop(detector: Detector) -> None:
        while not stop.is_set():
            await detector.step()

    tasks = [asyncio.create_task(loop(d)) for d in fleet]
    metrics_topic = settings.topic_metrics
    partitions = settings.topic_partitions

    def processed() -> int:
        return sum(
            o
            for d in fleet
            for tp, o in d.parts.positions.next_offsets.items()
            if tp.topic == metrics_topic
        )

    try:
        deadline = time.monotonic() + 60
        while True:
            held = [
                {tp.partition for tp in d._consumer.assignment() if tp.topic == metrics_topic}
                for d in fleet
                if d._consumer is not None
            ]
            if all(held) and sorted(p for h in held for p in h) == list(range(partitions)):
                break
            assert time.monotonic() < deadline, f"the group did not settle: {held}"
            await asyncio.sleep(0.2)
        await _produce_to(
            settings.bootstrap_servers,
            settings.topic_incidents,
            [(k, v, crc32_partition(k, partitions)) for k, v in incidents],
        )
        # Every detector has read every incident before the first vector (the positives
        # are then those in range, whatever the timing).
        deadline = time.monotonic() + 60
        while min(d.parts.label_reader.read for d in fleet) < len(incidents):
            assert time.monotonic() < deadline, [d.parts.label_reader.read for d in fleet]
            await asyncio.sleep(0.1)
        await produce(settings.bootstrap_servers, metrics_topic, metrics)
        deadline = time.monotonic() + 300
        while processed() < len(metrics):
            for task in tasks:
                if task.done():
                    task.result()
            assert time.monotonic() < deadline, f"processed {processed()} of {len(metrics)}"
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        for detector in fleet:
            await detector.stop()
    for detector in fleet:
        assert detector.risk.pipeline is not None
        run.counts.append(dict(detector.risk.pipeline.labeler.counts))
    return run


async def test_every_label_reaches_its_service_owner(test_settings: Settings) -> None:
    """5 detectors on 6 partitions label the reference's positives; with risk state per
    partition (and the incidents read first) they publish its risk and anomaly alerts."""
    test_settings = test_settings.model_copy(update=EXACT)
    sim = IncidentSimulator(services=SERVICES, interval_s=60.0, seed=5)
    items = list(sim.stream(DAYS * 86_400))
    metrics = [(i.service.encode(), i.to_bytes()) for i in items if isinstance(i, SimulatedEvent)]
    incidents = [(i.service.encode(), i.to_bytes()) for i in items if isinstance(i, IncidentRecord)]
    partitions = test_settings.topic_partitions
    moved = {
        k
        for k, _ in incidents
        if crc32_partition(k, partitions) != _murmur2_partition(k, partitions)
    }
    assert moved, "the two partitioners should disagree on some service"

    started = time.monotonic()
    reference = await _fleet_run(_own(test_settings, ".ref"), 1, metrics, incidents)
    reference_s = time.monotonic() - started
    started = time.monotonic()
    fleet = await _fleet_run(test_settings, FLEET, metrics, incidents)
    fleet_s = time.monotonic() - started
    print(
        f"\nreference: {len(reference.positives)} positives in {reference_s:.1f} s,"
        f" per service {reference.per_service()}, counts {reference.counts}"
        f"\nfleet of {FLEET}: {len(fleet.positives)} positives in {fleet_s:.1f} s,"
        f" per service {fleet.per_service()}"
        f"\nunknown_service per detector: {[c['unknown_service'] for c in fleet.counts]}"
        f"\nservices whose incidents another partitioner moves: {len(moved)} of {SERVICES}"
    )
    assert reference.positives, "the reference should learn positives: nothing is checked else"
    assert fleet.per_service() == reference.per_service()
    assert fleet.positives == reference.positives
    for kind in ("incident_risk", "anomaly"):
        await _alerts_are_the_references(test_settings, _own(test_settings, ".ref"), kind)


def _murmur2_partition(key: bytes, partitions: int) -> int:
    """aiokafka's (and Java's) default partitioner for a key."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


KILL_AT, JOIN_AT = 0.3, 0.6
"""Shares of the metrics committed when one detector is SIGKILLed, and when another joins."""


@pytest.mark.parametrize("incidents_when", ["first", "as_they_come"])
async def test_labels_reach_the_owner_through_a_kill_and_a_join(
    test_settings: Settings, tmp_path: Path, incidents_when: str
) -> None:
    """Three ``vigil detect`` processes; one is SIGKILLed at 30 % of the metrics, a fourth
    joins at 60 %. The positives the fleet publishes for training (``vigil.features``) are the
    single-detector reference's, service by service.

    ``first``: every incident is read by all before the metrics, and risk state is kept per
    partition (``VIGIL_INCIDENT_STATE=partition``): the risk and anomaly alerts published are
    the reference's too, alert for alert. ``as_they_come``: each incident is produced where
    the simulator publishes it, minutes of event time after its open, among the metrics: a
    snapshot taken before an incident was read is restored by a detector that read it (the
    restore applies it); risk state pooled per detector (the default)."""
    settings = test_settings.model_copy(update={"snapshot_interval_s": 2.0})
    if incidents_when == "first":
        settings = settings.model_copy(update=EXACT)
    sim = IncidentSimulator(services=SERVICES, interval_s=60.0, seed=5)
    items = list(sim.stream(DAYS * 86_400))
    metrics = [(i.service.encode(), i.to_bytes()) for i in items if isinstance(i, SimulatedEvent)]
    incidents = [(i.service.encode(), i.to_bytes()) for i in items if isinstance(i, IncidentRecord)]
    reference_settings = _own(settings, ".ref")
    reference = await _fleet_run(reference_settings, 1, metrics, incidents)
    paced: list[tuple[bytes | None, bytes]] = list(metrics)

    bootstrap, partitions = settings.bootstrap_servers, settings.topic_partitions
    await ensure_topics(bootstrap, topic_specs(settings))
    progress = Progress(bootstrap, settings.group_id, settings.topic_metrics)
    env = {
        "VIGIL_LOG_LEVEL": "INFO",
        "VIGIL_LOG_FORMAT": "json",
        "VIGIL_SNAPSHOT_INTERVAL_S": "2",
    }
    produced: list[Produced] = []
    with Fleet(settings, tmp_path, env) as fleet:
        for name in ("d1", "d2", "d3"):
            fleet.start(name)
        await fleet.stable()
        if incidents_when == "first":
            await _produce_to(
                bootstrap,
                settings.topic_incidents,
                [(k, v, crc32_partition(k, partitions)) for k, v in incidents],
            )

            async def incidents_read() -> bool:
                seen = [
                    await scraped_total(m.port, "vigil_incident_events_total") for m in fleet.alive
                ]
                return min(seen) >= len(incidents)

            await fleet.wait_until(incidents_read, timeout_s=60, what="every incident read by all")
        stream = (
            _paced_with_incidents(settings, items, rate_per_s=700.0, acknowledged=produced)
            if incidents_when == "as_they_come"
            else None
        )
        async with paced_stream(
            bootstrap,
            settings.topic_metrics,
            paced if stream is None else [],
            rate_per_s=700.0,
            acknowledged=produced,
        ) as metrics_producer:
            producer = metrics_producer if stream is None else asyncio.create_task(stream)
            await fleet.wait_until(
                lambda: progress.reached(KILL_AT * len(metrics)), timeout_s=90, what="the kill"
            )
            victim = fleet.members[0]
            victim.expected_dead = True
            victim_problems = victim.problems(own_only=True)
            victim.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.proc.wait, 10)
            committed_at_kill = await progress.total()
            await fleet.wait_until(
                lambda: progress.reached(JOIN_AT * len(metrics)), timeout_s=120, what="the join"
            )
            fleet.start("d4")
            await fleet.wait_until(producer_done(producer), timeout_s=120, what="the producer")

        async def drained() -> bool:
            return await progress.total() >= len(metrics)

        await fleet.wait_until(drained, timeout_s=180, what="every metric committed")
        await fleet.stable()
        restored = await fleet.total("vigil_snapshots_restored_total")
        await fleet.stop_all()
        problems = {m.name: m.problems(own_only=True) for m in fleet.alive}
    problems[victim.name] = victim_problems
    assert not any(problems.values()), f"detectors reported errors: {problems}"
    assert 0 < committed_at_kill < len(metrics), "the kill landed before or after the stream"
    assert restored > 0, "no partition was restored from a snapshot: the merge is not tested"

    rows = [
        row
        for record in await read_all(bootstrap, settings.topic_features, idle_s=1.0)
        for row in orjson.loads(record.value)["rows"]
        if row.get("k") == "risk"
    ]
    published = [(r["s"], r["t"], r["i"]) for r in rows if r["y"] and r["i"] is not None]
    positives = set(published)
    per_service = dict(sorted(collections.Counter(s for s, _, _ in positives).items()))
    print(
        f"\nreference: {len(reference.positives)} positives, per service"
        f" {reference.per_service()}\nkill and join: {len(positives)} distinct positives"
        f" ({len(published)} published), per service {per_service};"
        f" missing {len(reference.positives - positives)},"
        f" spurious {len(positives - reference.positives)}; committed at the kill"
        f" {committed_at_kill} of {len(metrics)}; snapshots restored {restored:g}"
    )
    assert per_service == reference.per_service()
    assert positives == reference.positives
    if incidents_when == "first":
        for kind in ("incident_risk", "anomaly"):
            await _alerts_are_the_references(settings, reference_settings, kind)


async def _alerts_are_the_references(settings: Settings, reference: Settings, kind: str) -> None:
    """The fleet's published alerts of ``kind`` against the single detector's: the same set
    (alert id, service, event time, status), none lost, none spurious; an alert published
    more than once (at least once: sent again after the kill) is the same alert each time,
    the reference's (everything but ``detected_at`` and the evidence's topic name)."""
    fleet = await _published(settings, kind)
    ref = await _published(reference, kind)
    keys = {_alert_key(a) for a in ref}
    assert len(keys) == len(ref), "the reference sent an alert twice"
    got = collections.Counter(_alert_key(a) for a in fleet)
    firing = sum(1 for a in ref if a["status"] == "firing")
    print(
        f"\n{kind}: reference {len(ref)} alerts ({firing} firing, {len(ref) - firing}"
        f" resolved); fleet {len(fleet)} published, {len(got)} distinct; missing"
        f" {len(keys - set(got))}, spurious {len(set(got) - keys)}, sent more than once"
        f" {sum(1 for n in got.values() if n > 1)} ({sum(got.values()) - len(got)} copies)"
    )
    assert firing > 0, f"the reference raised no {kind} alert: nothing is checked"
    assert set(got) == keys
    theirs = {_alert_key(a): _content(a) for a in ref}
    for alert in fleet:
        assert _content(alert) == theirs[_alert_key(alert)], alert["alert_id"]


async def _published(settings: Settings, kind: str) -> list[dict[str, Any]]:
    records = await read_all(settings.bootstrap_servers, settings.topic_alerts, idle_s=1.0)
    alerts = [orjson.loads(record.value) for record in records]
    return [a for a in alerts if a["kind"] == kind]


def _alert_key(alert: dict[str, Any]) -> tuple[str, str, str, str]:
    return (alert["alert_id"], alert["service"], alert["event_ts"], alert["status"])


def _content(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert as two runs on topics of their own must agree on it."""
    evidence = {k: v for k, v in (alert.get("evidence") or {}).items() if k != "topic"}
    return {**{k: v for k, v in alert.items() if k != "detected_at"}, "evidence": evidence}


async def _paced_with_incidents(
    settings: Settings,
    items: list[SimulatedEvent | IncidentRecord],
    *,
    rate_per_s: float,
    acknowledged: list[Produced],
    chunk: int = 250,
) -> None:
    """The simulator's stream in its order at ``rate_per_s``: metrics by the producer's
    partitioner, incidents to their CRC32 partition (metrics acknowledged are recorded)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, linger_ms=5, acks="all"
    )
    await producer.start()
    try:
        started = time.monotonic()
        partitions = settings.topic_partitions
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            futures = []
            for item in part:
                key = item.service.encode()
                if isinstance(item, IncidentRecord):
                    # Acknowledged before any later metric is sent: the order the rule
                    # "vectors wait while incidents are unread" can see (two producers,
                    # as in production, give no order at all otherwise).
                    await (
                        await producer.send(
                            settings.topic_incidents,
                            value=item.to_bytes(),
                            key=key,
                            partition=crc32_partition(key, partitions),
                        )
                    )
                else:
                    futures.append(
                        (
                            await producer.send(
                                settings.topic_metrics, value=item.to_bytes(), key=key
                            ),
                            item,
                        )
                    )
            for future, item in futures:
                meta = await future
                acknowledged.append(Produced(meta.partition, meta.offset, item.to_bytes()))
            ahead_s = started + (start + len(part)) / rate_per_s - time.monotonic()
            if ahead_s > 0:
                await asyncio.sleep(ahead_s)
        await producer.flush()
    finally:
        await producer.stop()
