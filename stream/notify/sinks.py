"""The sinks: each turns a notice (a problem, trigger or resolve) into one HTTP request,
built when it is sent (a retried webhook is signed again with the time it leaves)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import orjson

from stream.core.notifications import (
    Action,
    alertmanager_alerts,
    pagerduty_event,
    problem_links,
    signature_headers,
    slack_message,
    webhook_body,
)
from stream.schemas import Problem
from stream.settings import Settings

__all__ = [
    "SINK_NAMES",
    "AlertmanagerSink",
    "PagerDutySink",
    "Request",
    "Sink",
    "SlackSink",
    "WebhookSink",
    "build_sinks",
]

_JSON = {"Content-Type": "application/json"}

SINK_NAMES = ("alertmanager", "webhook", "pagerduty", "slack")
"""Every sink's name (the ``sink`` label of the notifier's metrics)."""


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP POST."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Sink(Protocol):
    """Where notices go."""

    @property
    def name(self) -> str:
        """Metric label and dead-letter reason part (``alertmanager``, ``slack``, ...)."""
        ...

    @property
    def keyed(self) -> bool:
        """The sink de-duplicates by problem: updates refresh it without paging again."""
        ...

    def request(self, problem: Problem, action: Action, now: datetime) -> Request:
        """The request that tells the sink."""
        ...


@dataclass(frozen=True)
class AlertmanagerSink:
    """Alertmanager API v2: ``POST {url}/api/v2/alerts``; an open problem is held for four
    re-post periods (the notifier re-posts it every ``repost_s``)."""

    url: str
    repost_s: float
    links: Mapping[str, str] = field(default_factory=dict)
    name: str = "alertmanager"
    keyed: bool = True

    def request(self, problem: Problem, action: Action, now: datetime) -> Request:
        alerts = alertmanager_alerts(
            problem,
            now=now,
            hold_until=now + timedelta(seconds=4 * self.repost_s),
            links=problem_links(problem, self.links),
        )
        return Request(f"{self.url.rstrip('/')}/api/v2/alerts", orjson.dumps(alerts), _JSON)


@dataclass(frozen=True)
class WebhookSink:
    """A generic webhook: the Problem JSON, signed (docs/notifications.md)."""

    url: str
    secret: bytes = field(repr=False)
    name: str = "webhook"
    keyed: bool = False

    def request(self, problem: Problem, action: Action, now: datetime) -> Request:
        body = webhook_body(problem)
        headers = {
            **_JSON,
            **signature_headers(body, self.secret, math.floor(now.timestamp())),
            "X-Vigil-Event": action,
            "X-Vigil-Delivery": f"{problem.problem_id}:{problem.revision}",
        }
        return Request(self.url, body, headers)


@dataclass(frozen=True)
class PagerDutySink:
    """PagerDuty Events API v2, de-duplicated by problem id."""

    url: str
    routing_key: str = field(repr=False)
    links: Mapping[str, str] = field(default_factory=dict)
    name: str = "pagerduty"
    keyed: bool = True

    def request(self, problem: Problem, action: Action, now: datetime) -> Request:
        event = pagerduty_event(
            problem,
            action,
            routing_key=self.routing_key,
            links=problem_links(problem, self.links),
        )
        return Request(self.url, orjson.dumps(event), _JSON)


@dataclass(frozen=True)
class SlackSink:
    """A Slack incoming webhook."""

    url: str = field(repr=False)
    links: Mapping[str, str] = field(default_factory=dict)
    name: str = "slack"
    keyed: bool = False

    def request(self, problem: Problem, action: Action, now: datetime) -> Request:
        message = slack_message(problem, action, links=problem_links(problem, self.links))
        return Request(self.url, orjson.dumps(message), _JSON)


def build_sinks(settings: Settings) -> list[Sink]:
    """The sinks ``settings`` configure, in a fixed order."""
    links = settings.link_templates()
    sinks: list[Sink] = []
    if settings.alertmanager_url is not None:
        sinks.append(AlertmanagerSink(settings.alertmanager_url, settings.notify_repost_s, links))
    if settings.notify_webhook_url is not None and settings.notify_webhook_secret is not None:
        secret = settings.notify_webhook_secret.get_secret_value().encode()
        sinks.append(WebhookSink(settings.notify_webhook_url, secret))
    if settings.notify_pagerduty_routing_key is not None:
        key = settings.notify_pagerduty_routing_key.get_secret_value()
        sinks.append(PagerDutySink(settings.notify_pagerduty_url, key, links))
    if settings.notify_slack_webhook_url is not None:
        sinks.append(SlackSink(settings.notify_slack_webhook_url.get_secret_value(), links))
    return sinks
