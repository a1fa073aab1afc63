"""NoticePolicy: one notification per real problem; silences counted, never notified."""

from __future__ import annotations

import pytest

from stream.core.notifications import Notice, NoticePolicy, Skip, problem_of_alert
from stream.schemas import Alert
from tests.unit.core.notifications.problems import problem


def _run(policy: NoticePolicy, *steps: dict[str, object]) -> list[Notice | Skip]:
    return [policy.decide(problem(revision=i + 1, **s)) for i, s in enumerate(steps)]  # type: ignore[arg-type]  # test rows


LIFE = (
    {"status": "opened"},
    {"status": "updated"},
    {"status": "updated", "severity": "critical"},
    {"status": "updated", "severity": "critical"},
    {"status": "updated", "severity": "warning"},  # a fall is no news
    {"status": "resolved"},
)


def test_chat_sinks_hear_of_opening_severity_rise_and_resolve_only() -> None:
    decisions = _run(NoticePolicy(keyed=False), *LIFE)
    assert decisions == [
        Notice("trigger", "opened"),
        Skip("no_change"),
        Notice("trigger", "severity_rose"),
        Skip("no_change"),
        Skip("no_change"),
        Notice("resolve", "resolved"),
    ]


def test_keyed_sinks_get_every_update_to_refresh_their_copy() -> None:
    decisions = _run(NoticePolicy(keyed=True), *LIFE)
    assert [d.action for d in decisions if isinstance(d, Notice)] == [
        "trigger",
        "trigger",
        "trigger",
        "trigger",
        "trigger",
        "resolve",
    ]


@pytest.mark.parametrize("keyed", [False, True])
def test_a_replayed_revision_is_a_duplicate(keyed: bool) -> None:
    policy = NoticePolicy(keyed=keyed)
    assert policy.decide(problem(1)) == Notice("trigger", "opened")
    assert policy.decide(problem(1)) == Skip("duplicate")
    assert policy.decide(problem(3, "resolved")) == Notice("resolve", "resolved")
    assert policy.decide(problem(2, "updated")) == Skip("duplicate")  # late, out of order


@pytest.mark.parametrize("keyed", [False, True])
def test_silenced_problems_are_never_notified(keyed: bool) -> None:
    decisions = _run(
        NoticePolicy(keyed=keyed),
        {"status": "opened", "silenced": True},
        {"status": "updated", "silenced": True, "severity": "critical"},
        {"status": "resolved", "silenced": True},
    )
    assert decisions == [Skip("silenced"), Skip("silenced"), Skip("silenced")]


def test_a_silence_that_ends_lets_the_problem_notify_once() -> None:
    decisions = _run(
        NoticePolicy(keyed=False),
        {"status": "opened", "silenced": True},
        {"status": "updated"},
        {"status": "updated"},
        {"status": "resolved"},
    )
    assert decisions == [
        Skip("silenced"),
        Notice("trigger", "first_seen"),
        Skip("no_change"),
        Notice("resolve", "resolved"),
    ]


def test_a_notified_problem_silenced_later_gets_no_updates_but_its_resolve() -> None:
    decisions = _run(
        NoticePolicy(keyed=True),
        {"status": "opened"},
        {"status": "updated", "silenced": True, "severity": "critical"},
        {"status": "resolved", "silenced": True},
    )
    assert decisions == [
        Notice("trigger", "opened"),
        Skip("silenced"),
        Notice("resolve", "resolved"),
    ]


def test_resolved_without_a_notice_and_messages_after_the_end_say_nothing() -> None:
    policy = NoticePolicy(keyed=False)
    assert policy.decide(problem(5, "resolved")) == Skip("never_notified")
    assert policy.decide(problem(6, "updated")) == Skip("closed")


def test_keyed_sinks_get_the_resolve_of_a_problem_first_seen_resolved() -> None:
    keyed = NoticePolicy(keyed=True)
    assert keyed.decide(problem(5, "resolved")) == Notice("resolve", "resolved_unseen")
    assert keyed.decide(problem(1, "resolved", problem_id="p-9")) == Skip("never_notified")
    assert keyed.decide(problem(4, "resolved", problem_id="p-8", silenced=True)) == Skip("silenced")
    seen = NoticePolicy(keyed=True)
    seen.decide(problem(1, silenced=True))
    assert seen.decide(problem(2, "resolved")) == Skip("never_notified")


def test_the_policy_forgets_the_least_recent_problems_past_capacity() -> None:
    policy = NoticePolicy(keyed=False, capacity=2)
    for pid in ("a", "b", "c"):
        policy.decide(problem(1, problem_id=pid))
    assert policy.decide(problem(1, problem_id="a")) == Notice("trigger", "opened")
    assert policy.decide(problem(1, problem_id="c")) == Skip("duplicate")


def _alert(status: str) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": f"a-{status}",
            "kind": "anomaly",
            "source": "metrics",
            "service": "db",
            "event_ts": "2026-12-07T08:05:00Z",
            "detected_at": "2026-12-07T08:05:01Z",
            "started_at": "2026-12-07T08:00:00Z",
            "score": 0.99,
            "threshold": 0.9,
            "severity": "critical",
            "status": status,
            "episode_id": "e-1",
            "labels": {"region": "blr"},
            "model": {"name": "hst", "version": "1"},
            "explanation": {"top_features": []},
            "evidence": {"topic": "t", "partition": 0, "offset": 5},
        }
    )


def test_single_alerts_become_one_service_problems_that_open_and_resolve() -> None:
    firing, resolved = problem_of_alert(_alert("firing")), problem_of_alert(_alert("resolved"))
    assert (firing.problem_id, firing.revision, firing.status) == ("alert:e-1", 1, "opened")
    assert (resolved.problem_id, resolved.revision, resolved.status) == ("alert:e-1", 2, "resolved")
    assert resolved.resolved_at is not None
    assert firing.opened_at == resolved.opened_at
    assert firing.labels == {"region": "blr"}
    policy = NoticePolicy(keyed=False)
    assert [policy.decide(firing), policy.decide(resolved)] == [
        Notice("trigger", "opened"),
        Notice("resolve", "resolved"),
    ]


@pytest.mark.parametrize("keyed", [False, True])
def test_a_silenced_single_alert_is_never_triggered_only_counted(keyed: bool) -> None:
    firing = problem_of_alert(_alert("firing"), silenced_by=["s1", "window:nightly"])
    resolved = problem_of_alert(_alert("resolved"), silenced_by=["s1"])
    assert firing.silenced
    assert firing.silenced_by == ["s1", "window:nightly"]
    policy = NoticePolicy(keyed=keyed)
    assert [policy.decide(firing), policy.decide(resolved)] == [
        Skip("silenced"),
        Skip("silenced"),
    ]


def test_an_episode_notified_before_its_silence_still_resolves() -> None:
    """As for problems: a pager never keeps open an incident that nobody will close."""
    policy = NoticePolicy(keyed=False)
    assert policy.decide(problem_of_alert(_alert("firing"))) == Notice("trigger", "opened")
    resolved = problem_of_alert(_alert("resolved"), silenced_by=["s1"])
    assert policy.decide(resolved) == Notice("resolve", "resolved")
