"""The incident-risk timeline: a replay traced without changing it, agreeing with the
prequential figures, and drawn."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from stream.core.pipeline import MetricPipeline
from stream.core.risk_settings import build_risk_pipeline
from stream.dev.incident_sim import IncidentSimulator, SimulatedIncident
from stream.offline.evaluate_risk import RiskEvaluation, evaluate_risk
from stream.offline.replay import replay
from stream.offline.risk_timeline import RiskTrace, plot_risk_timeline
from stream.settings import load_settings
from tests.unit.png import png_size


@dataclass(frozen=True)
class Replayed:
    lines: list[bytes]
    truth: list[SimulatedIncident]
    evaluation: RiskEvaluation


@pytest.fixture(scope="module")
def replayed() -> Replayed:
    """Four services, a sample a minute for 36 hours (incidents from hour 6), evaluated."""
    sim = IncidentSimulator(services=4, interval_s=60.0, seed=11)
    lines = [item.to_bytes() for item in sim.stream(36 * 3600.0)]
    return Replayed(lines, sim.incidents, evaluate_risk(lines, load_settings({})))


def test_the_trace_agrees_with_the_prequential_figures(replayed: Replayed) -> None:
    pipeline, trace = replayed.evaluation.pipeline, replayed.evaluation.trace
    summary = pipeline.summaries()["all"]
    spans = trace.spans(pipeline.config.horizon_s)
    leads = [span.lead_s for span in spans if span.lead_s is not None]
    assert len(spans) == summary["incidents"] >= 8
    assert len(leads) == summary["incidents_caught"] > 0
    assert np.median(leads) == summary["median_lead_time_s"]
    assert all(0.0 <= lead <= pipeline.config.horizon_s for lead in leads)
    assert sum(map(len, trace.alerts.values())) == summary["alerts"] > 0
    assert sum(len(series.ts_s) for series in trace.series.values()) == pipeline.vectors_total


def test_incident_spans_are_the_simulated_incidents(replayed: Replayed) -> None:
    spans = replayed.evaluation.trace.spans(900.0)
    assert [(s.incident_id, s.service, s.opened_s) for s in spans] == [
        (i.incident_id, i.service, i.opened.timestamp()) for i in replayed.truth
    ]
    resolved = {i.incident_id: i.resolved.timestamp() for i in replayed.truth}
    assert all(s.resolved_s in (None, resolved[s.incident_id]) for s in spans)
    assert sum(s.resolved_s is not None for s in spans) >= len(spans) - 1


def test_each_alert_is_a_traced_vector_over_its_threshold(replayed: Replayed) -> None:
    trace = replayed.evaluation.trace
    for service, alerts in trace.alerts.items():
        series = trace.series[service]
        for ts_s, score in alerts:
            i = bisect.bisect_left(series.ts_s, ts_s)
            assert series.ts_s[i] == ts_s
            assert score == pytest.approx(series.probability[i], abs=1e-6)  # alerts round to 6
            assert series.probability[i] >= series.threshold[i]


def test_tracing_changes_no_result(replayed: Replayed) -> None:
    settings = load_settings({})
    untraced = build_risk_pipeline(settings)
    alerts = [
        (a.service, a.event_ts.timestamp(), a.score)
        for a in replay(replayed.lines, MetricPipeline(settings.anomaly_config()), risk=untraced)
        if a.kind == "incident_risk" and a.status == "firing"
    ]
    traced = replayed.evaluation.trace.alerts
    assert sorted(alerts) == sorted((s, t, p) for s, items in traced.items() for t, p in items)
    assert untraced.summaries() == replayed.evaluation.pipeline.summaries()


def test_the_timeline_shows_the_busiest_services(replayed: Replayed, tmp_path: Path) -> None:
    path = tmp_path / "timeline.png"
    plot_risk_timeline(replayed.evaluation.trace, 900.0, path, max_services=3)
    assert png_size(path) == (1200, 750)  # 0.6 + 2.3 inches a service, at 100 dpi
    assert 30_000 < path.stat().st_size < 1_000_000


def test_a_timeline_without_incidents_shows_the_first_services(tmp_path: Path) -> None:
    trace = RiskTrace()
    for step in range(100):
        for service in ("b", "a", "c"):
            trace.predicted(service, 1.8e9 + 60.0 * step, 0.01 * (step % 7), 0.05)
    path = tmp_path / "timeline.png"
    plot_risk_timeline(trace, 900.0, path, max_services=2)
    assert png_size(path) == (1200, 520)
