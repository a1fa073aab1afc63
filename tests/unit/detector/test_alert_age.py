"""stream.detector.alert_age and the detector's send path: alerts of events older than
VIGIL_MAX_ALERT_AGE_S are counted, not sent; their episodes do not resolve either."""

from __future__ import annotations

import collections
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from stream.detector.alert_age import AlertAgeGate
from stream.detector.stage import StageContext
from stream.schemas import Alert
from stream.telemetry import DetectorMetrics

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def _alert(
    age_s: float,
    *,
    status: str = "firing",
    episode: str = "ep-1",
    kind: str = "anomaly",
    source: str = "metrics",
) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": f"{episode}-{status}-{age_s}",
            "kind": kind,
            "source": source,
            "service": "api",
            "event_ts": NOW - timedelta(seconds=age_s),
            "detected_at": NOW,
            "score": 1.0,
            "threshold": 0.9,
            "severity": "warning",
            "model": {"name": "m", "version": "1"},
            "explanation": {"top_features": []},
            "evidence": {"topic": "t", "partition": 0, "offset": 0},
            "status": status,
            "episode_id": episode,
        }
    )


@pytest.mark.parametrize(
    ("age_s", "withheld"),
    [(7200.0, True), (3600.1, True), (3600.0, False), (60.0, False), (-600.0, False)],
    ids=["two-hours", "just-past", "at-the-limit", "a-minute", "future"],
)
def test_a_firing_alert_is_withheld_past_the_limit(age_s: float, withheld: bool) -> None:
    assert AlertAgeGate(3600.0).withholds(_alert(age_s), NOW) is withheld


def test_no_limit_withholds_nothing() -> None:
    gate = AlertAgeGate(0.0)
    assert not gate.withholds(_alert(10 * 86_400.0), NOW)


def test_an_episode_withheld_when_it_opened_is_withheld_when_it_resolves() -> None:
    gate = AlertAgeGate(3600.0)
    assert gate.withholds(_alert(7200.0, episode="old"), NOW)
    assert len(gate) == 1
    # It resolves on a fresh event: still withheld (no consumer saw it open), then forgotten.
    assert gate.withholds(_alert(10.0, status="resolved", episode="old"), NOW)
    assert len(gate) == 0


def test_an_episode_sent_when_it_opened_resolves_whatever_its_age() -> None:
    """After an outage the resolved alert is old, but a consumer saw the episode open."""
    gate = AlertAgeGate(3600.0)
    assert not gate.withholds(_alert(10.0, episode="live"), NOW)
    later = NOW + timedelta(hours=5)
    assert not gate.withholds(_alert(3 * 3600.0, status="resolved", episode="live"), later)


def test_withheld_episodes_are_remembered_within_a_bound() -> None:
    gate = AlertAgeGate(3600.0, remember=3)
    for i in range(5):
        gate.withholds(_alert(7200.0, episode=f"ep-{i}"), NOW)
    assert len(gate) == 3
    # The oldest forgotten: its resolved alert goes out (an unmatched resolve is harmless).
    assert not gate.withholds(_alert(10.0, status="resolved", episode="ep-0"), NOW)
    assert gate.withholds(_alert(10.0, status="resolved", episode="ep-4"), NOW)


class _Publisher:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    async def send_alert(self, alert: Alert) -> Any:
        self.sent.append(alert)
        return None


@pytest.mark.parametrize(
    ("kind", "source"),
    [("anomaly", "metrics"), ("anomaly", "logs"), ("incident_risk", "metrics")],
)
async def test_the_send_path_counts_and_does_not_send_old_alerts(kind: str, source: str) -> None:
    registry = CollectorRegistry()
    metrics = DetectorMetrics(registry, ["t"])
    publisher = _Publisher()
    counts: collections.Counter[str] = collections.Counter()
    gate = AlertAgeGate(3600.0)

    async def no_dead_letters(*_: Any) -> Any:
        raise AssertionError("no dead letter expected")

    context = StageContext(
        publisher,  # type: ignore[arg-type]  # a stand-in
        metrics,
        counts,
        no_dead_letters,
        1024,
        too_old=lambda alert: gate.withholds(alert, NOW),
    )
    old = _alert(86_400.0, kind=kind, source=source, episode="old")
    fresh = _alert(5.0, kind=kind, source=source, episode="fresh")
    assert await context.send_alert(old) is None
    await context.send_alert(fresh)
    await context.send_alert(
        _alert(1.0, kind=kind, source=source, episode="old", status="resolved")
    )
    assert publisher.sent == [fresh]
    labels = {"kind": kind, "source": source}
    assert registry.get_sample_value("vigil_alerts_too_old_total", labels) == 2
    assert counts["alerts_too_old"] == 2
    assert counts["alerts"] == 1
