"""``vigil evaluate --problems``: a fault scenario through Kafka, detection to problems.

The scenario's metric events (:class:`~stream.dev.fault_sim.FaultScenario`: a 15-service mesh,
faults that spread along its edges, unrelated noise) are produced to a metrics topic of their
own; an in-process detector scores them and publishes its alerts; an in-process ``vigil
correlate`` (the mesh as its topology, the scenario's maintenance windows as silences on the
silences topic) groups them into problems; the problems read back from the problems topic
are scored against the faults (:mod:`stream.dev.problems_eval`). Every hop is the real one:
the broker, the detector, the router, the scoped partitions, the silences follower.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.core.logs.pipeline import LogPipeline
from stream.core.pipeline import MetricPipeline
from stream.core.problems.correlator import CorrelationConfig, Correlator, event_order
from stream.core.problems.topology import topology_from
from stream.correlate.service import Correlate
from stream.detector.detector import Detector, topic_specs
from stream.dev.fault_sim import FaultScenario, topology_toml
from stream.kafka.kafka_options import kafka_options
from stream.kafka.silences import publish_silence
from stream.kafka.topics import ensure_topics
from stream.offline.replay import replay
from stream.schemas import Alert, Problem, Silence
from stream.settings import Settings

__all__ = ["ScenarioRun", "maintenance_silences", "offline_problems", "run_scenario"]


@dataclass
class ScenarioRun:
    """What a scenario's run published: anomaly alerts and problem messages, in order."""

    alerts: list[Alert]
    problems: list[Problem]
    events: int
    seconds: float


def offline_problems(scenario: FaultScenario) -> ScenarioRun:
    """The same scenario offline: the detector's pipelines (``vigil replay``'s, metrics and
    logs) and one correlator over the alerts in event-time order; problems still open at the
    end resolve there."""
    started = time.monotonic()
    settings = Settings()
    pipeline = MetricPipeline(settings.anomaly_config())
    logs = LogPipeline(settings.log_config())
    events = [orjson.dumps(e) for e in scenario_events(scenario)]
    alerts = [a for a in replay(iter(events), pipeline, logs=logs) if a.kind == "anomaly"]
    alerts.sort(key=event_order)
    topology = topology_from(tomllib.loads(topology_toml(scenario.mesh)))
    correlator = Correlator(CorrelationConfig(), topology)
    problems = [p for alert in alerts for p in correlator.add(alert)]
    problems += correlator.advance_all(scenario.end_s)
    return ScenarioRun(alerts, problems, len(events), time.monotonic() - started)


def scenario_events(scenario: FaultScenario) -> Iterator[dict[str, Any]]:
    """The scenario's metric events and log lines, merged in event-time order."""
    return heapq.merge(scenario.events(), scenario.log_events(), key=_event_s)


def _event_s(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"]).timestamp()


def maintenance_silences(scenario: FaultScenario, every: int = 3) -> list[Silence]:
    """A maintenance window over every ``every``-th fault's root, from ten minutes before the
    fault to ten minutes after it (the operator announced work on that service)."""
    return [
        Silence(
            silence_id=f"maintenance-{fault.fault_id}",
            service=fault.root,
            starts_at=datetime.fromtimestamp(fault.start_s - 600, UTC),
            ends_at=datetime.fromtimestamp(fault.end_s + 600, UTC),
            reason="planned maintenance (evaluation)",
            created_by="vigil evaluate",
        )
        for fault in scenario.faults[every - 1 :: every]
    ]


def _run_settings(settings: Settings, scenario: FaultScenario, work: Path) -> Settings:
    run = f"eval-problems-{uuid.uuid4().hex[:8]}"
    topology = work / "services.toml"
    topology.write_text(topology_toml(scenario.mesh))
    names = ("metrics", "logs", "incidents", "feedback", "alerts", "dlq", "models", "features")
    topics = {f"topic_{n}": f"{run}.{n}" for n in names}
    return settings.model_copy(
        update={
            **topics,
            "topic_scoped_alerts": f"{run}.alerts.scoped",
            "topic_problems": f"{run}.problems",
            "topic_silences": f"{run}.silences",
            "group_id": run,
            "correlate_group_id": f"{run}-correlate",
            "correlate_topology": str(topology),
            "incident_risk": False,
            "max_alert_age_s": 0.0,
            "snapshot_dir": str(work / "snapshots"),
            "auto_offset_reset": "earliest",
        }
    )


async def _produce(settings: Settings, topic: str, events: Iterable[dict[str, Any]]) -> int:
    """Send ``events`` keyed by service, a chunk at a time (each acknowledged before the next
    is sent: memory stays bounded); returns how many."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=20,
        max_batch_size=262_144,
        **kafka_options(settings),
    )
    await producer.start()
    sent = 0
    try:
        stream = iter(events)
        while chunk := list(itertools.islice(stream, 20_000)):
            sends = [
                await producer.send(topic, value=orjson.dumps(e), key=e["service"].encode())
                for e in chunk
            ]
            await asyncio.gather(*sends)
            sent += len(sends)
    finally:
        await producer.stop()
    return sent


async def _read(settings: Settings, topic: str) -> list[bytes]:
    """Every value of ``topic``, partition by partition, in offset order."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        **kafka_options(settings),
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 2.0:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                values += [r.value for r in records if r.value is not None]
                idle_since = time.monotonic()
    finally:
        await consumer.stop()
    return values


async def _detect(settings: Settings, events: int) -> None:
    detector = Detector(settings, serve_http=False)
    await detector.start()
    try:
        deadline = time.monotonic() + 1800
        while detector.counts["scored"] < events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the detector scored {detector.counts['scored']} of {events}")
            await detector.step()
    finally:
        await detector.stop()


async def _correlate(settings: Settings, alerts: int) -> None:
    service = Correlate(settings, serve_http=False)
    await service.start()
    try:
        deadline = time.monotonic() + 600
        while service.counts["correlated"] < alerts:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"vigil correlate read {service.counts['correlated']} of {alerts}"
                )
            await service.step(timeout_s=0.5)
        for _ in range(3):  # what the last alerts' ticks resolve
            await service.step(timeout_s=0.2)
    finally:
        await service.stop()


async def run_scenario(
    settings: Settings, scenario: FaultScenario, silences: list[Silence]
) -> ScenarioRun:
    """Run ``scenario`` through the broker (see the module docstring)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vigil-eval-problems-") as work:
        settings = _run_settings(settings, scenario, Path(work))
        await ensure_topics(
            settings.bootstrap_servers, topic_specs(settings), kafka_options=kafka_options(settings)
        )
        events = await _produce(settings, settings.topic_metrics, scenario.events())
        events += await _produce(settings, settings.topic_logs, scenario.log_events())
        for silence in silences:
            await publish_silence(settings, silence)
        await _detect(settings, events)
        alerts = [
            Alert.model_validate(orjson.loads(v))
            for v in await _read(settings, settings.topic_alerts)
        ]
        await _correlate(settings, len(alerts))
        problems = [
            Problem.model_validate(orjson.loads(v))
            for v in await _read(settings, settings.topic_problems)
        ]
    alerts.sort(key=event_order)
    return ScenarioRun(
        [a for a in alerts if a.kind == "anomaly"],
        problems,
        events,
        time.monotonic() - started,
    )
