"""Incident risk through ``vigil replay`` and ``vigil evaluate``: labels as they come, odd too."""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from models.incident import RiskConfig
from stream.cli import main
from stream.core.incident_risk import IncidentRiskPipeline
from stream.core.pipeline import MetricPipeline
from stream.dev.simulate import MetricSimulator
from stream.offline.replay import ReplayStats, replay
from stream.settings import load_settings
from tests.unit.png import png_size

START = datetime(2026, 11, 23, tzinfo=UTC)


def _incident(service: str, incident_id: str, status: str, at_s: float) -> bytes:
    ts = (START + timedelta(seconds=at_s)).isoformat()
    return orjson.dumps(
        {"ts": ts, "incident_id": incident_id, "service": service, "status": status}
    )


def _metric_lines(from_h: float, to_h: float, services: int = 2) -> list[bytes]:
    """Samples of ``services`` services every 30 s, from hour ``from_h`` to ``to_h``."""
    sim = MetricSimulator(services=services, anomaly_rate=0.0, interval_s=30.0, seed=4)
    lines = [e.to_bytes() for e in sim.events(int(to_h * 120 * services))]
    return lines[int(from_h * 120 * services) :]


def test_odd_incident_events_are_counted_and_never_fatal() -> None:
    # Labels arrive 5 minutes after the open (within the grace), as incident tooling sends them.
    lines = _metric_lines(0, 5 + 5 / 60)
    lines += [
        _incident("svc-00", "INC-1", "opened", 5 * 3600),
        _incident("svc-00", "INC-1", "opened", 5 * 3600),  # duplicate
        _incident("svc-01", "INC-2", "resolved", 5.2 * 3600),  # before its open
        _incident("svc-01", "INC-2", "opened", 5 * 3600),
        _incident("ghost", "INC-3", "opened", 5 * 3600),  # a service never seen
        _incident("svc-01", "INC-4", "opened", 1 * 3600),  # its horizon long settled: late
        b'{"ts": 0, "incident_id": "INC-5", "service": "svc-00", "status": "exploded"}',
    ]
    lines += _metric_lines(5 + 5 / 60, 6)
    settings = load_settings({})
    risk = IncidentRiskPipeline(settings.risk_config())
    stats = ReplayStats()
    list(replay(lines, MetricPipeline(settings.anomaly_config()), stats=stats, risk=risk))
    counts = risk.labeler.counts
    assert counts["duplicate"] == 1
    assert counts["resolved_before_opened"] == 1
    assert counts["unknown_service"] == 1
    assert counts["late"] == 1
    # INC-1 and INC-2 each label the 15 one-minute vectors before them as positives.
    assert counts["positive"] == 30
    assert counts["negative"] > 0
    assert stats.labels == {"incidents": 6}
    assert stats.rejected == {"invalid_value": 1}  # the bad status: a clear error, not fatal

    # Quality figures count the incidents of services this pipeline holds: not the ghost's
    # (in a fleet, another detector's), and not those of a service that moved away.
    def incidents() -> int:
        return sum(int(s["incidents"]) for s in risk.summaries().values())

    assert incidents() == 3
    risk.forget(["svc-01"])
    assert incidents() == 1
    assert [g["prequential"]["incidents"] for g in risk.describe()["groups"].values()] == [1]


def test_feedback_labels_a_risk_alert_still_waiting() -> None:
    settings = load_settings({})
    config = RiskConfig(min_positives=1, threshold_override=0.0, negative_sampling=1.0)
    risk = IncidentRiskPipeline(config)
    lines = [*_metric_lines(0, 2.1), _incident("svc-00", "INC-1", "opened", 2 * 3600)]
    lines += _metric_lines(2.1, 2.3)  # the alert's vector still waits for its label
    alerts = [
        a
        for a in replay(lines, MetricPipeline(settings.anomaly_config()), risk=risk)
        if a.kind == "incident_risk"
    ]
    firing = [a for a in alerts if a.status == "firing"]
    assert firing, "with a threshold of 0 an episode opens once the model is ready"
    last = firing[-1]
    assert last.threshold_strategy == "override"
    assert 1 <= len(last.explanation.top_features) <= 5
    feedback = orjson.dumps(
        {"ts": last.event_ts.isoformat(), "alert_id": last.alert_id, "verdict": "false_positive"}
    )
    unknown = orjson.dumps({"ts": 0, "alert_id": "not-ours", "verdict": "true_positive"})
    stats = ReplayStats()
    list(
        replay(
            [feedback, unknown],
            MetricPipeline(settings.anomaly_config()),
            stats=stats,
            risk=risk,
        )
    )
    assert risk.labeler.counts["feedback"] == 1
    assert stats.labels == {"feedback": 2}


def test_evaluate_writes_the_incident_report(tmp_path: Path) -> None:
    data = tmp_path / "incidents.jsonl"
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                [
                    "simulate",
                    "--incidents",
                    "--services",
                    "6",
                    "--interval-s",
                    "60",
                    "--count",
                    str(6 * 1440 * 2),
                    "--jsonl",
                    str(data),
                ]
            )
            == 0
        )
    out_dir = tmp_path / "report"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["evaluate", str(data), "--out-dir", str(out_dir), "--json"]) == 0
    summary = orjson.loads(printed.getvalue())
    group = summary["groups"]["all"]
    assert group["n"] > 1000
    assert 0.005 < group["base_rate"] < 0.1
    assert group["pr_auc"] is not None
    assert group["roc_auc"] is not None
    assert group["tp"] + group["fp"] + group["tn"] + group["fn"] == group["n"]
    assert len(group["reliability"]) == 10
    assert [p["incident_recall"] for p in group["operating_points"]] == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert (out_dir / "incident_report.json").stat().st_size > 0
    assert png_size(out_dir / "pr_curve.png") == (640, 560)
    assert png_size(out_dir / "calibration.png") == (500, 500)
    assert png_size(out_dir / "timeline.png") == (1200, 980)  # the 4 busiest of 6 services
