"""What keeps a problem (or a single alert) from being notified: silences, maintenance
windows and recent deploys (pure; fed by ``stream.kafka.silences``, asked by ``vigil
correlate`` and ``vigil notify``).

Three sources, each reported by what :meth:`SilenceBook.silenced_by` returns:

- ad-hoc silences (``vigil silence add``; the compacted silences topic), in force from
  ``starts_at`` (included) to ``ends_at`` (excluded): reported by their ``silence_id``;
- recurring maintenance windows from configuration (:class:`MaintenanceWindow`):
  ``window:<name>``;
- the deploy rule: a service deployed shortly before its first alert makes its problem
  expected for ``deploy_expected_s`` after that alert (0: off): ``deploy:<service>``.

The matching rule (a problem is *covered* by a service pattern): the problem's root, its top
suspect (``problem.suspects[0]``), matches the pattern, and every other service of the
problem either matches it too or depends on the root (directly or through others). So a
maintenance on ``db`` silences the problem rooted at ``db`` whose other members are its
callers, but not a problem rooted elsewhere that ``db`` merely joined, nor one where an
unrelated service fails alongside. Who depends on the root comes from the topology when the
book has one (the correlator's), else from the root suspect's ``depends_on_it``: without a
topology, the others count as dependents only when all of them depend on the root.

A metric pattern narrows a silence: besides the services, one of the metrics listed for a
service that matches the pattern (``Suspect.metrics``: its metrics furthest off, by |z|)
must match it. Problems of log or incident-risk alerts only list no metrics, so a silence
with a metric pattern never covers them. Patterns are shell-style (``fnmatch``, case
sensitive): ``payments-*``, ``db?``, ``*``.

Everything is decided on the event time passed in (``at``), so a replay gives the same
answers as the live run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from fnmatch import fnmatchcase

from stream.core.problems.suspects import DEPLOY_LABEL
from stream.core.problems.topology import Topology
from stream.core.problems.windows import MaintenanceWindow
from stream.schemas import Alert, Problem, Silence

__all__ = ["SilenceBook"]

_ALERT_METRICS = 5
"""An alert's metrics considered by a metric pattern: its furthest off by |z|, as many as a
suspect lists (``stream.core.problems.suspects``), so one silence treats a single alert and
its problem alike."""


class SilenceBook:
    """The silences, maintenance windows and deploy rule in force (see the module docstring).

    Args:
        windows: Recurring maintenance windows (configuration).
        deploy_expected_s: How long after a deployed service's first alert its problem is
            expected (0: the deploy rule is off).
        topology: Who depends on whom, to tell a root's dependents exactly (None: each
            problem's root suspect's ``depends_on_it`` count).

    Examples:
        >>> from datetime import UTC, datetime
        >>> book = SilenceBook()
        >>> book.put(Silence(silence_id="s1", service="db", reason="upgrade",
        ...                  starts_at="2026-12-07T02:00:00Z", ends_at="2026-12-07T04:00:00Z"))
        >>> [s.silence_id for s in book.active(datetime(2026, 12, 7, 3, tzinfo=UTC))]
        ['s1']
        >>> book.active(datetime(2026, 12, 7, 4, tzinfo=UTC))
        []
        >>> book.remove("s1"), book.remove("s1")
        (True, False)
    """

    def __init__(
        self,
        windows: Iterable[MaintenanceWindow] = (),
        *,
        deploy_expected_s: float = 0.0,
        topology: Topology | None = None,
    ) -> None:
        if deploy_expected_s < 0:
            raise ValueError(f"deploy_expected_s must be 0 or more, got {deploy_expected_s}")
        self.windows = tuple(windows)
        names = [w.name for w in self.windows]
        if len(set(names)) != len(names):
            raise ValueError(f"maintenance window names must be unique: {names}")
        self.deploy_expected_s = deploy_expected_s
        self.topology = topology
        self._silences: dict[str, Silence] = {}

    def __len__(self) -> int:
        """Ad-hoc silences held (expired ones too, until :meth:`prune`)."""
        return len(self._silences)

    def __contains__(self, silence_id: object) -> bool:
        return silence_id in self._silences

    def get(self, silence_id: str) -> Silence | None:
        """The ad-hoc silence ``silence_id``, if held."""
        return self._silences.get(silence_id)

    def put(self, silence: Silence) -> None:
        """Hold ``silence``, replacing one of the same id (the topic's newer record)."""
        self._silences[silence.silence_id] = silence

    def remove(self, silence_id: str) -> bool:
        """Forget ``silence_id`` (a tombstone); whether it was held."""
        return self._silences.pop(silence_id, None) is not None

    def silences(self) -> list[Silence]:
        """Every ad-hoc silence held, in force or not, by start then id."""
        return sorted(self._silences.values(), key=lambda s: (s.starts_at, s.silence_id))

    def prune(self, at: datetime) -> list[str]:
        """Forget the ad-hoc silences that ended at or before ``at``; their ids.

        Prune with a time no event still to be judged precedes (the wall clock less the
        alert age limit, say): a pruned silence no longer covers earlier event times.
        """
        ended = [i for i, s in self._silences.items() if s.ends_at <= at]
        for silence_id in ended:
            del self._silences[silence_id]
        return sorted(ended)

    def active(self, at: datetime) -> list[Silence]:
        """What is in force at ``at``: ad-hoc silences, and each maintenance window's current
        occurrence as a Silence named ``window:<name>`` (by start, then id)."""
        found = [s for s in self._silences.values() if _in_force(s, at)]
        for window in self.windows:
            occurrence = window.occurrence(at)
            if occurrence is not None:
                found.append(_as_silence(window, *occurrence))
        return sorted(found, key=lambda s: (s.starts_at, s.silence_id))

    def silenced_by(self, problem: Problem, at: datetime) -> list[str]:
        """What silences ``problem`` at event time ``at``: silence ids, ``window:<name>``
        and ``deploy:<service>``, in that order (each sorted); empty when nothing does."""
        found = [
            s.silence_id
            for s in self._silences.values()
            if _in_force(s, at) and self._covers(problem, s.service, s.metric)
        ]
        found.sort()
        found += [
            f"window:{w.name}"
            for w in self.windows
            if self._covers(problem, w.service, w.metric) and w.occurrence(at) is not None
        ]
        deployed = self._deployed(problem, at)
        if deployed and self._covered(problem, deployed.__contains__):
            found += [f"deploy:{service}" for service in sorted(deployed)]
        return found

    def silenced_alert_by(self, alert: Alert, at: datetime) -> list[str]:
        """What silences the single ``alert`` at event time ``at`` (``vigil notify``'s
        single-alert mode): as :meth:`silenced_by`, its service for the problem's services,
        its own metrics furthest off, and its ``deploy_recent`` label for a deploy."""
        metrics = _alert_metrics(alert)
        found = sorted(
            s.silence_id
            for s in self._silences.values()
            if _in_force(s, at) and _alert_matches(alert.service, metrics, s.service, s.metric)
        )
        found += [
            f"window:{w.name}"
            for w in self.windows
            if _alert_matches(alert.service, metrics, w.service, w.metric)
            and w.occurrence(at) is not None
        ]
        if (
            self.deploy_expected_s > 0
            and alert.labels.get(DEPLOY_LABEL) == "true"
            and _seconds(at, alert.started_at or alert.event_ts) <= self.deploy_expected_s
        ):
            found.append(f"deploy:{alert.service}")
        return found

    def _covers(self, problem: Problem, service: str, metric: str | None) -> bool:
        """Whether the patterns cover ``problem`` (the module docstring's rule)."""

        def matches(name: str) -> bool:
            return fnmatchcase(name, service)

        if not self._covered(problem, matches):
            return False
        if metric is None:
            return True
        return any(
            fnmatchcase(m.name, metric)
            for suspect in problem.suspects
            if matches(suspect.service)
            for m in suspect.metrics
        )

    def _covered(self, problem: Problem, matches: Callable[[str], bool]) -> bool:
        """The root matches, and every other service matches or depends on the root."""
        services = set(problem.services) | {s.service for s in problem.suspects}
        services |= {m.service for m in problem.members}
        if not problem.suspects:  # no root known: every service must match
            return bool(services) and all(matches(s) for s in services)
        root = problem.suspects[0]
        if not matches(root.service):
            return False
        others = services - {root.service}
        strangers = {s for s in others if not matches(s)}
        if not strangers:
            return True
        if self.topology is not None:
            return strangers <= self.topology.dependents(root.service, others)
        return root.depends_on_it >= len(others)

    def _deployed(self, problem: Problem, at: datetime) -> set[str]:
        """The problem's services deployed shortly before a first alert still expected at
        ``at`` (within ``deploy_expected_s`` of it)."""
        if self.deploy_expected_s <= 0:
            return set()
        return {
            s.service
            for s in problem.suspects
            if s.deploy_recent and _seconds(at, s.first_seen) <= self.deploy_expected_s
        }


def _in_force(silence: Silence, at: datetime) -> bool:
    return silence.starts_at <= at < silence.ends_at


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _as_silence(window: MaintenanceWindow, start: datetime, end: datetime) -> Silence:
    return Silence(
        silence_id=f"window:{window.name}",
        service=window.service,
        metric=window.metric,
        starts_at=start,
        ends_at=end,
        reason=f"maintenance window {window.name} ({window.cron}, {window.duration_s:g} s)",
        created_by="configuration",
    )


def _alert_metrics(alert: Alert) -> list[str]:
    """An anomaly alert's metrics furthest off (by |z|; its top features without z-scores)."""
    if alert.kind != "anomaly":
        return []
    z_scores = alert.explanation.z_scores
    if z_scores:
        ranked = sorted(z_scores.items(), key=lambda item: (-abs(item[1]), item[0]))
        return [name for name, _ in ranked[:_ALERT_METRICS]]
    return [f.name for f in alert.explanation.top_features]


def _alert_matches(service: str, metrics: list[str], pattern: str, metric: str | None) -> bool:
    if not fnmatchcase(service, pattern):
        return False
    return metric is None or any(fnmatchcase(name, metric) for name in metrics)
