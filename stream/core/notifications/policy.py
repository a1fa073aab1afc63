"""Who is told what: one notification per real problem.

Per sink and problem, in revision order:

- ``opened`` -> trigger. A problem first seen later (an ``updated`` one whose opening was
  silenced, or read first after a restart) -> trigger too.
- ``updated`` -> trigger again only when it matters: the severity rose (warning to
  critical), for every sink; and for sinks that de-duplicate by key (Alertmanager,
  PagerDuty: ``keyed``), every update, so they hold the newest summary and suspects without
  paging anyone again. Chat and webhook sinks hear nothing else of it.
- ``resolved`` -> resolve, when the sink was told of the problem; else nothing, except
  that a keyed sink gets the resolve of a problem first seen resolved (its opening was read
  by an earlier process, say): resolving a key it never had is harmless, an incident left
  open is not.
- ``silenced`` -> never a trigger, only counted. A problem already notified that becomes
  silenced gets no more updates, but its resolve is still sent: a pager never keeps an
  incident open that nobody will close. A silence that ends while the problem is open lets
  its next update trigger, as a first notice if it had none.
- A revision at or below one seen (a replay) is a duplicate: nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from stream.schemas import Alert, Problem, ProblemMember, Suspect

__all__ = ["Action", "Notice", "NoticePolicy", "Skip", "problem_of_alert"]

Action = Literal["trigger", "resolve"]

SKIP_REASONS = ("duplicate", "silenced", "no_change", "never_notified", "closed")
"""Why a problem message is not notified to a sink (pre-initialised metric labels)."""

_SEVERITY_RANK = {"warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class Notice:
    """Tell the sink: ``trigger`` (open or refresh) or ``resolve``; ``why`` for logs."""

    action: Action
    why: str


@dataclass(frozen=True, slots=True)
class Skip:
    """Tell the sink nothing; ``reason`` is one of :data:`SKIP_REASONS`."""

    reason: str


@dataclass(slots=True)
class _Seen:
    revision: int
    notified: bool
    severity: str
    closed: bool


class NoticePolicy:
    """One sink's notification policy and what it has told that sink (module docstring).

    Args:
        keyed: The sink de-duplicates by problem (updates refresh it, never page again).
        capacity: Most problems remembered (the least recently seen are forgotten).

    Examples:
        >>> from datetime import UTC, datetime
        >>> t = datetime(2026, 12, 7, tzinfo=UTC)
        >>> def problem(revision, status="updated", severity="warning", silenced=False):
        ...     return Problem(problem_id="p", status=status, scope="", summary="s",
        ...         severity=severity, opened_at=t, updated_at=t, services=["db"], members=[],
        ...         suspects=[], silenced=silenced, revision=revision)
        >>> chat = NoticePolicy(keyed=False)
        >>> chat.decide(problem(1, "opened"))
        Notice(action='trigger', why='opened')
        >>> chat.decide(problem(2)), chat.decide(problem(2))
        (Skip(reason='no_change'), Skip(reason='duplicate'))
        >>> chat.decide(problem(3, severity="critical"))
        Notice(action='trigger', why='severity_rose')
        >>> chat.decide(problem(4, "resolved"))
        Notice(action='resolve', why='resolved')
        >>> NoticePolicy(keyed=True).decide(problem(1, silenced=True))
        Skip(reason='silenced')
    """

    def __init__(self, *, keyed: bool, capacity: int = 100_000) -> None:
        self.keyed = keyed
        self.capacity = capacity
        self._seen: OrderedDict[str, _Seen] = OrderedDict()

    def decide(self, problem: Problem) -> Notice | Skip:
        """What to tell the sink about this revision of ``problem`` (and remember it)."""
        seen = self._seen.get(problem.problem_id)
        if seen is not None and problem.revision <= seen.revision:
            return Skip("duplicate")
        first = seen is None
        if seen is None:
            seen = _Seen(0, notified=False, severity=problem.severity, closed=False)
            self._seen[problem.problem_id] = seen
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        self._seen.move_to_end(problem.problem_id)
        seen.revision = problem.revision
        return self._decide(problem, seen, first=first)

    def _decide_closed(self, problem: Problem, seen: _Seen, *, first: bool) -> Notice | Skip:
        seen.closed = True
        if seen.notified:
            return Notice("resolve", "resolved")
        if problem.silenced:
            return Skip("silenced")
        if self.keyed and first and problem.revision > 1:
            return Notice("resolve", "resolved_unseen")
        return Skip("never_notified")

    def _decide(self, problem: Problem, seen: _Seen, *, first: bool) -> Notice | Skip:
        if seen.closed:
            return Skip("closed")
        if problem.status == "resolved":
            return self._decide_closed(problem, seen, first=first)
        if problem.silenced:
            return Skip("silenced")
        if not seen.notified:
            seen.notified = True
            seen.severity = problem.severity
            return Notice("trigger", "opened" if problem.status == "opened" else "first_seen")
        if _SEVERITY_RANK[problem.severity] > _SEVERITY_RANK[seen.severity]:
            seen.severity = problem.severity
            return Notice("trigger", "severity_rose")
        return Notice("trigger", "updated") if self.keyed else Skip("no_change")

    def forget(self, problem_id: str) -> None:
        """Drop what is known of a problem (its notice was abandoned, say)."""
        self._seen.pop(problem_id, None)


def problem_of_alert(alert: Alert, *, silenced_by: Sequence[str] = ()) -> Problem:
    """A single alert as a one-member problem, so that ``vigil notify`` can deliver single
    alerts (``VIGIL_NOTIFY_ALERTS``) the way it delivers problems: the episode is the
    problem (``alert:<episode_id>``), its firing alert revision 1, its resolved one 2.

    ``silenced_by`` is what silences the alert (``SilenceBook.silenced_alert_by`` at its
    event time; the correlator marks problems, nobody marks single alerts): when not empty
    the problem is ``silenced``, so :class:`NoticePolicy` treats it as a silenced problem
    (never a trigger, counted as ``silenced``; the resolve of an episode notified before
    the silence began is still sent).

    Examples:
        >>> alert = Alert.model_validate({
        ...     "alert_id": "a1", "kind": "anomaly", "source": "metrics", "service": "db",
        ...     "event_ts": "2026-12-07T00:00:00Z", "detected_at": "2026-12-07T00:00:01Z",
        ...     "score": 0.99, "threshold": 0.9, "severity": "critical", "episode_id": "e1",
        ...     "model": {"name": "hst", "version": "1"}, "explanation": {"top_features": []},
        ...     "evidence": {"topic": "t", "partition": 0, "offset": 5}})
        >>> problem = problem_of_alert(alert)
        >>> problem.problem_id, problem.status, problem.revision, problem.suspects[0].service
        ('alert:e1', 'opened', 1, 'db')
        >>> problem.silenced
        False
        >>> silenced = problem_of_alert(alert, silenced_by=["s1"])
        >>> silenced.silenced, silenced.silenced_by
        (True, ['s1'])
        >>> NoticePolicy(keyed=False).decide(silenced)
        Skip(reason='silenced')
    """
    started = alert.started_at or alert.event_ts
    resolved = alert.status == "resolved"
    member = ProblemMember(
        alert_id=alert.alert_id,
        episode_id=alert.episode_id,
        kind=alert.kind,
        source=alert.source,
        service=alert.service,
        severity=alert.severity,
        started_at=started,
        status=alert.status,
        summary=alert.summary,
    )
    suspect = Suspect(
        service=alert.service,
        rank=1,
        reasons=[alert.summary],
        first_seen=started,
        depends_on_it=0,
        deploy_recent=alert.labels.get("deploy_recent") == "true",
    )
    return Problem(
        problem_id=f"alert:{alert.episode_id or alert.alert_id}",
        status="resolved" if resolved else "opened",
        scope="",
        summary=alert.summary,
        severity=alert.severity,
        opened_at=started,
        updated_at=alert.event_ts,
        resolved_at=alert.event_ts if resolved else None,
        services=[alert.service],
        members=[member],
        suspects=[suspect],
        labels=dict(alert.labels),
        revision=2 if resolved else 1,
        silenced=bool(silenced_by),
        silenced_by=list(silenced_by),
    )
