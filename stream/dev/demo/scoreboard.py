"""What the demo's simulator injected, what Vigil alerted on, and which incidents were caught.

Pure bookkeeping in event time: the demo feeds it the incidents as the simulated services
reach them and the alerts as they arrive on the alerts topic, and asks for verdicts.

An incident of the metric services is

* **warned** when an incident-risk episode of its service was open at some point of the
  risk horizon before it opened (its firing alert came in that horizon, or earlier and it
  had not resolved yet; the lead time is from that firing alert);
* **detected** when, not warned, an anomaly alert on its service came while it was open;
* **missed** when neither, once the stream is far enough past its end for the alerts to
  have arrived (``settle_s``); before that it is **open**.

A log incident is **caught** by a log alert on its service whose window overlaps it.

Alerts come per episode: a ``firing`` alert opens one and is counted; a ``resolved`` alert
closes it and is not (an incident-risk one ends its episode's warning).
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from stream.schemas import Alert

__all__ = ["Incident", "Scoreboard", "Verdict"]

Status = Literal["open", "warned", "detected", "missed", "caught"]


@dataclass(frozen=True, slots=True)
class Incident:
    """One injected incident: ``source`` ``metrics`` (labelled on ``vigil.incidents``,
    ``cause`` its precursor or ``no warning``) or ``logs`` (``cause`` its kind)."""

    source: Literal["metrics", "logs"]
    incident_id: str
    service: str
    start: datetime
    end: datetime
    cause: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """An incident and what became of it; ``lead_s`` for a warned one."""

    incident: Incident
    status: Status
    lead_s: float | None = None


@dataclass
class Scoreboard:
    """Incidents and alerts of one demo run, matched in event time.

    Args:
        horizon_s: The incident-risk horizon: a risk alert this long before an open warns.
        log_window_s: Log windows' length: a log alert names its window's start.
        settle_s: How far past an incident's end the stream must be before it is missed.

    Examples:
        >>> from datetime import UTC, datetime, timedelta
        >>> t0 = datetime(2026, 11, 23, tzinfo=UTC)
        >>> board = Scoreboard(horizon_s=900.0, log_window_s=30.0, settle_s=600.0)
        >>> board.add_incident(Incident(
        ...     "metrics", "inc-1", "svc-01", t0, t0 + timedelta(minutes=20), "memory_creep"))
        >>> board.note_risk_alert("svc-01", t0 - timedelta(minutes=6))
        >>> board.verdicts(t0 + timedelta(hours=1))[0].status
        'warned'
    """

    horizon_s: float
    log_window_s: float
    settle_s: float
    incidents: dict[str, Incident] = field(default_factory=dict)
    alerts: Counter[str] = field(default_factory=Counter)
    """Firing alerts seen, by ``anomaly``, ``incident_risk`` and ``logs``."""
    _times: dict[tuple[str, str], list[datetime]] = field(default_factory=lambda: defaultdict(list))
    _risk_episodes: dict[str, dict[str, tuple[datetime, datetime | None]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    """Service → its incident-risk episodes: id → (firing alert's time, resolved or None)."""

    def add_incident(self, incident: Incident) -> None:
        """Track ``incident`` (again is a no-op)."""
        self.incidents.setdefault(incident.incident_id, incident)

    def add_alert(self, alert: Alert) -> str:
        """Count a firing ``alert`` and remember it for the verdicts (a resolved one only
        closes its episode); returns its kind."""
        kind = "logs" if alert.source == "logs" else alert.kind
        if alert.status == "resolved":
            if kind == "incident_risk" and alert.episode_id is not None:
                episodes = self._risk_episodes[alert.service]
                if alert.episode_id in episodes:
                    episodes[alert.episode_id] = (episodes[alert.episode_id][0], alert.event_ts)
            return kind
        if kind == "incident_risk":
            self.note_risk_alert(alert.service, alert.event_ts, alert.episode_id)
        else:
            self._note(kind, alert.service, alert.event_ts)
        return kind

    def note_risk_alert(self, service: str, ts: datetime, episode_id: str | None = None) -> None:
        """An incident-risk episode on ``service`` opened at event time ``ts`` (without an
        id: an alert of its own, over at once)."""
        self._note("incident_risk", service, ts)
        key = episode_id if episode_id is not None else f"{ts.isoformat()}"
        self._risk_episodes[service][key] = (ts, None if episode_id is not None else ts)

    def note_anomaly_alert(self, service: str, ts: datetime) -> None:
        """An anomaly alert on ``service``'s metrics at event time ``ts``."""
        self._note("anomaly", service, ts)

    def _note(self, kind: str, service: str, ts: datetime) -> None:
        self.alerts[kind] += 1
        bisect.insort(self._times[(kind, service)], ts)

    def _first(self, kind: str, service: str, start: datetime, end: datetime) -> datetime | None:
        """The earliest alert of ``kind`` on ``service`` in [start, end)."""
        times = self._times.get((kind, service), [])
        i = bisect.bisect_left(times, start)
        return times[i] if i < len(times) and times[i] < end else None

    def verdict(self, incident: Incident, now: datetime) -> Verdict:
        """What became of ``incident`` with the stream at event time ``now``."""
        if incident.source == "logs":
            window = timedelta(seconds=self.log_window_s)
            caught = self._first("logs", incident.service, incident.start - window, incident.end)
            if caught is not None:
                return Verdict(incident, "caught")
        else:
            warned = self._warned(incident.service, incident.start)
            if warned is not None:
                return Verdict(incident, "warned", (incident.start - warned).total_seconds())
            if self._first("anomaly", incident.service, incident.start, incident.end) is not None:
                return Verdict(incident, "detected")
        settled = now >= incident.end + timedelta(seconds=self.settle_s)
        return Verdict(incident, "missed" if settled else "open")

    def _warned(self, service: str, start: datetime) -> datetime | None:
        """The firing alert of the first risk episode of ``service`` open at some point of
        the horizon before ``start`` (and opened before it), if any."""
        since = start - timedelta(seconds=self.horizon_s)
        firsts = [
            fired
            for fired, resolved in self._risk_episodes.get(service, {}).values()
            if fired < start and (resolved is None or resolved >= since)
        ]
        return min(firsts, default=None)

    def risk_alerts_ahead(self) -> int:
        """Incident-risk alerts followed by an incident of their service within the horizon
        (the others are false alarms, or warnings of an incident not yet opened)."""
        horizon = timedelta(seconds=self.horizon_s)
        opens: dict[str, list[datetime]] = defaultdict(list)
        for incident in self.incidents.values():
            if incident.source == "metrics":
                opens[incident.service].append(incident.start)
        ahead = 0
        for (kind, service), times in self._times.items():
            if kind != "incident_risk":
                continue
            starts = sorted(opens.get(service, []))
            for ts in times:
                i = bisect.bisect_right(starts, ts)
                ahead += i < len(starts) and starts[i] - ts <= horizon
        return ahead

    def anomaly_alerts_in_incidents(self) -> int:
        """Anomaly alerts raised while an incident of their service was open."""
        spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
        for incident in self.incidents.values():
            if incident.source == "metrics":
                spans[incident.service].append((incident.start, incident.end))
        inside = 0
        for (kind, service), times in self._times.items():
            if kind != "anomaly" or service not in spans:
                continue
            starts, ends = _disjoint(spans[service])
            for ts in times:  # in the span that starts last at or before ts, if any
                i = bisect.bisect_right(starts, ts) - 1
                inside += i >= 0 and ts < ends[i]
        return inside

    def verdicts(self, now: datetime) -> list[Verdict]:
        """Every incident started by ``now``, oldest first."""
        return [
            self.verdict(i, now)
            for i in sorted(self.incidents.values(), key=lambda i: (i.start, i.service))
            if i.start <= now
        ]

    def tally(self, now: datetime, verdicts: list[Verdict] | None = None) -> dict[str, float]:
        """The figures of the summary, as of event time ``now`` (``verdicts``: those of
        :meth:`verdicts` at ``now``, if already in hand)."""
        if verdicts is None:
            verdicts = self.verdicts(now)
        metrics = [v for v in verdicts if v.incident.source == "metrics"]
        logs = [v for v in verdicts if v.incident.source == "logs"]
        by_status = Counter(v.status for v in metrics)
        leads = [v.lead_s for v in metrics if v.lead_s is not None]
        return {
            "anomaly_alerts": self.alerts["anomaly"],
            "anomaly_alerts_in_incidents": self.anomaly_alerts_in_incidents(),
            "risk_alerts": self.alerts["incident_risk"],
            "risk_alerts_ahead": self.risk_alerts_ahead(),
            "log_alerts": self.alerts["logs"],
            "incidents": len(metrics),
            "warned": by_status["warned"],
            "detected": by_status["detected"],
            "missed": by_status["missed"],
            "open": by_status["open"],
            "median_lead_s": statistics.median(leads) if leads else 0.0,
            "log_incidents": len(logs),
            "log_caught": sum(v.status == "caught" for v in logs),
            "log_missed": sum(v.status == "missed" for v in logs),
        }


def _disjoint(spans: list[tuple[datetime, datetime]]) -> tuple[list[datetime], list[datetime]]:
    """The union of [start, end) ``spans`` as sorted disjoint spans: their starts and ends."""
    starts: list[datetime] = []
    ends: list[datetime] = []
    for start, end in sorted(spans):
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends
