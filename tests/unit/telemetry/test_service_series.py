"""stream.telemetry.service_series.ServiceSeries: per-service series only for the services
configured, at most so many, the rest under service="_other"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs

from stream.schemas import Alert
from stream.settings import ConfigError, load_settings
from stream.telemetry import DetectorMetrics
from stream.telemetry.service_series import OTHER, ServiceSeries

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def _alert(service: str, *, status: str = "firing", kind: str = "anomaly") -> Alert:
    return Alert.model_validate(
        {
            "alert_id": f"{service}-{status}",
            "kind": kind,
            "source": "metrics",
            "service": service,
            "event_ts": T0,
            "detected_at": T0,
            "score": 0.9,
            "threshold": 0.8,
            "severity": "warning",
            "model": {"name": "hst-metrics", "version": "1"},
            "explanation": {"top_features": []},
            "evidence": {"topic": "vigil.metrics", "partition": 0, "offset": 0},
            "status": status,
        }
    )


def _totals(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(series, sorted labels) -> value of every per-service ``_total`` sample."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        if family.name.startswith("vigil_service_")
        for s in family.samples
        if s.name.endswith("_total")
    }


def test_unset_registers_nothing_and_counts_nothing() -> None:
    registry = CollectorRegistry()
    metrics = DetectorMetrics(registry, ["vigil.metrics"])
    assert not metrics.services.enabled
    metrics.services.count_alert(_alert("payments"))
    metrics.services.count_events([("payments", 3)], "metrics")
    exposition = generate_latest(registry).decode()
    assert "vigil_service_" not in exposition
    assert "service=" not in exposition  # the default cardinality is what it was


def test_set_counts_firing_alerts_and_events_of_matching_services_only() -> None:
    registry = CollectorRegistry()
    series = ServiceSeries(registry, r"pay.*|api")
    for alert in (
        _alert("payments"),
        _alert("payments", status="resolved"),  # closes the episode: not counted
        _alert("payments", kind="incident_risk"),
        _alert("api"),
        _alert("db"),  # no match: no series
        _alert("my-payments"),  # the whole name must match
    ):
        series.count_alert(alert)
    series.count_events([("payments", 5), ("db", 7), ("api", 0), ("payments", 1)], "metrics")
    series.count_events([("api", 4)], "logs")
    alerts, events = "vigil_service_alerts_total", "vigil_service_events_total"
    assert _totals(registry) == {
        (alerts, (("kind", "anomaly"), ("service", "payments"), ("source", "metrics"))): 1,
        (alerts, (("kind", "incident_risk"), ("service", "payments"), ("source", "metrics"))): 1,
        (alerts, (("kind", "anomaly"), ("service", "api"), ("source", "metrics"))): 1,
        (events, (("service", "payments"), ("source", "metrics"))): 6,
        (events, (("service", "api"), ("source", "logs"))): 4,
    }
    assert series.services == 2


def test_services_past_the_cap_are_counted_under_other_with_one_warning() -> None:
    registry = CollectorRegistry()
    series = ServiceSeries(registry, r"svc-\d+", max_services=2)
    with capture_logs() as logs:
        for name in ("svc-1", "svc-2", "svc-3", "svc-1", "svc-4", "svc-3"):
            series.count_events([(name, 1)], "metrics")
    events = "vigil_service_events_total"
    assert _totals(registry) == {
        (events, (("service", "svc-1"), ("source", "metrics"))): 2,
        (events, (("service", "svc-2"), ("source", "metrics"))): 1,
        (events, (("service", OTHER), ("source", "metrics"))): 3,
    }
    assert series.services == 2
    assert [(e["event"], e["log_level"], e["max_services"]) for e in logs] == [
        ("service_series_capped", "warning", 2)
    ]


def test_a_service_keeps_its_series_once_given_whatever_else_comes() -> None:
    series = ServiceSeries(CollectorRegistry(), ".*", max_services=3)
    first = [series.label_of(f"s{i}") for i in range(3)]
    with capture_logs():
        later = [series.label_of(f"t{i}") for i in range(1000)]
    assert first == ["s0", "s1", "s2"]
    assert set(later) == {OTHER}
    assert [series.label_of(f"s{i}") for i in range(3)] == first


def test_settings_read_the_pattern_and_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VIGIL_CONFIG", "VIGIL_METRICS_SERVICES", "VIGIL_METRICS_SERVICES_MAX"):
        monkeypatch.delenv(name, raising=False)
    assert load_settings().metrics_services is None
    assert load_settings().metrics_services_max == 200
    monkeypatch.setenv("VIGIL_METRICS_SERVICES", "payments|api-.*")
    monkeypatch.setenv("VIGIL_METRICS_SERVICES_MAX", "50")
    settings = load_settings()
    assert (settings.metrics_services, settings.metrics_services_max) == ("payments|api-.*", 50)
    monkeypatch.setenv("VIGIL_METRICS_SERVICES", "")
    assert load_settings().metrics_services is None  # empty, as a template leaves it: none
    monkeypatch.setenv("VIGIL_METRICS_SERVICES", "pay(")
    with pytest.raises(ConfigError, match="metrics_services"):
        load_settings()
    monkeypatch.setenv("VIGIL_METRICS_SERVICES", "pay")
    monkeypatch.setenv("VIGIL_METRICS_SERVICES_MAX", "0")
    with pytest.raises(ConfigError, match="metrics_services_max"):
        load_settings()
