"""stream.simulate.MetricSimulator: deterministic, labelled, and spaced-out anomalies."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from itertools import pairwise

import orjson
import pytest

from stream.schemas import MetricEvent
from stream.simulate import MetricSimulator, SimulatedEvent


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
