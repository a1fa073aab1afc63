"""stream.dev.simulate: MetricSimulator (deterministic, labelled, spaced-out anomalies) and
``vigil simulate`` (until stopped, log lines with incidents, files with an end)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import orjson
import pytest

from stream.cli import _build_parser, main
from stream.dev.log_simulate import endless_log_events, paced_log_rate
from stream.dev.simulate import MetricSimulator, SimulatedEvent
from stream.dev.simulate_run import _publish_anomalies, _publish_incidents
from stream.schemas import MetricEvent
from stream.settings import load_settings


def _steps(sim: MetricSimulator, count: int) -> dict[str, list[tuple[int, SimulatedEvent]]]:
    """Each service's events with their step (sample number within the service)."""
    by_service: dict[str, list[tuple[int, SimulatedEvent]]] = defaultdict(list)
    for i, event in enumerate(sim.events(count)):
        by_service[event.service].append((i // sim.services, event))
    return by_service


def test_same_seed_gives_the_same_stream() -> None:
    first = [e.to_bytes() for e in MetricSimulator(services=3, seed=5).events(2000)]
    again = [e.to_bytes() for e in MetricSimulator(services=3, seed=5).events(2000)]
    other = [e.to_bytes() for e in MetricSimulator(services=3, seed=6).events(2000)]
    assert first == again
    assert first != other


def test_payloads_are_valid_metric_events() -> None:
    sim = MetricSimulator(services=2, seed=1)
    for i, event in enumerate(sim.events(100)):
        parsed = MetricEvent.model_validate_json(event.to_bytes())
        assert parsed.service == event.service == f"svc-{i % 2:02d}"
        assert parsed.ts == sim.start + timedelta(seconds=(i // 2) * sim.interval_s)
        assert all(value >= 0.0 for value in parsed.metrics.values())


def test_anomaly_rate_among_eligible_events_is_as_configured() -> None:
    sim = MetricSimulator(services=5, anomaly_rate=0.005, seed=3)
    eligible = anomalies = 0
    for events in _steps(sim, 50_000).values():
        last = -sim.min_gap
        for step, event in events:
            if step < sim.clean_start or step - last < sim.min_gap:
                continue
            eligible += 1
            if event.anomaly is not None:
                anomalies += 1
                last = step
    assert eligible > 40_000
    assert anomalies / eligible == pytest.approx(0.005, rel=0.3)


def test_no_anomaly_during_clean_start_and_gaps_respected() -> None:
    sim = MetricSimulator(services=3, anomaly_rate=0.3, seed=2, clean_start=50, min_gap=7)
    for service, events in _steps(sim, 3000).items():
        anomalous = [step for step, e in events if e.anomaly is not None]
        assert len(anomalous) > 20, service
        assert min(anomalous) >= sim.clean_start
        gaps = [b - a for a, b in pairwise(anomalous)]
        assert min(gaps) >= sim.min_gap
        assert sim.min_gap in gaps  # the gap binds at this rate: the check is not vacuous


def test_labels_describe_the_injected_spike() -> None:
    sim = MetricSimulator(services=2, anomaly_rate=0.5, seed=4, clean_start=100, min_gap=5)
    baseline: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    labelled = []
    for event in sim.events(1000):
        metrics = event.payload["metrics"]
        if event.anomaly is None:
            for name, value in metrics.items():
                baseline[event.service][name].append(value)
            continue
        labelled.append(event)
        assert event.anomaly.service == event.service
        assert event.anomaly.ts == MetricEvent.model_validate(event.payload).ts
        assert 1 <= len(event.anomaly.metrics) <= 3
        assert set(event.anomaly.metrics) <= set(metrics)
    assert labelled
    for event in labelled:
        assert event.anomaly is not None
        for name in event.anomaly.metrics:
            history = baseline[event.service][name]
            assert event.payload["metrics"][name] > max(history), (event.service, name)
        assert orjson.loads(event.to_bytes()) == event.payload


class _Producer:
    """Stands in for AIOKafkaProducer: every send acknowledged at once, counted by topic (the
    first value kept); ``stop`` is set once ``stop_after`` messages were sent."""

    def __init__(self, stop: asyncio.Event, stop_after: int | None = None) -> None:
        self.sent: Counter[str] = Counter()
        self.first: bytes | None = None
        self._stop, self._stop_after = stop, stop_after

    async def send(self, topic: str, *, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent[topic] += 1
        self.first = value if self.first is None else self.first
        if self._stop_after is not None and self.sent.total() >= self._stop_after:
            self._stop.set()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _args(*argv: str) -> argparse.Namespace:
    return _build_parser().parse_args(["simulate", *argv])


SETTINGS = load_settings({})


async def test_incidents_come_with_log_lines_whose_event_time_keeps_pace() -> None:
    stop = asyncio.Event()
    producer = _Producer(stop)
    args = _args("--incidents", "--services", "3", "--count", "6480", "--rate", "0")  # 6 h
    summary = await _publish_incidents(args, SETTINGS, producer, stop)  # type: ignore[arg-type]  # a stand-in
    sent = producer.sent
    assert sent[SETTINGS.topic_metrics] == 6480
    assert summary["sent"] == 6480 + sent[SETTINGS.topic_incidents]
    assert summary["log_lines"] == sent[SETTINGS.topic_logs] > 0
    # Published at their rates, samples and log lines take the same wall time: the log
    # lines' event time keeps pace with the samples'.
    log_rate = paced_log_rate(1000.0, interval_s=args.interval_s, lines_per_s=0.5)
    assert log_rate is not None
    assert sent[SETTINGS.topic_logs] / log_rate == pytest.approx(6480 / 1000.0, rel=0.05)


@pytest.mark.parametrize("argv", [("--incidents",), ("--incidents", "--count", "0"), ()])
async def test_without_a_count_it_runs_until_stopped(argv: tuple[str, ...]) -> None:
    stop = asyncio.Event()
    producer = _Producer(stop, stop_after=50_000)
    args = _args("--rate", "0", *argv)
    publishing = _publish_incidents if args.incidents else _publish_anomalies
    summary = await publishing(args, SETTINGS, producer, stop)  # type: ignore[arg-type]  # a stand-in
    total = producer.sent.total()
    assert total == 50_000  # past the 20,000 events once the default, stopped by `stop`
    assert summary["sent"] + summary.get("log_lines", 0) == total


def test_no_log_lines_at_a_rate_of_zero() -> None:
    lines = endless_log_events(["api"], lines_per_s=0.0, seed=1, start=datetime.now(UTC))
    assert list(lines) == []


def test_a_file_gets_an_end(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["simulate", "--jsonl", str(out)]) == 0  # 20,000 by default
    assert len(out.read_bytes().splitlines()) == 20_000
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["simulate", "--jsonl", str(out), "--count", "0"]) == 2
        assert main(["simulate", "--count", "-1"]) == 2
    assert "--jsonl needs a --count" in err.getvalue()


@pytest.mark.parametrize("incidents", [False, True], ids=["anomalies", "incidents"])
async def test_to_kafka_event_time_starts_now_unless_told(incidents: bool) -> None:
    """A stand-in log-processor sends current events (a detector withholds the alerts of
    events older than VIGIL_MAX_ALERT_AGE_S); ``--start`` picks another time."""
    publishing = _publish_incidents if incidents else _publish_anomalies
    flags = ("--incidents",) if incidents else ()
    for start in (None, datetime(2026, 11, 23, tzinfo=UTC)):
        producer = _Producer(asyncio.Event())
        given = ("--start", start.isoformat()) if start is not None else ()
        args = _args("--rate", "0", "--count", "5", *flags, *given)
        before = datetime.now(UTC).replace(second=0, microsecond=0)
        await publishing(args, SETTINGS, producer, asyncio.Event())  # type: ignore[arg-type]  # a stand-in
        assert producer.first is not None
        first = datetime.fromisoformat(orjson.loads(producer.first)["ts"])  # metric or log line
        if start is None:
            assert before <= first <= datetime.now(UTC)
        else:
            assert first == start


def test_a_start_needs_a_timezone() -> None:
    with pytest.raises(SystemExit):
        _args("--start", "2026-11-23T00:00:00")
