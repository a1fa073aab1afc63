"""Silences, maintenance windows and the deploy rule (stream.core.problems.silences): what
silences a problem or a single alert, at event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream.core.problems.correlator import CorrelationConfig, Correlator
from stream.core.problems.silences import SilenceBook
from stream.core.problems.topology import topology_from
from stream.core.problems.windows import MaintenanceWindow
from stream.schemas import Alert, Problem, Silence

TOPOLOGY = topology_from(
    {
        "services": {
            "web": {"depends_on": ["checkout"]},
            "checkout": {"depends_on": ["payments"]},
            "payments": {"depends_on": ["db"]},
            "search": {"depends_on": []},
        }
    }
)
T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def _alert(
    service: str,
    minute: float,
    *,
    z: dict[str, float] | None = None,
    deploy: bool = False,
    host: str | None = None,
    kind: str = "anomaly",
) -> Alert:
    labels = {"deploy_recent": "true"} if deploy else {}
    if host:
        labels["host"] = host
    ts = T0 + timedelta(minutes=minute)
    data: dict[str, Any] = {
        "alert_id": f"{service}-{minute}",
        "episode_id": f"{service}-episode",
        "kind": kind,
        "source": "metrics",
        "service": service,
        "event_ts": ts,
        "started_at": ts,
        "detected_at": ts,
        "score": 1.0,
        "threshold": 0.9,
        "severity": "warning",
        "model": {"name": "m", "version": "1"},
        "explanation": {"top_features": [], "z_scores": {"latency_p95": 8.0} if z is None else z},
        "evidence": {"topic": "t", "partition": 0, "offset": 0},
        "labels": labels,
    }
    return Alert.model_validate(data)


def _problem(*alerts: Alert, topology: bool = True) -> Problem:
    correlator = Correlator(CorrelationConfig(), TOPOLOGY if topology else None)
    out: list[Problem] = []
    for alert in alerts:
        out += correlator.add(alert)
    assert len({p.problem_id for p in out}) == 1, "the alerts should make one problem"
    return out[-1]


def _silence(silence_id: str = "s1", service: str = "db", **fields: Any) -> Silence:
    data: dict[str, Any] = {
        "silence_id": silence_id,
        "service": service,
        "starts_at": T0 - timedelta(hours=1),
        "ends_at": T0 + timedelta(hours=2),
        "reason": "upgrade",
    } | fields
    return Silence.model_validate(data)


def _book(*silences: Silence, **kwargs: Any) -> SilenceBook:
    book = SilenceBook(**kwargs)
    for silence in silences:
        book.put(silence)
    return book


# ------------------------------------------------------------------ the matching rule


def test_a_silence_on_the_root_covers_its_dependents() -> None:
    problem = _problem(_alert("db", 0), _alert("payments", 1), _alert("web", 2))
    assert problem.suspects[0].service == "db"
    assert _book(_silence()).silenced_by(problem, T0 + timedelta(minutes=3)) == ["s1"]


def test_a_problem_rooted_elsewhere_is_not_silenced() -> None:
    # db joins a problem rooted at search through a shared host.
    problem = _problem(_alert("search", 0, host="h1"), _alert("db", 1, host="h1"))
    assert problem.suspects[0].service == "search"
    assert _book(_silence()).silenced_by(problem, T0 + timedelta(minutes=2)) == []


def test_an_unrelated_member_alongside_the_root_keeps_the_problem_loud() -> None:
    problem = _problem(_alert("db", 0, host="h1"), _alert("search", 1, host="h1"))
    assert problem.suspects[0].service == "db"
    assert _book(_silence()).silenced_by(problem, T0 + timedelta(minutes=2)) == []
    everything = _silence("all", service="*")
    assert _book(everything).silenced_by(problem, T0) == ["all"]


def test_without_a_topology_the_root_must_count_every_other_as_dependent() -> None:
    problem = _problem(_alert("db", 0), _alert("payments", 1), _alert("web", 2))
    root = problem.suspects[0]
    assert root.depends_on_it == 2
    assert _book(_silence(), topology=None).silenced_by(problem, T0) == ["s1"]
    # The book's own topology decides exactly: a matching stranger is no obstacle.
    book = _book(_silence(service="db*"), topology=TOPOLOGY)
    assert book.silenced_by(problem, T0) == ["s1"]


def test_patterns_are_shell_style_and_case_sensitive() -> None:
    problem = _problem(_alert("payments-eu", 0))
    at = T0 + timedelta(minutes=1)
    assert _book(_silence(service="payments-*")).silenced_by(problem, at) == ["s1"]
    assert _book(_silence(service="payments-??")).silenced_by(problem, at) == ["s1"]
    assert _book(_silence(service="Payments-*")).silenced_by(problem, at) == []
    assert _book(_silence(service="payments")).silenced_by(problem, at) == []


def test_a_metric_pattern_needs_a_matching_services_metric() -> None:
    problem = _problem(
        _alert("db", 0, z={"disk_io": 9.0, "cpu": 1.0}),
        _alert("payments", 1, z={"latency_p95": 7.0}),
    )
    at = T0 + timedelta(minutes=2)
    assert _book(_silence(metric="disk_*")).silenced_by(problem, at) == ["s1"]
    assert _book(_silence(metric="latency_*")).silenced_by(problem, at) == []  # payments'
    assert _book(_silence(service="*", metric="latency_*")).silenced_by(problem, at) == ["s1"]


def test_a_metric_pattern_never_covers_a_problem_without_metrics() -> None:
    problem = _problem(_alert("db", 0, z={}, kind="incident_risk"))
    assert problem.suspects[0].metrics == []
    assert _book(_silence(metric="*")).silenced_by(problem, T0) == []
    assert _book(_silence()).silenced_by(problem, T0) == ["s1"]


# ---------------------------------------------------------------- silences over time


def test_a_silence_is_in_force_from_its_start_to_before_its_end() -> None:
    silence = _silence(starts_at=T0, ends_at=T0 + timedelta(hours=1))
    problem = _problem(_alert("db", 0))
    book = _book(silence)
    assert book.silenced_by(problem, T0 - timedelta(seconds=1)) == []
    assert book.silenced_by(problem, T0) == ["s1"]
    assert book.silenced_by(problem, T0 + timedelta(minutes=59, seconds=59)) == ["s1"]
    assert book.silenced_by(problem, T0 + timedelta(hours=1)) == []


def test_tombstones_remove_and_newer_records_replace() -> None:
    book = _book(_silence())
    problem = _problem(_alert("db", 0))
    book.put(_silence(service="search"))  # the same id, edited
    assert book.silenced_by(problem, T0) == []
    book.put(_silence())
    assert book.remove("s1") is True
    assert book.remove("s1") is False
    assert book.silenced_by(problem, T0) == []
    assert len(book) == 0
    assert "s1" not in book


def test_active_lists_what_is_in_force_and_prune_forgets_what_ended() -> None:
    early = _silence("early", starts_at=T0 - timedelta(hours=3), ends_at=T0 - timedelta(hours=1))
    now = _silence("now")
    later = _silence("later", starts_at=T0 + timedelta(days=1), ends_at=T0 + timedelta(days=2))
    window = MaintenanceWindow("nightly", "0 1 * * *", 3 * 3600, service="db")
    book = _book(early, now, later, windows=[window])
    active = book.active(T0)
    assert [s.silence_id for s in active] == ["now", "window:nightly"]
    assert active[1].starts_at == T0 - timedelta(hours=1)
    assert active[1].ends_at == T0 + timedelta(hours=2)
    assert [s.silence_id for s in book.silences()] == ["early", "now", "later"]
    assert book.prune(T0) == ["early"]
    assert book.prune(T0) == []
    assert [s.silence_id for s in book.silences()] == ["now", "later"]


def test_several_silences_report_in_order() -> None:
    window = MaintenanceWindow("nightly", "0 1 * * *", 3 * 3600, service="d*")
    book = _book(_silence("b"), _silence("a"), windows=[window])
    assert book.silenced_by(_problem(_alert("db", 0)), T0) == ["a", "b", "window:nightly"]


# ---------------------------------------------------------------- maintenance windows


def test_a_window_crossing_midnight_covers_both_days() -> None:
    window = MaintenanceWindow("late", "30 23 * * *", 2 * 3600, service="db")
    book = SilenceBook([window])
    problem = _problem(_alert("db", 0))
    day = datetime(2026, 12, 31, tzinfo=UTC)
    assert book.silenced_by(problem, day + timedelta(hours=23, minutes=29)) == []
    assert book.silenced_by(problem, day + timedelta(hours=23, minutes=30)) == ["window:late"]
    new_year = day + timedelta(days=1, hours=1, minutes=29, seconds=59, microseconds=999)
    assert book.silenced_by(problem, new_year) == ["window:late"]
    assert book.silenced_by(problem, day + timedelta(days=1, hours=1, minutes=30)) == []


def test_a_weekly_window_only_on_its_day() -> None:
    window = MaintenanceWindow("sunday", "0 2 * * sun", 3600, service="*")
    sunday = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)
    assert sunday.strftime("%a") == "Sun"
    assert window.occurrence(sunday) == (sunday.replace(minute=0), sunday.replace(hour=3, minute=0))
    assert window.occurrence(sunday + timedelta(days=1)) is None
    assert window.occurrence(sunday + timedelta(days=7)) is not None


def test_a_window_longer_than_its_period_never_lapses() -> None:
    window = MaintenanceWindow("rolling", "0 * * * *", 2 * 3600)
    for minutes in range(0, 24 * 60, 17):
        assert window.occurrence(T0 + timedelta(minutes=minutes)) is not None


@pytest.mark.parametrize(
    ("cron", "at", "start"),
    [
        # The 31st exists in seven months only: on 15 May the last start is 31 March.
        ("0 0 31 * *", datetime(2026, 5, 15, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC)),
        # 29 February: the last start before 2027's is 2024's.
        ("0 0 29 2 *", datetime(2027, 6, 1, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)),
        # The last day of the month.
        ("0 22 L * *", datetime(2026, 3, 1, 1, tzinfo=UTC), datetime(2026, 2, 28, 22, tzinfo=UTC)),
        # Day of month or day of week (both restricted: either): the 1st, or a Friday.
        ("0 0 1 * fri", datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        # A start exactly at ``at`` counts; a step and a range.
        ("*/15 8-9 * * mon-fri", datetime(2026, 12, 7, 9, 45, tzinfo=UTC), None),
    ],
)
def test_cron_edge_cases(cron: str, at: datetime, start: datetime | None) -> None:
    window = MaintenanceWindow("w", cron, 60)
    assert window.last_start(at) == (start or at)


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("0 24 * * *", "bad hour"),
        ("61 * * * *", "bad minute"),
        ("0 0 30 2 *", "bad day-of-month"),
        ("0 0 * * 8", "bad day-of-week"),
        ("0 0 * *", "needs five fields"),
        ("0 0 0 * * *", "got 6"),
        ("every night", "got 2"),
    ],
)
def test_a_bad_cron_names_the_window_and_why(cron: str, why: str) -> None:
    with pytest.raises(ValueError, match="maintenance window 'w'") as info:
        MaintenanceWindow("w", cron, 60)
    assert why in str(info.value)


def test_window_fields_are_checked() -> None:
    with pytest.raises(ValueError, match="duration_s must be positive"):
        MaintenanceWindow("w", "0 0 * * *", 0)
    with pytest.raises(ValueError, match="needs a name"):
        MaintenanceWindow(" ", "0 0 * * *", 60)
    with pytest.raises(ValueError, match="unique"):
        SilenceBook([MaintenanceWindow("w", "0 0 * * *", 60)] * 2)


# ------------------------------------------------------------------------- deploys


def test_a_deploy_makes_its_problem_expected_for_a_while() -> None:
    problem = _problem(_alert("db", 0, deploy=True), _alert("payments", 1))
    first = problem.suspects[0].first_seen
    book = SilenceBook(deploy_expected_s=1800)
    assert book.silenced_by(problem, first + timedelta(minutes=30)) == ["deploy:db"]
    assert book.silenced_by(problem, first + timedelta(minutes=31)) == []
    assert SilenceBook().silenced_by(problem, first) == []  # off by default


def test_a_deploy_elsewhere_does_not_explain_the_root() -> None:
    problem = _problem(_alert("db", 0), _alert("payments", 1, deploy=True))
    assert problem.suspects[0].service == "db"
    assert SilenceBook(deploy_expected_s=1800).silenced_by(problem, T0) == []


def test_a_deploy_does_not_cover_an_unrelated_member() -> None:
    problem = _problem(_alert("db", 0, deploy=True, host="h"), _alert("search", 1, host="h"))
    assert SilenceBook(deploy_expected_s=1800).silenced_by(problem, T0) == []


# ---------------------------------------------------------------------- single alerts


def test_single_alerts() -> None:
    window = MaintenanceWindow("nightly", "0 1 * * *", 3 * 3600, service="db", metric="disk_*")
    book = _book(_silence(), windows=[window], deploy_expected_s=600)
    disk = _alert("db", 0, z={"disk_io": 9.0})
    assert book.silenced_alert_by(disk, T0) == ["s1", "window:nightly"]
    assert book.silenced_alert_by(_alert("db", 0), T0) == ["s1"]
    assert book.silenced_alert_by(_alert("web", 0), T0) == []
    deployed = _alert("web", 0, deploy=True)
    assert book.silenced_alert_by(deployed, T0 + timedelta(minutes=10)) == ["deploy:web"]
    assert book.silenced_alert_by(deployed, T0 + timedelta(minutes=11)) == []
    risk = _alert("db", 0, kind="incident_risk")
    assert book.silenced_alert_by(risk, T0) == ["s1"]  # no metrics: the window's pattern fails
