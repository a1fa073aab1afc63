"""Root-cause suspects of a problem, ranked with their evidence.

A failure spreads from a service to those that depend on it: among a problem's services, the
likeliest root is the one most of the others depend on (through the topology), then one with
a deploy shortly before, then the earliest to alert, then the one furthest off (its largest
robust z). Each service's metrics are ranked by their robust z at its first alert against the
baseline learned before it (the BARO idea: the root's metrics move most against their own
past), and its log alerts' templates are listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from stream.core.problems.topology import Topology
from stream.schemas import Alert, Suspect, SuspectMetric

__all__ = ["DEPLOY_LABEL", "rank_suspects"]

DEPLOY_LABEL = "deploy_recent"
"""The alert label set when the event behind it was sent with ``deploy_recent``."""

_METRICS = 5
_TEMPLATES = 3


def rank_suspects(alerts: Sequence[Alert], topology: Topology) -> list[Suspect]:
    """The services of a problem's firing ``alerts``, likeliest root first.

    Examples:
        >>> from stream.schemas import Alert
        >>> def alert(service, minute, z):
        ...     return Alert.model_validate({
        ...         "alert_id": service, "kind": "anomaly", "source": "metrics",
        ...         "service": service, "event_ts": minute * 60,
        ...         "started_at": minute * 60, "detected_at": 0, "score": 1,
        ...         "threshold": 0.9, "severity": "warning",
        ...         "model": {"name": "m", "version": "1"},
        ...         "explanation": {"top_features": [], "z_scores": {"p95": z}},
        ...         "evidence": {"topic": "t", "partition": 0, "offset": 0}})
        >>> topology = Topology({"web": frozenset({"db"})})
        >>> ranked = rank_suspects([alert("web", 1, 9.0), alert("db", 2, 4.0)], topology)
        >>> [(s.service, s.rank, s.depends_on_it) for s in ranked]
        [('db', 1, 1), ('web', 2, 0)]
        >>> ranked[0].reasons[0]
        '1 of the 1 other affected services depends on it'
    """
    by_service: dict[str, list[Alert]] = {}
    for alert in alerts:
        by_service.setdefault(alert.service, []).append(alert)
    services = list(by_service)
    first_overall = min(_start(a) for a in alerts)
    facts = []
    for service, own in by_service.items():
        first = min(_start(a) for a in own)
        dependents = topology.dependents(service, services)
        deploy = any(a.labels.get(DEPLOY_LABEL) == "true" for a in own)
        metrics = _metrics(own)
        peak = max((abs(m.z) for m in metrics), default=0.0)
        key = (-len(dependents), not deploy, first, -peak, service)
        facts.append((key, service, first, dependents, deploy, metrics, _templates(own)))
    facts.sort(key=lambda fact: fact[0])
    others = len(services) - 1
    return [
        Suspect(
            service=service,
            rank=rank,
            reasons=_reasons(len(dependents), others, deploy, first, first_overall, metrics),
            first_seen=first,
            depends_on_it=len(dependents),
            deploy_recent=deploy,
            metrics=metrics,
            templates=templates,
        )
        for rank, (_, service, first, dependents, deploy, metrics, templates) in enumerate(
            facts, start=1
        )
    ]


def _start(alert: Alert) -> datetime:
    return alert.started_at or alert.event_ts


def _metrics(alerts: list[Alert]) -> list[SuspectMetric]:
    """The service's metrics by |z| at its alerts (the largest per metric)."""
    largest: dict[str, float] = {}
    for alert in alerts:
        for name, z in alert.explanation.z_scores.items():
            if abs(z) > abs(largest.get(name, 0.0)):
                largest[name] = z
    ranked = sorted(largest.items(), key=lambda item: (-abs(item[1]), item[0]))
    return [SuspectMetric(name=name, z=z) for name, z in ranked[:_METRICS]]


def _templates(alerts: list[Alert]) -> list[str]:
    seen: dict[str, None] = {}
    for alert in alerts:
        for template in alert.explanation.top_templates:
            seen.setdefault(template.template, None)
    return list(seen)[:_TEMPLATES]


def _reasons(
    dependents: int,
    others: int,
    deploy: bool,
    first: datetime,
    first_overall: datetime,
    metrics: list[SuspectMetric],
) -> list[str]:
    reasons = []
    if dependents:
        verb = "depends" if dependents == 1 else "depend"
        reasons.append(f"{dependents} of the {others} other affected services {verb} on it")
    if deploy:
        reasons.append("a deploy shortly before its first alert")
    lag_s = (first - first_overall).total_seconds()
    reasons.append("the first to alert" if lag_s <= 0 else f"alerted {lag_s:.0f} s after the first")
    if metrics:
        reasons.append(", ".join(f"{m.name} z={m.z:+.1f}" for m in metrics[:2]))
    return reasons
