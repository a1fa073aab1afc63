"""What each sink receives: Alertmanager alerts, PagerDuty events, Slack messages, the
webhook's body."""

from __future__ import annotations

from datetime import timedelta

import orjson

from stream.core.notifications import (
    ALERTNAME,
    alertmanager_alerts,
    pagerduty_event,
    problem_links,
    slack_message,
    webhook_body,
)
from stream.schemas import Problem
from tests.unit.core.notifications.problems import T0, problem

LINKS = {"runbook": "https://wiki.example/run/{service}", "dashboard": "https://g/{region}"}


def test_alertmanager_gets_the_problem_labelled_and_described() -> None:
    p = problem(2, "updated", labels={"region": "blr", "severity": "x", "k8s.ns": "prod"})
    now = T0 + timedelta(minutes=5)
    (alert,) = alertmanager_alerts(
        p, now=now, hold_until=now + timedelta(minutes=4), links=problem_links(p, LINKS)
    )
    assert alert["labels"] == {
        "alertname": ALERTNAME,
        "problem_id": "p-1",
        "service": "db",  # the top suspect
        "severity": "warning",  # ours, not the problem's label of that name
        "scope": "blr",
        "region": "blr",
        "k8s_ns": "prod",
    }
    annotations = alert["annotations"]
    assert annotations["summary"] == p.summary
    assert (
        "Suspect 1: db (2 services depend on it; deployed 3 min before)"
        in (annotations["description"])
    )
    assert "Suspect 2: api" in annotations["description"]
    assert annotations["runbook_url"] == "https://wiki.example/run/db"
    assert annotations["dashboard_url"] == "https://g/blr"
    assert alert["startsAt"] == "2026-12-07T08:00:00Z"
    assert alert["endsAt"] == "2026-12-07T08:09:00Z"  # held four re-posts ahead


def test_alertmanager_resolve_ends_at_the_problem_resolution() -> None:
    p = problem(3, "resolved")
    (alert,) = alertmanager_alerts(p, now=T0 + timedelta(hours=1), hold_until=T0)
    assert alert["endsAt"] == "2026-12-07T08:30:00Z"
    assert "runbook_url" not in alert["annotations"]


def test_pagerduty_triggers_and_resolves_by_problem_id() -> None:
    p = problem(1, severity="critical")
    event = pagerduty_event(p, "trigger", routing_key="R" * 32, links=problem_links(p, LINKS))
    assert event["routing_key"] == "R" * 32
    assert (event["event_action"], event["dedup_key"]) == ("trigger", "p-1")
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["source"] == "db"
    assert payload["timestamp"] == "2026-12-07T08:00:00Z"
    assert payload["group"] == "blr"
    assert payload["custom_details"]["suspects"][0]["service"] == "db"
    assert {"href": "https://wiki.example/run/db", "text": "runbook"} in event["links"]
    resolve = pagerduty_event(problem(4, "resolved"), "resolve", routing_key="R")
    assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", "p-1")
    assert (
        len(
            pagerduty_event(problem(1, summary="x" * 5000), "trigger", routing_key="R")["payload"][
                "summary"
            ]
        )
        == 1024
    )


def test_slack_says_what_and_where_in_text_and_blocks() -> None:
    message = slack_message(problem(1, severity="critical"), "trigger")
    assert message["text"] == ":red_circle: [critical] [warning] db, api: latency up; db suspected"
    texts = orjson.dumps(message["blocks"]).decode()
    for part in ("*db*", "p-1", "blr"):
        assert part in texts
    resolved = slack_message(problem(5, "resolved", summary="[resolved] db: over"), "resolve")
    assert resolved["text"] == ":white_check_mark: [resolved] db: over"
    warning = slack_message(problem(1), "trigger")
    assert warning["text"] == ":warning: [warning] db, api: latency up; db suspected"


def test_the_webhook_body_is_the_problem_json() -> None:
    p = problem(1)
    assert Problem.model_validate_json(webhook_body(p)) == p


def test_links_quote_values_and_leave_unknown_placeholders_empty() -> None:
    p = problem(1, suspects=[], services=["pay ments"])
    links = problem_links(p, {"runbook": "https://w/{service}/{alert_id}"})
    assert links == {"runbook": "https://w/pay%20ments/"}
