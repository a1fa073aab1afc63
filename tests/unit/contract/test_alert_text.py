"""Alerts that stand on their own in a pager: a one-line summary, the event's labels, links
from configured templates, and the schema version (issue 21)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from models.anomaly import AnomalyConfig
from stream.core.pipeline import MetricPipeline
from stream.offline.replay import run_replay
from stream.schemas import ALERT_SCHEMA_VERSION, Alert, Evidence, MetricEvent, with_links
from stream.settings import Settings

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def _alerts(region: str | None, host: str | None) -> list[Alert]:
    pipeline = MetricPipeline(AnomalyConfig(warmup_events=200, window_size=50))
    rng = random.Random(0)
    alerts = []
    for i in range(800):
        latency = 2000.0 if i == 600 else rng.gauss(400, 20)
        event = MetricEvent(
            ts=T0 + timedelta(seconds=10 * i),
            service="payments",
            metrics={"latency_p95": latency, "cpu": rng.gauss(55, 3)},
            region=region,
            host=host,
        )
        outcome = pipeline.process(event, Evidence(topic="m", partition=0, offset=i))
        if outcome.alert is not None:
            alerts.append(outcome.alert)
    return alerts


def test_a_metric_alert_carries_its_events_labels_and_a_summary() -> None:
    alerts = _alerts("blr", "pay-1")
    firing = [a for a in alerts if a.status == "firing"]
    assert firing
    alert = firing[0]
    assert alert.labels == {"region": "blr", "host": "pay-1"}
    assert alert.schema_version == ALERT_SCHEMA_VERSION == 2
    assert alert.summary.startswith(
        f"[{alert.severity}] payments: metrics unusual: latency_p95 2000"
    )
    # Every metric's robust z, for ranking root-cause suspects (not only the top features).
    z = alert.explanation.z_scores
    assert set(z) == {"latency_p95", "cpu"}
    assert z["latency_p95"] > 20 > abs(z["cpu"])
    resolved = [a for a in alerts if a.status == "resolved"]
    assert resolved
    assert resolved[0].summary.startswith("[resolved] payments: metrics unusual since 2026-11-23")
    assert resolved[0].explanation.z_scores == {}
    # Labels an event does not carry are left out, not sent empty.
    assert all(a.labels == {"host": "pay-1"} for a in _alerts(None, "pay-1"))


def _alert(**fields: object) -> Alert:
    base: dict[str, object] = {
        "alert_id": "a1",
        "kind": "anomaly",
        "source": "logs",
        "service": "api",
        "event_ts": 0,
        "detected_at": 0,
        "score": 0.999,
        "threshold": 0.99,
        "severity": "warning",
        "model": {"name": "m", "version": "1"},
        "explanation": {"top_features": []},
        "evidence": {"topic": "t", "partition": 0, "offset": 1},
    }
    return Alert.model_validate(base | fields)


def test_summaries_of_log_and_risk_alerts() -> None:
    log = _alert(
        explanation={
            "top_features": [],
            "top_templates": [
                {"template_id": "t", "template": "upstream timeout <*>", "count": 50, "sample": ""}
            ],
        }
    )
    assert log.summary == '[warning] api: logs unusual: 50x "upstream timeout <*>"'
    risk = _alert(kind="incident_risk", source="metrics", score=0.42, threshold=0.2, horizon_s=900)
    assert risk.summary == "[warning] api: incident risk: 42% within 15 min (alerts from 20%)"
    given = _alert(summary="written by the producer")
    assert given.summary == "written by the producer"


def test_links_are_rendered_from_templates_and_a_bad_template_is_refused() -> None:
    alert = _alert(labels={"region": "eu west"}, episode_id="e1")
    links = with_links(
        alert,
        {"runbook": "https://wiki/{service}/{kind}", "dashboard": "https://g/?r={region}&h={host}"},
    ).links
    assert links == {
        "runbook": "https://wiki/api/anomaly",
        "dashboard": "https://g/?r=eu%20west&h=",
    }
    with pytest.raises(ValidationError, match="unknown placeholder"):
        Settings(alert_runbook_url="https://wiki/{team}")


def test_replay_writes_the_links_configured(tmp_path: Path) -> None:
    events = tmp_path / "in.jsonl"
    rng = random.Random(1)
    lines = []
    for i in range(800):
        latency = 2500.0 if i == 700 else rng.gauss(400, 20)
        lines.append(
            orjson.dumps(
                {
                    "ts": (T0 + timedelta(seconds=10 * i)).isoformat(),
                    "service": "payments",
                    "host": "pay-2",
                    "metrics": {"latency_p95": latency},
                }
            )
        )
    events.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "alerts.jsonl"
    settings = Settings(
        alert_runbook_url="https://wiki/{service}", warmup_events=200, hst_window=50
    )
    assert run_replay(events, out, settings) == 0
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert alerts
    assert {a["links"]["runbook"] for a in alerts} == {"https://wiki/payments"}
    assert {a["labels"]["host"] for a in alerts} == {"pay-2"}
