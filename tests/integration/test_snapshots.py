"""Snapshots against the real broker: a restarted detector carries on as if it never stopped.

Detector A learns a stream and stops (snapshotting its partitions); more events arrive; a new
detector B in the same group restores the snapshots and consumes the rest. Each service's
model is deterministic and sees its events in partition order, so what B does can be compared
with A's own pipeline carrying on over the same events: the same alerts (no warm-up gap) and
the same model state afterwards.
"""

from __future__ import annotations

import collections

import numpy as np
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from models.state_codec import decode_state, encode_state, serialize_state
from stream.core.pipeline import MetricPipeline
from stream.detector.detector import Detector, topic_specs
from stream.detector.snapshot_classes import SNAPSHOT_CLASSES
from stream.dev.incident_sim import IncidentRecord, IncidentSimulator
from stream.dev.simulate import MetricSimulator, SimulatedEvent
from stream.kafka.topics import ensure_topics
from stream.schemas import Evidence, MetricEvent
from stream.settings import Settings
from tests.integration.kafka_io import eventually, produce, read_all, run_until

pytestmark = pytest.mark.integration

FIRST, SECOND = 6000, 3000


def _settings(test_settings: Settings, **changes: object) -> Settings:
    return test_settings.model_copy(
        update={
            "topic_partitions": 2,
            "max_batch": 500,
            "warmup_events": 300,
            "anomaly_budget_per_day": 86.4,
            "incident_risk": False,
            **changes,
        }
    )


def _events() -> tuple[list[MetricEvent], list[MetricEvent]]:
    simulated = MetricSimulator(services=6, anomaly_rate=0.01, seed=51).events(FIRST + SECOND)
    events = [MetricEvent.model_validate(e.payload) for e in simulated]
    return events[:FIRST], events[FIRST:]


async def _produce(settings: Settings, events: list[MetricEvent]) -> None:
    await produce(
        settings.bootstrap_servers,
        settings.topic_metrics,
        ((e.service.encode(), orjson.dumps(e.model_dump(mode="json"))) for e in events),
    )


async def _run(settings: Settings, through: int) -> Detector:
    """A detector run until it has processed the metrics topic's first ``through`` records."""
    detector = Detector(settings, serve_http=False)
    await detector.start()
    try:
        await run_until(detector, lambda: _position(detector) >= through)
    finally:
        await detector.stop()
    return detector


def _position(detector: Detector) -> int:
    assert detector.snapshots is not None
    return sum(detector.snapshots.describe_positions().values())


def _carry_on(pipeline: MetricPipeline, events: list[MetricEvent]) -> set[str]:
    """The alert ids ``pipeline`` raises on ``events`` (it learns them too)."""
    outcome = pipeline.process_batch(events, lambda i: Evidence(topic="t", partition=0, offset=i))
    return {alert.alert_id for _, alert in outcome.alerts}


def _same_state(a: MetricPipeline, b: MetricPipeline, probe: list[MetricEvent]) -> None:
    def scores(pipeline: MetricPipeline) -> np.ndarray:
        return pipeline.process_batch(
            probe, lambda i: Evidence(topic="t", partition=0, offset=i), learn=False
        ).scores

    assert {m.service for m in a} == {m.service for m in b}
    np.testing.assert_allclose(scores(a), scores(b), rtol=1e-9, atol=1e-12)


async def _alert_ids(settings: Settings) -> list[str]:
    records = await read_all(settings.bootstrap_servers, settings.topic_alerts)
    return [orjson.loads(r.value)["alert_id"] for r in records]


def _sample(detector: Detector, name: str, **labels: str) -> float:
    value = detector.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_restart_restores_state_and_alerts_without_a_gap(test_settings: Settings) -> None:
    settings = _settings(test_settings)
    await ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    first, second = _events()
    await _produce(settings, first)
    a = await _run(settings, FIRST)
    assert _sample(a, "vigil_snapshots_written_total") >= 2  # at least one per partition
    alerts_of_a = set(await _alert_ids(settings))

    await _produce(settings, second)
    b = await _run(settings, FIRST + SECOND)
    assert _sample(b, "vigil_snapshots_restored_total") == 2
    assert b.counts["scored"] == SECOND  # resumed at the committed offsets: nothing re-read

    expected = _carry_on(a.pipeline, second)  # A's models, as if A had never stopped
    assert expected, "the second part of the stream should raise alerts"
    raised_by_b = set(await _alert_ids(settings)) - alerts_of_a
    # The restored models alert at once, on exactly what A's would have: no warm-up gap.
    assert raised_by_b == expected
    _same_state(a.pipeline, b.pipeline, second[-300:])


async def test_a_corrupt_newest_snapshot_falls_back_to_the_one_before(
    test_settings: Settings,
) -> None:
    # Snapshot at every batch, so each partition has several to fall back on.
    settings = _settings(test_settings, snapshot_interval_s=0.001, snapshot_keep=5)
    await ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    first, second = _events()
    await _produce(settings, first)
    a = await _run(settings, FIRST)

    store = a.snapshots
    assert store is not None
    newest, *older = store.store.paths(settings.topic_metrics, 0)
    assert older, "partition 0 should have more than one snapshot"
    newest.write_bytes(b"\x00" * 64)  # a torn or overwritten file

    await _produce(settings, second)
    b = await _run(settings, FIRST + SECOND)
    assert _sample(b, "vigil_snapshots_rejected_total", reason="corrupt") == 1
    assert _sample(b, "vigil_snapshots_restored_total") == 2
    # Partition 0 resumed at the older snapshot's offset: the records between it and the
    # committed offset were learned again, their alerts not sent twice.
    restored_at = int(older[0].name.split("-")[1].removesuffix(".snap"))
    committed = int(newest.name.split("-")[1].removesuffix(".snap"))
    assert b.counts["scored"] == SECOND + committed - restored_at > SECOND
    assert _sample(b, "vigil_snapshot_replayed_events_total") == committed - restored_at

    ids = await _alert_ids(settings)
    duplicates = [i for i, n in collections.Counter(ids).items() if n > 1]
    assert duplicates == []
    # The replay rebuilt exactly the state A had, and B went on from there.
    reference = MetricPipeline(settings.anomaly_config())
    _carry_on(reference, first)
    expected_second = _carry_on(reference, second)
    assert expected_second <= set(ids)
    _same_state(reference, b.pipeline, second[-300:])


async def test_incident_risk_state_comes_back_after_a_restart(test_settings: Settings) -> None:
    settings = _settings(test_settings, incident_risk=True)
    await ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    sim = IncidentSimulator(services=6, interval_s=30.0, seed=8)
    items = list(sim.stream(86_400))
    metrics = [(i.service.encode(), i.to_bytes()) for i in items if isinstance(i, SimulatedEvent)]
    incidents = [(i.service.encode(), i.to_bytes()) for i in items if isinstance(i, IncidentRecord)]
    await produce(settings.bootstrap_servers, settings.topic_incidents, incidents)
    await produce(settings.bootstrap_servers, settings.topic_metrics, metrics)
    a = await _run(settings, len(metrics))
    risk_a = a.risk.pipeline
    assert risk_a is not None
    assert len(risk_a.labeler) > 0
    assert risk_a.labeler.counts["positive"] > 0

    b = Detector(settings, serve_http=False)
    await b.start()
    try:
        await run_until(b, lambda: _sample(b, "vigil_snapshots_restored_total") == 2, 60)
    finally:
        await b.stop()
    risk_b = b.risk.pipeline
    assert risk_b is not None
    # Every service's label buffer, feature history and the group model came back.
    assert len(risk_b.labeler) == len(risk_a.labeler)
    assert len(risk_b.features) == len(risk_a.features)
    view_a, view_b = risk_a.describe()["groups"], risk_b.describe()["groups"]
    assert view_b == view_a
    # ... and each service's risk episode (open or not, with its counts of steps).
    services = list(risk_a.episodes._tracks)
    assert [t.__getstate__() for t in risk_b.episodes.export(services).values()] == [
        t.__getstate__() for t in risk_a.episodes.export(services).values()
    ]
    assert b.counts["scored"] == 0  # nothing re-read: the state matched the committed offsets


async def _recreate(settings: Settings, topic: str) -> None:
    """Delete ``topic`` and create it again, empty (the broker deletes asynchronously)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([topic])

        async def gone() -> bool:
            return topic not in await admin.list_topics()

        await eventually(gone, 30)
    finally:
        await admin.close()
    specs = [s for s in topic_specs(settings) if s.name == topic]

    async def created() -> bool:
        try:
            await ensure_topics(settings.bootstrap_servers, specs)
        except RuntimeError:  # still being deleted
            return False
        return True

    await eventually(created, 30)


@pytest.mark.parametrize(
    ("reason", "grown"),
    [("beyond_end", False), ("record_mismatch", True)],
    ids=["fewer_records", "more_records"],
)
async def test_snapshots_of_an_earlier_topic_are_rejected_and_every_event_is_consumed(
    test_settings: Settings, reason: str, grown: bool
) -> None:
    # Snapshots stamped at ~3,000 records per partition, then the topic is re-created (a
    # `docker compose down -v` that kept the snapshot volume) and gets ~1,500 records per
    # partition, or ~4,500: past the snapshots' offsets, with other records there.
    settings = _settings(test_settings)
    await ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    first, second = _events()
    await _produce(settings, first)
    await _run(settings, FIRST)
    await _recreate(settings, settings.topic_metrics)
    again = first + second if grown else second
    await _produce(settings, again)

    b = Detector(settings, serve_http=False)
    await b.start()
    try:
        await run_until(b, lambda: b.counts["scored"] >= len(again), 60)
    finally:
        await b.stop()
    assert b.counts["scored"] == len(again)  # every event of the new topic, none skipped
    # The newest of each partition is rejected; the older ones were taken from the same
    # earlier topic and are not tried.
    assert _sample(b, "vigil_snapshots_rejected_total", reason=reason) == 2
    assert _sample(b, "vigil_snapshots_restored_total") == 0


@pytest.mark.parametrize(
    ("changes", "risk_restored"),
    [
        # Decisions: the anomaly budget and the incident threshold apply to restored state.
        ({"anomaly_budget_per_day": 8.64, "incident_threshold": 0.9}, True),
        # A parameter that shapes incident risk's learned state: that family alone restarts.
        ({"incident_horizon_s": 600.0}, False),
    ],
    ids=["decisions", "risk_state"],
)
async def test_changed_settings_keep_the_learned_state_they_do_not_shape(
    test_settings: Settings, changes: dict[str, object], risk_restored: bool
) -> None:
    settings = _settings(test_settings, incident_risk=True)
    await ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    first, second = _events()
    await _produce(settings, first)
    a = await _run(settings, FIRST)
    alerts_of_a = set(await _alert_ids(settings))
    learned = serialize_state(
        encode_state(a.pipeline.models_of([m.service for m in a.pipeline]), SNAPSHOT_CLASSES)
    )
    risk_a = a.risk.pipeline
    assert risk_a is not None
    updates_a = {name: g.model.updates for name, g in risk_a._groups.items()}
    assert any(updates_a.values())

    changed = _settings(test_settings, incident_risk=True, **changes)
    b = Detector(changed, serve_http=False)
    await b.start()
    try:
        await run_until(b, lambda: _sample(b, "vigil_snapshots_restored_total") == 2, 60)
        risk_b = b.risk.pipeline
        assert risk_b is not None
        updates_b = {name: g.model.updates for name, g in risk_b._groups.items()}
        if risk_restored:
            assert updates_b == updates_a
            assert all(g.threshold.value == 0.9 for g in risk_b._groups.values())
        else:
            assert not any(updates_b.values())
        assert len(b.pipeline) == len(a.pipeline)
        await _produce(settings, second)
        await run_until(b, lambda: _position(b) >= FIRST + SECOND)
    finally:
        await b.stop()
    assert _sample(b, "vigil_snapshots_rejected_total", reason="config_changed") == 0
    assert b.counts["scored"] == SECOND
    # The anomaly models came back (no warm-up) and decide with the running configuration
    # at once: B raises exactly what A's models, so configured, raise.
    reference = MetricPipeline(changed.anomaly_config())
    reference.install(decode_state(learned, SNAPSHOT_CLASSES))
    expected = _carry_on(reference, second)
    assert expected
    if "anomaly_budget_per_day" in changes:
        unchanged = MetricPipeline(settings.anomaly_config())
        unchanged.install(decode_state(learned, SNAPSHOT_CLASSES))
        assert expected != _carry_on(unchanged, second), "the budget should make a difference"
    records = await read_all(changed.bootstrap_servers, changed.topic_alerts)
    alerts = [orjson.loads(r.value) for r in records]
    raised_by_b = {
        x["alert_id"] for x in alerts if x["kind"] == "anomaly" and x["alert_id"] not in alerts_of_a
    }
    assert raised_by_b == expected
