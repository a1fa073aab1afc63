"""Alerts into problems (stream.core.problems): grouping by time, topology, labels and scope;
lifecycle; root-cause suspects."""

from __future__ import annotations

from typing import Any

from stream.core.problems.correlator import CorrelationConfig, Correlator
from stream.core.problems.topology import Topology, topology_from
from stream.schemas import Alert, Problem

TOPOLOGY = topology_from(
    {
        "services": {
            "web": {"depends_on": ["checkout", "search"]},
            "checkout": {"depends_on": ["payments", "inventory"]},
            "payments": {"depends_on": ["db"]},
            "inventory": {"depends_on": ["db"]},
            "search": {"depends_on": []},
        }
    }
)


def _alert(
    service: str,
    minute: float,
    *,
    status: str = "firing",
    labels: dict[str, str] | None = None,
    z: dict[str, float] | None = None,
    severity: str = "warning",
    episode: str = "",
) -> Alert:
    data: dict[str, Any] = {
        "alert_id": f"{service}-{minute}-{status}",
        "episode_id": f"{service}-episode{episode}",
        "status": status,
        "kind": "anomaly",
        "source": "metrics",
        "service": service,
        "event_ts": _ts(minute),
        "started_at": _ts(minute),
        "detected_at": 1_795_000_000,
        "score": 1.0,
        "threshold": 0.99,
        "severity": severity,
        "model": {"name": "m", "version": "1"},
        "explanation": {"top_features": [], "z_scores": z or {}},
        "evidence": {"topic": "t", "partition": 0, "offset": 0},
        "labels": labels or {},
    }
    return Alert.model_validate(data)


def _ts(minute: float) -> float:
    return 1_795_000_000 + minute * 60


def _run(correlator: Correlator, alerts: list[Alert]) -> list[Problem]:
    return [p for a in alerts for p in correlator.add(a)]


def test_a_cascade_along_dependencies_is_one_problem_rooted_where_it_started() -> None:
    correlator = Correlator(CorrelationConfig(), TOPOLOGY)
    cascade = [
        _alert("web", 0, z={"latency_p95": 6.0}),  # seen first: its checks are tighter
        _alert("db", 1, z={"cpu": 12.0, "latency_p95": 8.0}, severity="critical"),
        _alert("payments", 2, z={"err_5xx": 7.0}),
        _alert("checkout", 3, z={"latency_p95": 5.0}),
    ]
    problems = _run(correlator, cascade)
    assert [p.status for p in problems] == ["opened", "updated", "updated", "updated"]
    final = problems[-1]
    assert final.services == ["web", "db", "payments", "checkout"]
    # db is where it started although web alerted first: every other depends on it.
    assert [s.service for s in final.suspects] == ["db", "payments", "checkout", "web"]
    root = final.suspects[0]
    assert root.depends_on_it == 3
    assert root.metrics[0].name == "cpu"
    assert root.reasons[0] == "3 of the 3 other affected services depend on it"
    assert final.severity == "critical"
    assert final.summary == (
        "[critical] 4 services; likely root db (3 of the 3 other affected services depend on it)"
    )
    assert len({p.problem_id for p in problems}) == 1


def test_unrelated_services_and_late_alerts_open_problems_of_their_own() -> None:
    correlator = Correlator(CorrelationConfig(window_s=600), TOPOLOGY)
    problems = _run(correlator, [_alert("db", 0), _alert("search", 1), _alert("payments", 30)])
    assert [p.status for p in problems] == ["opened", "opened", "opened"]
    assert len({p.problem_id for p in problems}) == 3


def test_labels_join_alerts_and_scopes_keep_them_apart() -> None:
    config = CorrelationConfig(scope_label="region", group_labels=("host",))
    correlator = Correlator(config, Topology())
    problems = _run(
        correlator,
        [
            _alert("a", 0, labels={"region": "eu", "host": "h1"}),
            _alert("b", 1, labels={"region": "eu", "host": "h1"}),  # same host: joins
            _alert("c", 2, labels={"region": "us", "host": "h1"}),  # another region: apart
        ],
    )
    assert [(p.status, p.scope, p.services) for p in problems] == [
        ("opened", "eu", ["a"]),
        ("updated", "eu", ["a", "b"]),
        ("opened", "us", ["c"]),
    ]
    assert problems[1].labels == {"region": "eu", "host": "h1"}


def test_a_problem_resolves_with_its_members_or_when_quiet() -> None:
    correlator = Correlator(CorrelationConfig(quiet_s=1800), TOPOLOGY)
    problems = _run(
        correlator,
        [
            _alert("db", 0),
            _alert("payments", 1),
            _alert("db", 5, status="resolved"),
            _alert("payments", 6, status="resolved"),
        ],
    )
    assert [p.status for p in problems] == ["opened", "updated", "updated", "updated"]
    assert [m.status for m in problems[2].members] == ["resolved", "firing"]
    assert [m.status for m in problems[3].members] == ["resolved", "resolved"]
    # Held for hold_s: payments flapping back joins the same problem...
    (back,) = correlator.add(_alert("payments", 10, episode="2"))
    assert (back.status, back.problem_id) == ("updated", problems[0].problem_id)
    correlator.add(_alert("payments", 12, status="resolved", episode="2"))
    # ... which resolves hold_s after its last member did, as event time passes.
    assert correlator.advance_all(_ts(12) + 599) == []
    (resolved,) = correlator.advance_all(_ts(22))
    assert resolved.status == "resolved"
    assert resolved.resolved_at is not None
    assert resolved.resolved_at.timestamp() == _ts(12)
    assert correlator.open_problems == 0
    # A member whose resolved alert never comes: the problem resolves after quiet_s.
    quiet = _run(correlator, [_alert("search", 100), _alert("web", 140)])
    assert [(p.status, p.services) for p in quiet] == [
        ("opened", ["search"]),
        ("resolved", ["search"]),
        ("opened", ["web"]),
    ]


def test_a_replayed_alert_changes_nothing_and_ids_are_stable() -> None:
    alerts = [_alert("db", 0), _alert("payments", 1), _alert("db", 1)]
    first = _run(Correlator(CorrelationConfig(), TOPOLOGY), alerts)
    again = _run(Correlator(CorrelationConfig(), TOPOLOGY), alerts)
    assert [p.status for p in first] == ["opened", "updated"]  # db's duplicate: nothing
    assert [p.model_dump() for p in first] == [p.model_dump() for p in again]


def test_a_recent_deploy_ranks_a_service_first_without_topology() -> None:
    correlator = Correlator(CorrelationConfig(group_labels=("host",)), Topology())
    problems = _run(
        correlator,
        [
            _alert("a", 0, labels={"host": "h"}),
            _alert("b", 1, labels={"host": "h", "deploy_recent": "true"}),
        ],
    )
    suspects = problems[-1].suspects
    assert [s.service for s in suspects] == ["b", "a"]
    assert suspects[0].reasons[0] == "a deploy shortly before its first alert"
