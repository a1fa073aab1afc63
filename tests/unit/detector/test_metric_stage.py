"""The detector's metric stage on its own: records in, alerts and dead letters out (fakes for
the publisher; the real broker path is in tests/integration)."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import numpy as np
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from models.anomaly import AnomalyConfig
from stream.codec import DecodeError, decode_metric
from stream.core.pipeline import MetricPipeline
from stream.detector.metric_stage import MetricStage
from stream.detector.risk_stage import RiskStage
from stream.detector.stage import StageContext
from stream.dev.simulate import MetricSimulator
from stream.kafka.records import Record, evidence_of
from stream.schemas import Alert
from stream.telemetry import DetectorMetrics


class _Publisher:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def send_alert(self, alert: Alert) -> Any:
        self.alerts.append(alert)
        return _acked()


def _acked() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


def _records(values: list[bytes]) -> list[Record]:
    return [
        ConsumerRecord("t.metrics", 0, offset, 0, 0, None, value, None, len(value), -1, [])
        for offset, value in enumerate(values)
    ]


def _stage(
    pipeline: MetricPipeline, metrics: DetectorMetrics | None = None
) -> tuple[MetricStage, _Publisher, list[tuple[int, str]], collections.Counter[str]]:
    publisher = _Publisher()
    letters: list[tuple[int, str]] = []
    counts: collections.Counter[str] = collections.Counter()

    async def dead_letter(record: Record, error: DecodeError) -> Any:
        letters.append((record.offset, error.reason))
        return _acked()

    context = StageContext(
        publisher,  # type: ignore[arg-type]  # a stand-in
        metrics or DetectorMetrics(CollectorRegistry(), ["t.metrics"]),
        counts,
        dead_letter,
        4096,
    )
    return MetricStage(pipeline, context, RiskStage(None, context)), publisher, letters, counts


def _config() -> AnomalyConfig:
    return AnomalyConfig(warmup_events=200, window_size=100, n_trees=10, height=6)


async def test_scores_a_batch_dead_letters_what_does_not_decode_and_publishes_alerts() -> None:
    events = [e.to_bytes() for e in MetricSimulator(services=2, seed=3).events(6000)]
    bad = [b"{not json", b'{"ts": 0, "service": "x", "metrics": {}}']
    values = [*events[:100], *bad, *events[100:]]
    stage, publisher, letters, counts = _stage(MetricPipeline(_config()))
    records = _records(values)
    pending, (services, sources) = await stage.handle(records)
    assert letters == [(100, "invalid_json"), (101, "invalid_value")]
    assert len(services) == len(sources) == len(events)
    assert counts["scored"] == len(events)
    assert publisher.alerts, "the simulator's anomalies alert"
    assert len(pending) == len(letters) + len(publisher.alerts)
    # The same alerts as the pipeline alone over the decodable events.
    alone = MetricPipeline(_config())
    samples = [decode_metric(v) for v in events]
    evidence = lambda i: evidence_of(records[i])  # noqa: E731
    expected = alone.process_batch(samples, evidence).alerts  # type: ignore[arg-type]
    assert [a.event_ts for a in publisher.alerts] == [a.event_ts for _, a in expected]


async def test_an_event_that_breaks_the_batch_is_dead_lettered_alone() -> None:
    pipeline = MetricPipeline(_config())
    stage, _, letters, counts = _stage(pipeline)
    values = [e.to_bytes() for e in MetricSimulator(services=2, seed=4).events(50)]
    real = pipeline.process_batch

    def fragile(events: list[Any], evidence: Any) -> Any:
        if any(e.service == "svc-01" and np.isclose(e.ts.timestamp() % 600, 0) for e in events):
            raise RuntimeError("a bug in per-batch work")
        return real(events, evidence)

    pipeline.process_batch = fragile  # type: ignore[method-assign]
    await stage.handle(_records(values))
    broken = [i for i, (_, reason) in enumerate(letters) if reason == "unexpected"]
    assert broken, "the events that break it are dead-lettered"
    assert counts["scored"] == len(values) - len(letters)


async def test_events_and_firing_alerts_count_per_service_when_configured() -> None:
    registry = CollectorRegistry()
    metrics = DetectorMetrics(registry, ["t.metrics"], service_pattern="svc-00")
    events = [e.to_bytes() for e in MetricSimulator(services=2, seed=3).events(6000)]
    stage, publisher, _, counts = _stage(MetricPipeline(_config()), metrics)
    await stage.handle(_records(events))
    mine = [a for a in publisher.alerts if a.service == "svc-00"]
    firing = [a for a in mine if a.status == "firing"]
    assert firing, "the simulator's anomalies alert"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        if family.name.startswith("vigil_service_")
        for s in family.samples
        if s.name.endswith("_total")
    }
    # Only svc-00 has series (svc-01 does not match); its events, its firing alerts.
    assert samples == {
        (
            "vigil_service_events_total",
            (("service", "svc-00"), ("source", "metrics")),
        ): counts["scored"] / 2,
        (
            "vigil_service_alerts_total",
            (("kind", "anomaly"), ("service", "svc-00"), ("source", "metrics")),
        ): len(firing),
    }
