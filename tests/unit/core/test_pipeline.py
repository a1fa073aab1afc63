"""stream.core.pipeline: metric events in, contract Alerts out, with a fixed clock."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from models.anomaly import AnomalyConfig
from stream.core.pipeline import MetricPipeline, Outcome, alert_id_for
from stream.schemas import Evidence, MetricEvent

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 23, tzinfo=UTC)
SPIKES = (1000, 1200, 1400)


@dataclass
class Run:
    pipeline: MetricPipeline
    outcomes: list[Outcome]


def _event(i: int, metrics: dict[str, float], service: str = "api") -> MetricEvent:
    return MetricEvent(ts=T0 + timedelta(seconds=10 * i), service=service, metrics=metrics)


def _train() -> Run:
    """1500 normal events of one service with a latency spike at each of SPIKES."""
    config = AnomalyConfig(warmup_events=200, window_size=50)
    pipeline = MetricPipeline(config, clock=lambda: NOW)
    rng = random.Random(0)
    outcomes = []
    for i in range(1500):
        metrics = {"latency": rng.gauss(400, 20), "cpu": rng.gauss(55, 3)}
        if i in SPIKES:
            metrics["latency"] = 2000.0
        evidence = Evidence(topic="vigil.metrics", partition=3, offset=i)
        outcomes.append(pipeline.process(_event(i, metrics), evidence))
    return Run(pipeline, outcomes)


@pytest.fixture
def run() -> Run:
    return _train()


def test_spikes_alert(run: Run) -> None:
    for i in SPIKES:
        alert = run.outcomes[i].alert
        assert alert is not None, i
        assert alert.explanation.top_features[0].name == "latency"
        assert alert.explanation.top_features[0].value == 2000.0
        assert alert.severity == "critical"


def test_alerts_follow_the_contract(run: Run) -> None:
    alerted = [o for o in run.outcomes if o.alert is not None]
    assert alerted
    opened: dict[str, datetime] = {}
    for outcome in alerted:
        alert, verdict = outcome.alert, outcome.verdict
        assert alert is not None
        offset = alert.evidence.offset
        assert (alert.kind, alert.source, alert.service) == ("anomaly", "metrics", "api")
        assert alert.event_ts == T0 + timedelta(seconds=10 * offset)
        assert alert.detected_at == NOW
        assert alert.model.name == "hst-metrics"
        assert alert.model.version == run.pipeline.model_version(verdict.model_version)
        assert (alert.evidence.topic, alert.evidence.partition) == ("vigil.metrics", 3)
        assert alert.severity in {"warning", "critical"}
        assert alert.threshold == pytest.approx(verdict.threshold, abs=1e-6)
        assert alert.score == pytest.approx(verdict.score, abs=1e-6)
        assert alert.started_at is not None
        assert alert.episode_id is not None
        if alert.status == "resolved":
            assert alert.episode_id in opened  # closes an episode a firing alert opened
            assert alert.started_at == opened.pop(alert.episode_id)
            continue
        opened[alert.episode_id] = alert.started_at
        assert alert.started_at == alert.event_ts
        assert alert.score >= alert.threshold
        assert alert.explanation.top_features
        for feature in alert.explanation.top_features:
            assert 0.0 < feature.contribution <= 1.0
    assert any(o.alert is not None and o.alert.status == "resolved" for o in alerted)


def test_no_alert_while_warming_up(run: Run) -> None:
    assert all(o.alert is None and o.verdict.warming_up for o in run.outcomes[:200])
    assert not run.outcomes[200].verdict.warming_up


def test_alert_id_is_stable_and_input_sensitive() -> None:
    features = {"cpu": 1.0, "latency": 400.0}
    base = alert_id_for("anomaly", "metrics", "api", T0, features)
    assert base == alert_id_for("anomaly", "metrics", "api", T0, dict(reversed(features.items())))
    variants = [
        alert_id_for("anomaly", "metrics", "web", T0, features),
        alert_id_for("anomaly", "metrics", "api", T0 + timedelta(milliseconds=1), features),
        alert_id_for("anomaly", "metrics", "api", T0, {**features, "cpu": 1.5}),
        alert_id_for("anomaly", "metrics", "api", T0, {**features, "mem": 3.0}),
        alert_id_for("incident_risk", "metrics", "api", T0, features),
    ]
    assert len({base, *variants}) == 1 + len(variants)


def test_alert_id_of_a_replayed_event_is_unchanged(run: Run) -> None:
    alert = run.outcomes[SPIKES[0]].alert
    assert alert is not None
    features = {"latency": 2000.0, "cpu": alert.explanation.top_features[1].value}
    assert alert.alert_id == alert_id_for("anomaly", "metrics", "api", alert.event_ts, features)


def test_scoring_without_learning_changes_nothing(run: Run) -> None:
    before = run.pipeline.describe()
    evidence = Evidence(topic="http", partition=0, offset=0)
    spike = run.pipeline.process(
        _event(2000, {"latency": 5000.0, "cpu": 55.0}), evidence, learn=False
    )
    grown = run.pipeline.process(
        _event(2001, {"latency": 400.0, "cpu": 55.0, "mem": 70.0}), evidence, learn=False
    )
    new = run.pipeline.process(_event(2002, {"cpu": 1.0}, service="new"), evidence, learn=False)
    assert spike.alert is not None  # it would alert...
    assert not grown.verdict.candidate_started
    assert new.verdict.warming_up
    assert run.pipeline.describe() == before  # ...but nothing was learned
    twin = _train().pipeline
    rng = random.Random(9)
    for i in range(3000, 3100):
        event = _event(i, {"latency": rng.gauss(400, 20), "cpu": rng.gauss(55, 3)})
        ours = run.pipeline.process(event, evidence)
        theirs = twin.process(event, evidence)
        assert ours.verdict == theirs.verdict
