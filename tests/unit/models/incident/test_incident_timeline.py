"""Incidents on a timeline: which alert counts as a warning, and which services to show."""

from __future__ import annotations

from models.incident import IncidentSpan, busiest_services, incident_spans

H = 900.0


def _warned(alerts: list[float], opened_s: float = 10_000.0) -> float | None:
    (span,) = incident_spans({"i": ("api", opened_s)}, {}, {"api": alerts}, H)
    return span.warned_s


def test_the_first_alert_within_the_horizon_warns() -> None:
    assert _warned([9_100.0, 9_500.0, 10_000.0]) == 9_100.0  # on the horizon's edge
    assert _warned([9_099.0, 9_800.0]) == 9_800.0  # the first is too early
    assert _warned([10_000.0]) == 10_000.0  # at the opening: lead 0


def test_alerts_after_the_opening_or_of_another_service_do_not_warn() -> None:
    assert _warned([10_001.0, 12_000.0]) is None
    assert _warned([]) is None
    (span,) = incident_spans({"i": ("api", 10_000.0)}, {}, {"db": [9_500.0]}, H)
    assert span.warned_s is None
    assert span.lead_s is None


def test_spans_come_in_order_of_opening_with_their_resolution() -> None:
    spans = incident_spans(
        {"late": ("db", 5_000.0), "early": ("api", 1_000.0)},
        {"early": 1_800.0, "never-opened": 3_000.0},
        {"api": [400.0]},
        H,
    )
    assert [(s.incident_id, s.resolved_s, s.lead_s) for s in spans] == [
        ("early", 1_800.0, 600.0),
        ("late", None, None),
    ]


def test_busiest_services_break_ties_by_name() -> None:
    spans = [IncidentSpan(s, f"{s}-{i}", 0.0, None, None) for i, s in enumerate("cbabc")]
    assert busiest_services(spans, 2) == ["b", "c"]
    assert busiest_services(spans, 5) == ["b", "c", "a"]
    assert busiest_services([], 4) == []
