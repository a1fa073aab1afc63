"""What the demo shows: alert and incident lines, the live view, and the summary."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from rich.console import Console

from stream.dev.demo.scoreboard import Incident, Scoreboard, Verdict
from stream.dev.demo.view import (
    LiveStats,
    alert_text,
    dashboard,
    summary_line,
    summary_table,
    verdict_text,
)
from stream.schemas import (
    Alert,
    AlertModelInfo,
    Evidence,
    Explanation,
    TemplateSample,
    TopFeature,
)

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _alert(source: str = "metrics", kind: str = "anomaly") -> Alert:
    return Alert(
        alert_id="a1",
        kind=kind,  # type: ignore[arg-type]  # one of the schema's literals, from a parameter
        source=source,  # type: ignore[arg-type]
        service="svc-07",
        event_ts=T0,
        detected_at=T0,
        score=0.91,
        threshold=0.8,
        severity="critical",
        model=AlertModelInfo(name="hst", version="1"),
        explanation=Explanation(
            top_features=[
                TopFeature(name="latency_p95", value=812.0, baseline=240.0, contribution=0.45)
            ],
            top_templates=[
                TemplateSample(template_id="t", template="ERROR timeout <*>", count=12, sample="x")
            ],
        ),
        evidence=Evidence(topic="vigil.metrics", partition=0, offset=1),
    )


def test_an_alert_line_says_what_where_and_why() -> None:
    line = alert_text(_alert())
    assert line.startswith("ANOMALY critical svc-07 11-23 12:00 score 0.910 > 0.800")
    assert "latency_p95=812 (baseline 240, 45%)" in line
    assert alert_text(_alert(kind="incident_risk")).startswith("RISK")
    log_line = alert_text(_alert(source="logs"))
    assert log_line.startswith("LOG")
    assert "12x ERROR timeout <*>" in log_line
    resolved = _alert(kind="incident_risk").model_copy(
        update={"status": "resolved", "started_at": T0.replace(hour=11, minute=40)}
    )
    assert alert_text(resolved) == "RISK    resolved svc-07 11-23 12:00 score 0.910 (since 11:40)"


def test_an_incident_line_gives_the_verdict() -> None:
    incident = Incident("metrics", "inc-1", "svc-01", T0, T0 + timedelta(minutes=20), "deploy")
    assert verdict_text(Verdict(incident, "warned", 720.0)).endswith("warned 12 min ahead")
    assert verdict_text(Verdict(incident, "detected")).endswith("detected while open")
    assert verdict_text(Verdict(incident, "missed")).endswith(": missed")


def test_the_summary_line_parses_back_to_the_figures() -> None:
    figures = {"events_sent": 12_000, "median_lead_s": 287.5, "missed": 0}
    line = summary_line(figures)
    assert line == "summary: events_sent=12000 median_lead_s=287.5 missed=0"
    assert {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)} == figures


def test_the_live_view_and_the_summary_render() -> None:
    board = Scoreboard(horizon_s=900.0, log_window_s=30.0, settle_s=600.0)
    board.add_incident(
        Incident("metrics", "INC-svc-01-1", "svc-01", T0, T0 + timedelta(minutes=20), "deploy")
    )
    board.note_risk_alert("svc-01", T0 - timedelta(minutes=5))
    now = T0 + timedelta(hours=1)
    figures = board.tally(now)
    console = Console(record=True, width=160)
    console.print(
        dashboard(
            header="Vigil demo",
            stats=LiveStats(
                elapsed_s=12.0, scored_per_s=4200.0, models=[("risk:all", "v3", "promoted")]
            ),
            sent={"metrics": 3000, "logs": 9000, "labels": 4},
            now=now,
            figures=figures,
            verdicts=board.verdicts(now),
            alerts=[alert_text(_alert())],
            warmup="warming up",
        )
    )
    shown = console.export_text()
    for expected in (
        "3,000 metric samples",
        "4,200 events/s scored",
        "1 warned ahead",
        "INC-svc-01-1",
        "warned 5 min ahead",
        "latency_p95=812",
        "risk:all",
        "promoted",
    ):
        assert expected in shown, expected
    full = {
        **figures,
        "events_sent": 3000,
        "log_lines_sent": 9000,
        "labels_sent": 4,
        "events_scored": 12_000,
        "alerts": 1,
        "models_promoted": 1,
    }
    console.print(summary_table(full))
    assert "1 injected: 1 warned ahead (median lead 5 min)" in console.export_text()
