"""Log lines through the real broker: incidents raise log alerts, and commits wait for windows."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import TopicPartition

from stream.codec import encode
from stream.core.logs.templates import ServiceTemplates
from stream.detector.detector import Detector
from stream.dev.log_simulate import LogIncident, LogSimulator
from stream.schemas import Alert, LogEvent
from stream.settings import Settings
from tests.integration.kafka_io import (
    Produced,
    committed_offsets,
    end_offsets,
    eventually,
    produce,
    read_all,
    run_until,
)

pytestmark = pytest.mark.integration

SERVICES = ["svc-a", "svc-b", "svc-c", "svc-d"]
WINDOW_S = 30.0
INCIDENTS = (
    LogIncident("svc-a", "error_burst", 7215.0, 120.0),
    LogIncident("svc-b", "new_stack_traces", 7815.0, 120.0),
    LogIncident("svc-c", "quiet", 8415.0, 600.0),
    LogIncident("svc-d", "template_burst", 9015.0, 240.0),
)
TIMEOUTS_PER_MIN = 4.0  # svc-d's burst: the timeout template from 4 to 40 a minute
WARMUP_WINDOWS = 100  # the window models' default warm-up


def _messages(events: list[LogEvent]) -> list[tuple[bytes | None, bytes]]:
    return [(e.service.encode(), encode(e)) for e in events]


def _expected_holds(
    produced: list[Produced], events: list[LogEvent], closed_below: int, topic: str
) -> dict[TopicPartition, int]:
    """Per partition: the first offset of a window still open, else the offset after the last."""
    holds: dict[TopicPartition, int] = {}
    for position, event in zip(produced, events, strict=True):
        tp = TopicPartition(topic, position.partition)
        window = math.floor(event.ts.timestamp() / WINDOW_S)
        if window >= closed_below:
            holds[tp] = min(holds.get(tp, position.offset), position.offset)
    for position in produced:
        tp = TopicPartition(topic, position.partition)
        holds.setdefault(tp, -1)
    return holds


def _sample(detector: Detector, name: str) -> float:
    value = detector.registry.get_sample_value(name, {})
    return 0.0 if value is None else value


async def test_incidents_raise_log_alerts_within_two_windows(test_settings: Settings) -> None:
    sim = LogSimulator(
        SERVICES,
        lines_per_s=1.2,
        incidents=INCIDENTS,
        seed=11,
        disorder_s=2.0,
        timeout_per_min=TIMEOUTS_PER_MIN,
    )
    events = list(sim.events(10_800.0))
    assert 50_000 <= len(events) <= 60_000
    settings = test_settings
    detector = Detector(settings)
    await detector.start()
    try:
        produced = await produce(settings.bootstrap_servers, settings.topic_logs, _messages(events))
        pipeline = detector.logs.pipeline
        last_minute = sim.start + timedelta(seconds=10_800 - 60)
        # Partitions with no lines hold the windows for log_idle_s before they count as idle.
        await run_until(
            detector,
            lambda: (
                detector.counts["consumed"] >= len(events)
                and (pipeline.watermark or sim.start) >= last_minute
            ),
        )
        closed_below = pipeline.closed_below
        windows_scored = pipeline.windows_total
        await detector.flush_commits()
        committed = await committed_offsets(settings.bootstrap_servers, settings.group_id)
    finally:
        await detector.stop()

    # Every line was windowed (the simulator's disorder is within the allowed lateness).
    assert detector.counts["scored"] == len(events)
    assert pipeline.late_total == 0
    alerts = [
        Alert.model_validate(orjson.loads(r.value))
        for r in await read_all(settings.bootstrap_servers, settings.topic_alerts)
    ]
    assert alerts
    assert all(a.source == "logs" for a in alerts)

    def offset_s(alert: Alert) -> float:
        return (alert.event_ts - sim.start).total_seconds()

    for incident in INCIDENTS:
        first_window = incident.start_s // WINDOW_S * WINDOW_S
        caught = [
            a
            for a in alerts
            if a.service == incident.service
            and first_window <= offset_s(a) <= first_window + WINDOW_S
        ]
        assert caught, (incident, [(a.service, offset_s(a)) for a in alerts])
        assert caught[0].explanation.top_features
        assert caught[0].evidence.topic == settings.topic_logs
        if incident.kind != "quiet":
            assert 1 <= len(caught[0].explanation.top_templates) <= 3
        if incident.kind == "template_burst":
            # A known template, no new one: whichever detector opens the service's episode
            # (the window model or the rate test) names it first.
            line = "upstream timeout after 5s calling payments"
            timeout, _ = ServiceTemplates(incident.service).add(line)
            for alert in caught:
                assert alert.explanation.top_templates[0].template_id == timeout.template_id

    def explained(alert: Alert) -> bool:
        t = offset_s(alert)
        return any(
            i.service == alert.service
            and i.start_s - WINDOW_S < t < i.start_s + i.duration_s + 2 * WINDOW_S
            for i in INCIDENTS
        )

    # An episode's resolved alert is not another alert.
    false = [a for a in alerts if a.status == "firing" and not explained(a)]
    normal_windows = windows_scored - len(SERVICES) * WARMUP_WINDOWS
    rate = len(false) / normal_windows
    print(f"log false alerts: {len(false)} of {normal_windows} windows after warm-up ({rate:.2%})")
    assert normal_windows > 1000
    assert rate <= 0.01, [(a.service, a.model.name, offset_s(a)) for a in false]

    # Log partitions are committed up to the first line of their oldest open window: a crash
    # now re-reads every line of the windows not yet scored.
    expected = _expected_holds(produced, events, closed_below, settings.topic_logs)
    ends = await end_offsets(settings.bootstrap_servers, settings.topic_logs)
    for tp, hold in expected.items():
        want = ends[tp] if hold < 0 else hold
        assert committed[tp] == want, (tp, committed[tp], want, ends[tp])
    held_back = sum(ends[tp] - committed[tp] for tp in expected)
    assert held_back > 0

    # A detector that takes over without the snapshots (a lost volume) re-reads exactly the
    # lines of those windows.
    successor = Detector(settings.model_copy(update={"snapshots": False}))
    await successor.start()
    try:
        await run_until(successor, lambda: successor.counts["consumed"] >= held_back)
        await asyncio.sleep(0.5)
        await successor.step()
    finally:
        await successor.stop()
    assert successor.counts["consumed"] == held_back

    # With them, it restores the templates, window models and open windows at the offsets
    # read, re-reads nothing, and keeps holding the commits at the open windows' first lines.
    assert detector.log_snapshots is not None
    with_lines = [tp for tp in ends if detector.log_snapshots.store.paths(tp.topic, tp.partition)]
    assert with_lines
    restored = Detector(settings)
    await restored.start()
    try:
        await run_until(
            restored,
            lambda: _sample(restored, "vigil_snapshots_restored_total") >= len(with_lines),
        )
        await restored.step()
        assert restored.counts["consumed"] == 0
        assert restored.logs.pipeline.open_windows() == detector.logs.pipeline.open_windows()
        assert len(restored.logs.pipeline) == len(detector.logs.pipeline)
        for tp, hold in restored.logs.committable().items():
            assert hold == committed[tp], (tp, hold, committed[tp])
    finally:
        await restored.stop()


async def test_a_quiet_topic_still_closes_its_windows_and_commits(test_settings: Settings) -> None:
    settings = test_settings.model_copy(update={"log_window_s": 1.0, "log_lateness_s": 0.5})
    now = datetime.now(UTC)
    events = [
        LogEvent(
            ts=now + timedelta(seconds=i * 0.05),
            service=("api", "db")[i % 2],
            level="INFO",
            message=f"request {i} served in {i % 7}ms",
        )
        for i in range(60)
    ]
    detector = Detector(settings)
    await detector.start()
    try:
        await produce(settings.bootstrap_servers, settings.topic_logs, _messages(events))
        await run_until(detector, lambda: detector.counts["consumed"] >= len(events))
        ends = await end_offsets(settings.bootstrap_servers, settings.topic_logs)
        used = {tp: end for tp, end in ends.items() if end > 0}

        async def all_closed_and_committed() -> bool:
            await detector.step()
            await detector.flush_commits()
            committed = await committed_offsets(settings.bootstrap_servers, settings.group_id)
            return detector.logs.pipeline.open_windows() == 0 and all(
                committed.get(tp) == end for tp, end in used.items()
            )

        # No more lines come: event time follows the wall clock, windows close, commits move.
        await eventually(all_closed_and_committed, timeout_s=30.0)
    finally:
        await detector.stop()
    pipeline = detector.logs.pipeline
    assert pipeline.lines_total == len(events)
    assert pipeline.windows_total >= 2 * 3  # two services, three 1 s windows of lines at least
