"""The sinks' requests, and which sinks the settings configure."""

from __future__ import annotations

import math

import orjson

from stream.core.notifications import verify
from stream.notify.sinks import (
    SINK_NAMES,
    AlertmanagerSink,
    PagerDutySink,
    SlackSink,
    WebhookSink,
    build_sinks,
)
from stream.settings import load_settings
from tests.unit.core.notifications.problems import T0, problem

SECRET = "0123456789abcdef"


def test_the_webhook_request_is_signed_when_sent() -> None:
    sink = WebhookSink("http://hooks.example/vigil", SECRET.encode())
    request = sink.request(problem(2, "updated"), "trigger", T0)
    assert request.url == "http://hooks.example/vigil"
    headers = request.headers
    assert headers["X-Vigil-Timestamp"] == str(math.floor(T0.timestamp()))
    assert headers["X-Vigil-Delivery"] == "p-1:2"
    assert headers["X-Vigil-Event"] == "trigger"
    assert verify(
        request.body,
        SECRET.encode(),
        timestamp=headers["X-Vigil-Timestamp"],
        signature=headers["X-Vigil-Signature"],
        now_s=T0.timestamp() + 1,
    )
    assert "0123456789abcdef" not in repr(sink)


def test_alertmanager_posts_to_the_v2_api_and_holds_four_reposts() -> None:
    request = AlertmanagerSink("http://am:9093/", repost_s=60).request(problem(1), "trigger", T0)
    assert request.url == "http://am:9093/api/v2/alerts"
    (alert,) = orjson.loads(request.body)
    assert alert["endsAt"] == "2026-12-07T08:04:00Z"


def test_build_sinks_follows_the_settings() -> None:
    assert build_sinks(load_settings()) == []
    settings = load_settings(
        {
            "alertmanager_url": "http://am:9093",
            "notify_webhook_url": "http://hooks.example/x",
            "notify_webhook_secret": SECRET,
            "notify_pagerduty_routing_key": "R" * 32,
            "notify_slack_webhook_url": "https://hooks.slack.com/services/T/B/X",
            "alert_runbook_url": "https://wiki/{service}",
        }
    )
    sinks = build_sinks(settings)
    assert tuple(s.name for s in sinks) == SINK_NAMES
    assert [s.keyed for s in sinks] == [True, False, True, False]
    pagerduty = sinks[2]
    assert isinstance(pagerduty, PagerDutySink)
    assert pagerduty.url == "https://events.pagerduty.com/v2/enqueue"
    assert isinstance(sinks[3], SlackSink)
    event = orjson.loads(pagerduty.request(problem(1), "trigger", T0).body)
    assert event["links"] == [{"href": "https://wiki/db", "text": "runbook"}]
