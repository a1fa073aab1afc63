"""The demo's scoreboard: which injected incidents the alerts caught, in event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stream.dev.demo.scoreboard import Incident, Scoreboard
from stream.schemas import Alert, AlertModelInfo, Evidence, Explanation

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)
MIN = timedelta(minutes=1)


def _board() -> Scoreboard:
    return Scoreboard(horizon_s=900.0, log_window_s=30.0, settle_s=600.0)


def _incident(service: str = "svc-01", start: datetime = T0, minutes: int = 20) -> Incident:
    return Incident(
        "metrics", f"inc-{service}-{start:%H%M}", service, start, start + minutes * MIN, "deploy"
    )


def test_a_risk_alert_within_the_horizon_before_the_open_warns_with_its_lead() -> None:
    board = _board()
    board.add_incident(_incident())
    board.note_risk_alert("svc-01", T0 - 12 * MIN)
    board.note_risk_alert("svc-01", T0 - 4 * MIN)
    (verdict,) = board.verdicts(T0 + 2 * 60 * MIN)
    assert verdict.status == "warned"
    assert verdict.lead_s == 12 * 60  # the earliest warning counts


@pytest.mark.parametrize(
    ("service", "at"),
    [
        ("svc-01", T0 - 16 * MIN),  # before the horizon
        ("svc-01", T0),  # at the open: not ahead
        ("svc-02", T0 - 5 * MIN),  # another service
    ],
)
def test_a_risk_alert_outside_the_horizon_or_on_another_service_does_not_warn(
    service: str, at: datetime
) -> None:
    board = _board()
    board.add_incident(_incident())
    board.note_risk_alert(service, at)
    assert board.verdicts(T0 + 2 * 60 * MIN)[0].status == "missed"
    assert board.risk_alerts_ahead() == 0


def _risk_alert(status: str, at: datetime, episode: str, service: str = "svc-01") -> Alert:
    return Alert(
        alert_id=f"{episode}-{status}",
        kind="incident_risk",
        source="metrics",
        service=service,
        event_ts=at,
        detected_at=at,
        score=0.5,
        threshold=0.2,
        severity="warning",
        model=AlertModelInfo(name="incident-risk", version="v"),
        explanation=Explanation(top_features=[]),
        evidence=Evidence(topic="t", partition=0, offset=0),
        status=status,  # type: ignore[arg-type]
        episode_id=episode,
        started_at=at,
    )


def test_a_risk_episode_still_open_in_the_horizon_warns_and_only_firing_alerts_count() -> None:
    board = _board()
    board.add_incident(_incident("svc-01"))
    board.add_incident(_incident("svc-02"))
    board.add_alert(_risk_alert("firing", T0 - 40 * MIN, "e1"))  # open until the incident
    board.add_alert(_risk_alert("firing", T0 - 40 * MIN, "e2", "svc-02"))
    board.add_alert(_risk_alert("resolved", T0 - 20 * MIN, "e2", "svc-02"))  # over before
    verdicts = {v.incident.service: v for v in board.verdicts(T0 + 2 * 60 * MIN)}
    assert (verdicts["svc-01"].status, verdicts["svc-01"].lead_s) == ("warned", 40 * 60)
    assert verdicts["svc-02"].status == "missed"
    assert board.tally(T0 + 2 * 60 * MIN)["risk_alerts"] == 2


def test_an_anomaly_alert_while_open_detects_and_one_after_does_not() -> None:
    board = _board()
    board.add_incident(_incident("svc-01"))
    board.add_incident(_incident("svc-02"))
    board.note_anomaly_alert("svc-01", T0 + 3 * MIN)
    board.note_anomaly_alert("svc-02", T0 + 20 * MIN)  # at the resolve: over
    statuses = {v.incident.service: v.status for v in board.verdicts(T0 + 2 * 60 * MIN)}
    assert statuses == {"svc-01": "detected", "svc-02": "missed"}
    assert board.anomaly_alerts_in_incidents() == 1


def test_an_incident_is_open_until_the_stream_is_settle_s_past_its_end() -> None:
    board = _board()
    board.add_incident(_incident())
    end = T0 + 20 * MIN
    assert board.verdicts(end + 9 * MIN)[0].status == "open"
    assert board.verdicts(end + 10 * MIN)[0].status == "missed"
    # Not yet started: not judged at all.
    assert board.verdicts(T0 - MIN) == []


def test_a_log_incident_is_caught_by_a_log_alert_on_an_overlapping_window() -> None:
    board = _board()
    start = T0 + 15 * timedelta(seconds=1)  # mid-window: the window at T0 overlaps it
    board.add_incident(Incident("logs", "log-a", "svc-03", start, start + 2 * MIN, "error_burst"))
    board.add_incident(Incident("logs", "log-b", "svc-04", start, start + 2 * MIN, "quiet"))
    board.add_incident(Incident("logs", "log-c", "svc-05", start, start + 2 * MIN, "quiet"))
    board._note("logs", "svc-03", T0)
    board._note("logs", "svc-04", start + 3 * MIN)  # after it ended
    board._note("anomaly", "svc-05", T0 + MIN)  # not a log alert
    statuses = {v.incident.incident_id: v.status for v in board.verdicts(T0 + 60 * MIN)}
    assert statuses == {"log-a": "caught", "log-b": "missed", "log-c": "missed"}


def test_tally_counts_what_the_summary_shows() -> None:
    board = _board()
    board.add_incident(_incident("svc-01"))
    board.add_incident(_incident("svc-02"))
    board.add_incident(_incident("svc-03"))
    board.add_incident(_incident("svc-04", start=T0 + 100 * MIN))
    board.note_risk_alert("svc-01", T0 - 10 * MIN)
    board.note_risk_alert("svc-01", T0 - 30 * MIN)  # a false alarm
    board.note_anomaly_alert("svc-02", T0 + MIN)
    figures = board.tally(T0 + 105 * MIN)
    assert figures == {
        "anomaly_alerts": 1,
        "anomaly_alerts_in_incidents": 1,
        "risk_alerts": 2,
        "risk_alerts_ahead": 1,
        "log_alerts": 0,
        "incidents": 4,
        "warned": 1,
        "detected": 1,
        "missed": 1,
        "open": 1,
        "median_lead_s": 600.0,
        "log_incidents": 0,
        "log_caught": 0,
        "log_missed": 0,
    }


def test_an_incident_added_twice_is_counted_once() -> None:
    board = _board()
    board.add_incident(_incident())
    board.add_incident(_incident())
    assert len(board.verdicts(T0 + 60 * MIN)) == 1
