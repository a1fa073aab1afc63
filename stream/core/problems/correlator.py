"""Alerts of one failure grouped into a problem, in event time.

A firing alert joins an open problem of its scope (the value of a scope label, such as
region or cluster: one problem never spans two) whose latest alert came within ``window_s``
before it, when it shares a service with it, a dependency path (one of the two
depends on the other, directly or through others), or a grouping label's value (a host):
services other than its own join through members still firing. It joins the earliest such
problem; otherwise it opens one. A resolved alert resolves its
member; a problem resolves once every member has and no alert joined it for ``hold_s`` after
(a service that flaps, its episode closing and reopening, stays in its problem), or when no
alert joined or resolved in it for ``quiet_s`` of event time. Each change is a
:class:`Problem` message (``opened``, ``updated``, ``resolved``) with the problem's ranked
root-cause suspects.

Everything is decided on event time, so a replay of the same alerts gives the same problems.
Alerts of the same event time are taken in one order (:func:`tie_order`): a service that
starts firing the moment its dependency's episode resolves joins that problem, whichever
partition brought either alert first.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream.core.problems.suspects import rank_suspects
from stream.core.problems.topology import Topology
from stream.schemas import Alert, Problem, ProblemMember

__all__ = ["CorrelationConfig", "Correlator", "event_order", "tie_order"]

_REMEMBERED_EPISODES = 10_000
"""Episodes of resolved problems remembered, so a firing alert seen again (a producer's
retry, a detector's replay) does not open a problem anew."""


@dataclass(frozen=True)
class CorrelationConfig:
    """How alerts are grouped.

    Attributes:
        window_s: An alert joins a problem whose latest alert came at most this long before
            it (event time).
        hold_s: A problem whose members all resolved stays open this long for alerts that
            rejoin it.
        quiet_s: A problem no alert joined or updated for this long resolves, whatever its
            members say (a resolved alert may never come: a service that stopped sending).
        scope_label: The label whose value scopes problems (None: one scope).
        group_labels: Labels whose equal values join alerts (default: the host).
    """

    window_s: float = 600.0
    hold_s: float = 600.0
    quiet_s: float = 3600.0
    scope_label: str | None = None
    group_labels: tuple[str, ...] = ("host",)


@dataclass
class _Member:
    alert: Alert
    resolved: bool = False


@dataclass
class _Open:
    problem_id: str
    scope: str
    members: dict[str, _Member] = field(default_factory=dict)
    """By episode (the firing alert's ``episode_id``, else its ``alert_id``)."""
    updated_s: float = 0.0
    """Event time of the latest alert, firing or resolved."""
    resolved_s: float | None = None
    """Event time its last open member resolved (None while one is open)."""
    revision: int = 0
    """Messages published about it so far."""

    def alerts(self) -> list[Alert]:
        return [m.alert for m in self.members.values()]


class Correlator:
    """Groups alerts into problems (see the module docstring).

    Examples:
        >>> def alert(service, minute, status="firing"):
        ...     return Alert.model_validate({
        ...         "alert_id": f"{service}{status}", "episode_id": service, "status": status,
        ...         "kind": "anomaly", "source": "metrics", "service": service,
        ...         "event_ts": minute * 60, "started_at": minute * 60,
        ...         "detected_at": 0, "score": 1, "threshold": 0.9, "severity": "warning",
        ...         "model": {"name": "m", "version": "1"}, "explanation": {"top_features": []},
        ...         "evidence": {"topic": "t", "partition": 0, "offset": 0}})
        >>> c = Correlator(CorrelationConfig(), Topology({"web": frozenset({"db"})}))
        >>> [(p.status, p.services) for p in c.add(alert("db", 0))]
        [('opened', ['db'])]
        >>> [(p.status, p.services, p.suspects[0].service) for p in c.add(alert("web", 2))]
        [('updated', ['db', 'web'], 'db')]
        >>> [p.status for p in c.add(alert("db", 9, "resolved"))]
        ['updated']
        >>> [p.status for p in c.add(alert("web", 10, "resolved"))]  # held a while: flaps rejoin
        ['updated']
        >>> [(p.status, p.resolved_at.minute) for p in c.advance_all(20 * 60)]
        [('resolved', 10)]
    """

    def __init__(self, config: CorrelationConfig, topology: Topology | None = None) -> None:
        self.config = config
        self.topology = topology or Topology()
        self._open: dict[str, _Open] = {}
        self._watermark_s: dict[str, float] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        """Episode keys of the members of resolved problems, oldest first (bounded)."""

    @property
    def open_problems(self) -> int:
        return len(self._open)

    def add(self, alert: Alert) -> list[Problem]:
        """Take one alert in; the problem messages it causes (quiet problems of its scope
        resolve first)."""
        scope = self._scope_of(alert)
        t = alert.event_ts.timestamp()
        out = self.advance(scope, t)
        if alert.status == "resolved":
            return out + self._resolve_member(scope, alert, t)
        key = alert.episode_id or alert.alert_id
        if key in self._closed or any(key in p.members for p in self._open.values()):
            return out  # seen (a replayed alert): nothing new
        start = _start_s(alert)
        problem = self._match(scope, alert, start)
        status: str = "updated"
        if problem is None:
            problem_id = hashlib.sha256(f"{scope}|{alert.alert_id}".encode()).hexdigest()[:32]
            problem = self._open[problem_id] = _Open(problem_id, scope)
            status = "opened"
        problem.members[key] = _Member(alert)
        problem.updated_s = max(problem.updated_s, t)
        problem.resolved_s = None
        return [*out, self._message(problem, status, t)]

    def advance(self, scope: str, now_s: float) -> list[Problem]:
        """Event time in ``scope`` reached ``now_s``: problems quiet for ``quiet_s`` resolve."""
        watermark = max(self._watermark_s.get(scope, now_s), now_s)
        self._watermark_s[scope] = watermark
        config = self.config
        quiet = [
            p
            for p in self._open.values()
            if p.scope == scope
            and (
                p.updated_s < watermark - config.quiet_s
                or (p.resolved_s is not None and p.resolved_s <= watermark - config.hold_s)
            )
        ]
        out = []
        for problem in quiet:
            del self._open[problem.problem_id]
            out.append(self._message(problem, "resolved", watermark))
            for key in problem.members:
                self._closed[key] = None
            while len(self._closed) > _REMEMBERED_EPISODES:
                self._closed.popitem(last=False)
        return out

    def latest_event_s(self) -> float | None:
        """The newest event time any scope reached (None before the first record)."""
        return max(self._watermark_s.values(), default=None)

    def state(self) -> dict[str, Any]:
        """Everything the correlator holds, as JSON-ready data (:meth:`from_state` takes it
        back): a snapshot of it and the offset it covers restore it exactly."""
        return {
            "open": [
                {
                    "problem_id": p.problem_id,
                    "scope": p.scope,
                    "updated_s": p.updated_s,
                    "resolved_s": p.resolved_s,
                    "revision": p.revision,
                    "members": [
                        [key, m.resolved, m.alert.model_dump(mode="json")]
                        for key, m in p.members.items()
                    ],
                }
                for p in self._open.values()
            ],
            "watermarks": self._watermark_s,
            "closed": list(self._closed),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: CorrelationConfig, topology: Topology | None = None
    ) -> Correlator:
        """A correlator holding what :meth:`state` gave."""
        correlator = cls(config, topology)
        for item in state["open"]:
            problem = _Open(
                item["problem_id"],
                item["scope"],
                updated_s=float(item["updated_s"]),
                resolved_s=item["resolved_s"],
                revision=int(item["revision"]),
            )
            for key, resolved, alert in item["members"]:
                problem.members[key] = _Member(Alert.model_validate(alert), bool(resolved))
            correlator._open[problem.problem_id] = problem
        correlator._watermark_s = {k: float(v) for k, v in state["watermarks"].items()}
        correlator._closed = OrderedDict.fromkeys(state["closed"])
        return correlator

    def advance_all(self, now_s: float) -> list[Problem]:
        """:meth:`advance` in every scope (the end of a replay; live, as time passes)."""
        scopes = {p.scope for p in self._open.values()}
        return [p for scope in sorted(scopes) for p in self.advance(scope, now_s)]

    def _scope_of(self, alert: Alert) -> str:
        label = self.config.scope_label
        return alert.labels.get(label, "") if label else ""

    def _match(self, scope: str, alert: Alert, start_s: float) -> _Open | None:
        """The earliest open problem of ``scope`` the alert joins, if any."""
        for problem in self._open.values():  # in opening order
            if problem.scope != scope or problem.updated_s < start_s - self.config.window_s:
                continue
            if any(self._joins(alert, m) for m in problem.members.values()):
                return problem
        return None

    def _joins(self, alert: Alert, member: _Member) -> bool:
        """Whether ``alert`` belongs with ``member``: its own service again, or, while the
        member still fires, a service on a dependency path with it or sharing a grouping
        label (a resolved member's problem only takes its services back, as they flap)."""
        other = member.alert
        if alert.service == other.service:
            return True
        if member.resolved:
            return False
        if self.topology.related(alert.service, other.service):
            return True
        return any(
            (value := alert.labels.get(label)) is not None and other.labels.get(label) == value
            for label in self.config.group_labels
        )

    def _resolve_member(self, scope: str, alert: Alert, t: float) -> list[Problem]:
        key = alert.episode_id or alert.alert_id
        for problem in self._open.values():
            member = problem.members.get(key)
            if problem.scope != scope or member is None:
                continue
            member.resolved = True
            problem.updated_s = max(problem.updated_s, t)
            if all(m.resolved for m in problem.members.values()):
                problem.resolved_s = t
            return [self._message(problem, "updated", t)]
        return []

    def _message(self, problem: _Open, status: str, now_s: float) -> Problem:
        problem.revision += 1
        alerts = problem.alerts()
        suspects = rank_suspects(alerts, self.topology)
        members = [
            ProblemMember(
                alert_id=m.alert.alert_id,
                episode_id=m.alert.episode_id,
                kind=m.alert.kind,
                source=m.alert.source,
                service=m.alert.service,
                severity=m.alert.severity,
                started_at=m.alert.started_at or m.alert.event_ts,
                status="resolved" if m.resolved else "firing",
                summary=m.alert.summary,
            )
            for m in problem.members.values()
        ]
        severity = "critical" if any(a.severity == "critical" for a in alerts) else "warning"
        services = [s.service for s in sorted(suspects, key=lambda s: (s.first_seen, s.service))]
        return Problem(
            problem_id=problem.problem_id,
            status=status,
            scope=problem.scope,
            summary=_summary(status, severity, services, suspects[0].service, suspects[0].reasons),
            severity=severity,
            opened_at=min(m.started_at for m in members),
            updated_at=_utc(problem.updated_s),
            resolved_at=_utc(problem.resolved_s or now_s) if status == "resolved" else None,
            services=services,
            members=members,
            suspects=suspects,
            labels=_common_labels(alerts),
            revision=problem.revision,
        )


def tie_order(alert: Alert) -> tuple[int, str, str]:
    """Where an alert goes among alerts of the same event time: firing before resolved (a
    member that resolves at that instant was still firing up to it), then by service and
    alert id. The merge of several partitions and every offline run order ties so.

    Examples:
        >>> def alert(service: str, status: str) -> Alert:
        ...     return Alert.model_validate({
        ...         "alert_id": f"{service}{status}", "episode_id": service, "status": status,
        ...         "kind": "anomaly", "source": "metrics", "service": service, "event_ts": 0,
        ...         "detected_at": 0, "score": 1, "threshold": 0.9, "severity": "warning",
        ...         "model": {"name": "m", "version": "1"}, "explanation": {"top_features": []},
        ...         "evidence": {"topic": "t", "partition": 0, "offset": 0}})
        >>> tied = [alert("payments", "resolved"), alert("checkout", "firing")]
        >>> [a.service for a in sorted(tied, key=tie_order)]
        ['checkout', 'payments']
    """
    return (0 if alert.status == "firing" else 1, alert.service, alert.alert_id)


def event_order(alert: Alert) -> tuple[datetime, int, str, str]:
    """The order a correlator takes alerts in offline: event time, then :func:`tie_order`."""
    return (alert.event_ts, *tie_order(alert))


def _start_s(alert: Alert) -> float:
    return (alert.started_at or alert.event_ts).timestamp()


def _utc(ts_s: float) -> datetime:
    return datetime.fromtimestamp(ts_s, UTC)


def _common_labels(alerts: list[Alert]) -> dict[str, str]:
    first, *rest = alerts
    return {k: v for k, v in first.labels.items() if all(a.labels.get(k) == v for a in rest)}


def _summary(status: str, severity: str, services: list[str], root: str, reasons: list[str]) -> str:
    head = "[resolved]" if status == "resolved" else f"[{severity}]"
    if len(services) == 1:
        return f"{head} {root}: {reasons[-1] if reasons else 'alerting'}"
    why = reasons[0] if reasons else "the first to alert"
    return f"{head} {len(services)} services; likely root {root} ({why})"
