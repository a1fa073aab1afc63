"""What each sink receives for a problem: Alertmanager alerts, a PagerDuty event, a Slack
message and the webhook's body. Pure: the time and links come in as arguments."""

from __future__ import annotations

import re
import string
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stream.core.notifications.policy import Action
from stream.schemas import Problem

__all__ = [
    "ALERTNAME",
    "alertmanager_alerts",
    "pagerduty_event",
    "problem_links",
    "slack_message",
    "top_service",
    "webhook_body",
]

ALERTNAME = "VigilProblem"
"""The ``alertname`` label of every problem posted to Alertmanager."""

_RESERVED_LABELS = ("alertname", "problem_id", "service", "severity", "scope")
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")
_PAGERDUTY_SUMMARY_CHARS = 1024


def top_service(problem: Problem) -> str:
    """The most likely root: the top suspect, else the first service affected.

    Examples:
        >>> from datetime import UTC, datetime
        >>> t = datetime(2026, 12, 7, tzinfo=UTC)
        >>> top_service(Problem(problem_id="p", status="opened", scope="", summary="s",
        ...     severity="warning", opened_at=t, updated_at=t, services=["api", "db"],
        ...     members=[], suspects=[]))
        'api'
    """
    ranked = sorted(problem.suspects, key=lambda s: s.rank)
    if ranked:
        return ranked[0].service
    return problem.services[0] if problem.services else "unknown"


def problem_links(problem: Problem, templates: Mapping[str, str]) -> dict[str, str]:
    """The runbook and dashboard links of ``problem``, from alert link templates
    (``VIGIL_ALERT_RUNBOOK_URL``...): ``{service}`` is the top suspect, ``{status}`` the
    problem's, ``{region}`` and ``{host}`` its common labels; other placeholders are empty.

    Examples:
        >>> from datetime import UTC, datetime
        >>> t = datetime(2026, 12, 7, tzinfo=UTC)
        >>> p = Problem(problem_id="p", status="opened", scope="", summary="s",
        ...     severity="warning", opened_at=t, updated_at=t, services=["pay ments"],
        ...     members=[], suspects=[])
        >>> problem_links(p, {"runbook": "https://wiki/{service}?k={kind}"})
        {'runbook': 'https://wiki/pay%20ments?k='}
    """
    values = {
        "service": top_service(problem),
        "status": problem.status,
        "region": problem.labels.get("region", ""),
        "host": problem.labels.get("host", ""),
    }
    links = {}
    for name, template in templates.items():
        fields = {n for _, n, _, _ in string.Formatter().parse(template) if n is not None}
        quoted = {f: urllib.parse.quote(values.get(f, ""), safe="") for f in fields}
        links[name] = template.format_map(quoted)
    return links


def _description(problem: Problem) -> str:
    """The suspects, most likely first, each with its reasons."""
    lines = [f"Services affected: {', '.join(problem.services)}."]
    for suspect in sorted(problem.suspects, key=lambda s: s.rank):
        lines.append(f"Suspect {suspect.rank}: {suspect.service} ({'; '.join(suspect.reasons)})")
    return "\n".join(lines)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def alertmanager_alerts(
    problem: Problem,
    *,
    now: datetime,
    hold_until: datetime,
    links: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The body of ``POST /api/v2/alerts`` for ``problem`` at ``now``.

    An open problem's ``endsAt`` is ``hold_until`` (the notifier re-posts it before then,
    as Prometheus does: Alertmanager resolves an alert whose ``endsAt`` passed); a resolved
    one's is its ``resolved_at`` (or ``now``). Label names not allowed by Alertmanager have
    their other characters replaced by ``_``; the problem's labels never replace ours.

    Examples:
        >>> from datetime import UTC, datetime, timedelta
        >>> t = datetime(2026, 12, 7, tzinfo=UTC)
        >>> p = Problem(problem_id="p1", status="opened", scope="blr", summary="db slow",
        ...     severity="critical", opened_at=t, updated_at=t, services=["db"],
        ...     members=[], suspects=[], labels={"k8s.ns": "prod"})
        >>> (alert,) = alertmanager_alerts(p, now=t, hold_until=t + timedelta(minutes=4))
        >>> alert["labels"]
        {'k8s_ns': 'prod', 'alertname': 'VigilProblem', 'problem_id': 'p1', 'service': 'db', \
'severity': 'critical', 'scope': 'blr'}
        >>> alert["startsAt"], alert["endsAt"]
        ('2026-12-07T00:00:00Z', '2026-12-07T00:04:00Z')
    """
    labels = {
        _LABEL_NAME.sub("_", name): value
        for name, value in problem.labels.items()
        if value and _LABEL_NAME.sub("_", name) not in _RESERVED_LABELS
    }
    labels.update(
        alertname=ALERTNAME,
        problem_id=problem.problem_id,
        service=top_service(problem),
        severity=problem.severity,
    )
    if problem.scope:
        labels["scope"] = problem.scope
    annotations = {"summary": problem.summary, "description": _description(problem)}
    for name, url in (links or {}).items():
        annotations[f"{name}_url"] = url
    ends = (problem.resolved_at or now) if problem.status == "resolved" else hold_until
    return [
        {
            "labels": labels,
            "annotations": annotations,
            "startsAt": _iso(problem.opened_at),
            "endsAt": _iso(ends),
        }
    ]


def pagerduty_event(
    problem: Problem,
    action: Action,
    *,
    routing_key: str,
    links: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A PagerDuty Events API v2 event: ``trigger`` or ``resolve``, de-duplicated by the
    problem id.

    Examples:
        >>> from datetime import UTC, datetime
        >>> t = datetime(2026, 12, 7, tzinfo=UTC)
        >>> p = Problem(problem_id="p1", status="opened", scope="", summary="db slow",
        ...     severity="warning", opened_at=t, updated_at=t, services=["db"],
        ...     members=[], suspects=[])
        >>> event = pagerduty_event(p, "trigger", routing_key="R")
        >>> event["event_action"], event["dedup_key"], event["payload"]["severity"]
        ('trigger', 'p1', 'warning')
    """
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": problem.problem_id,
        "payload": {
            "summary": problem.summary[:_PAGERDUTY_SUMMARY_CHARS] or problem.problem_id,
            "source": top_service(problem),
            "severity": problem.severity,
            "timestamp": _iso(problem.opened_at),
            "group": problem.scope or None,
            "custom_details": {
                "problem_id": problem.problem_id,
                "status": problem.status,
                "revision": problem.revision,
                "services": problem.services,
                "suspects": [
                    {"service": s.service, "rank": s.rank, "reasons": s.reasons}
                    for s in sorted(problem.suspects, key=lambda s: s.rank)
                ],
                "labels": problem.labels,
            },
        },
    }
    if event["payload"]["group"] is None:
        del event["payload"]["group"]
    if links:
        event["links"] = [{"href": url, "text": name} for name, url in links.items()]
    return event


def slack_message(
    problem: Problem, action: Action, *, links: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the notification's line) and ``blocks``.

    Examples:
        >>> from datetime import UTC, datetime
        >>> t = datetime(2026, 12, 7, tzinfo=UTC)
        >>> p = Problem(problem_id="p1", status="resolved", scope="", summary="db slow",
        ...     severity="warning", opened_at=t, updated_at=t, services=["db"],
        ...     members=[], suspects=[])
        >>> slack_message(p, "resolve")["text"], slack_message(p, "trigger")["text"]
        (':white_check_mark: [resolved] db slow', ':warning: [warning] db slow')
    """
    summary = problem.summary
    if action == "resolve":
        head = "" if summary.startswith("[resolved]") else "[resolved] "
        text = f":white_check_mark: {head}{summary}"
    else:
        icon = ":red_circle:" if problem.severity == "critical" else ":warning:"
        head = "" if summary.startswith(f"[{problem.severity}]") else f"[{problem.severity}] "
        text = f"{icon} {head}{summary}"
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{problem.severity}"},
        {"type": "mrkdwn", "text": f"*Services*\n{', '.join(problem.services) or '-'}"},
    ]
    if problem.scope:
        fields.append({"type": "mrkdwn", "text": f"*Scope*\n{problem.scope}"})
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": fields},
    ]
    suspects = sorted(problem.suspects, key=lambda s: s.rank)[:3]
    if suspects and action == "trigger":
        lines = [f"{s.rank}. *{s.service}*: {'; '.join(s.reasons[:2])}" for s in suspects]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    context = [f"problem `{problem.problem_id}` rev {problem.revision}"]
    context += [f"<{url}|{name}>" for name, url in (links or {}).items()]
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " | ".join(context)}]}
    )
    return {"text": text, "blocks": blocks}


def webhook_body(problem: Problem) -> bytes:
    """The generic webhook's body: the Problem JSON, as on the problems topic."""
    return problem.model_dump_json().encode()
