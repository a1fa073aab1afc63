"""What incident-risk alerts were worth to an operator, counted per alert (pure).

The figures an on-call team would judge risk alerts by, from the alerts themselves and the
incidents that followed:

- **alerts per service-day**: firing risk alerts (one per episode) over the service-days the
  data covers;
- **precision**: the share of firing alerts followed by an incident of their service opening
  within the horizon (at ``opened - horizon < alert <= opened``, the labeler's positives);
- **warned ahead**: the share of incidents *with precursors* (those that could be foreseen;
  all incidents when the data does not say) that had a firing alert within the horizon
  before they opened (``[opened - horizon, opened]``), or a risk episode still open at some
  point of it;
- **lead**: the time from that episode's firing alert to the opening (median).

Firing alerts raised while an incident of the service was already open (its label not yet
arrived) are counted apart as ``during_incident``: they are not followed by an opening, so
they lower precision, and they say why.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["AlertQuality", "IncidentTruth", "RiskEpisodeSpan", "risk_alert_quality"]


@dataclass(frozen=True, slots=True)
class IncidentTruth:
    """One incident as an evaluation knows it.

    Attributes:
        service: The service it opened for.
        incident_id: Its id.
        opened_s: When it opened (event time).
        resolved_s: When it was resolved (None: not within the data).
        precursor: Whether it came with warning signs (None: the data does not say).
    """

    service: str
    incident_id: str
    opened_s: float
    resolved_s: float | None = None
    precursor: bool | None = None


@dataclass(frozen=True, slots=True)
class RiskEpisodeSpan:
    """One risk episode: its firing alert at ``started_s``, its resolved alert at
    ``resolved_s`` (None: still open at the end of the data)."""

    service: str
    started_s: float
    resolved_s: float | None = None


@dataclass(frozen=True, slots=True)
class AlertQuality:
    """Risk alerts as an operator would count them (see the module docstring)."""

    alerts: int
    service_days: float
    alerts_per_service_day: float | None
    true_alerts: int
    during_incident: int
    precision: float | None
    incidents: int
    incidents_with_precursors: int
    warned_ahead: int
    warned_share: float | None
    all_warned_ahead: int
    median_lead_s: float | None

    def as_dict(self) -> dict[str, Any]:
        """Plain values, in the order of the fields."""
        return {name: getattr(self, name) for name in self.__slots__}


def risk_alert_quality(
    episodes: Iterable[RiskEpisodeSpan],
    incidents: Iterable[IncidentTruth],
    *,
    horizon_s: float,
    service_days: float,
) -> AlertQuality:
    """Score risk episodes against the incidents that followed them.

    Args:
        episodes: Every risk episode (one firing alert each).
        incidents: Every incident opened within the data.
        horizon_s: How far ahead of an opening a firing alert counts as a warning of it.
        service_days: The services times the days the data covers (the rate's denominator).

    Examples:
        >>> episodes = [
        ...     RiskEpisodeSpan("api", 1_000.0, 1_400.0),  # warns i1 (lead 500 s)
        ...     RiskEpisodeSpan("api", 5_000.0, 5_100.0),  # followed by nothing
        ...     RiskEpisodeSpan("db", 2_000.0, 9_000.0),  # i2 opens after the horizon...
        ... ]
        >>> incidents = [
        ...     IncidentTruth("api", "i1", 1_500.0, 2_000.0, precursor=True),
        ...     IncidentTruth("db", "i2", 8_000.0, precursor=True),  # ...still open: warned
        ...     IncidentTruth("db", "i3", 20_000.0, precursor=False),  # not foreseeable
        ... ]
        >>> q = risk_alert_quality(episodes, incidents, horizon_s=900.0, service_days=2.0)
        >>> q.alerts, q.alerts_per_service_day, q.true_alerts, round(q.precision, 3)
        (3, 1.5, 1, 0.333)
        >>> q.incidents_with_precursors, q.warned_ahead, q.warned_share, q.median_lead_s
        (2, 2, 1.0, 3250.0)
    """
    spans = sorted(episodes, key=lambda e: (e.service, e.started_s))
    truth = list(incidents)
    opens: dict[str, list[float]] = defaultdict(list)
    open_spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for incident in truth:
        opens[incident.service].append(incident.opened_s)
        end = incident.resolved_s if incident.resolved_s is not None else float("inf")
        open_spans[incident.service].append((incident.opened_s, end))
    for times in opens.values():
        times.sort()
    true_alerts = during = 0
    for episode in spans:
        times = opens.get(episode.service, [])
        at = bisect.bisect_left(times, episode.started_s)  # the first opening at or after it
        if at < len(times) and times[at] - horizon_s < episode.started_s:
            true_alerts += 1
        elif any(a < episode.started_s <= b for a, b in open_spans.get(episode.service, ())):
            during += 1
    by_service: dict[str, list[RiskEpisodeSpan]] = defaultdict(list)
    for episode in spans:
        by_service[episode.service].append(episode)
    foreseeable = [i for i in truth if i.precursor is not False]
    leads: list[float] = []
    warned = all_warned = 0
    for incident in truth:
        lead = _lead(by_service.get(incident.service, ()), incident.opened_s, horizon_s)
        if lead is None:
            continue
        all_warned += 1
        if incident.precursor is not False:
            warned += 1
            leads.append(lead)
    alerts = len(spans)
    return AlertQuality(
        alerts=alerts,
        service_days=service_days,
        alerts_per_service_day=alerts / service_days if service_days > 0 else None,
        true_alerts=true_alerts,
        during_incident=during,
        precision=true_alerts / alerts if alerts else None,
        incidents=len(truth),
        incidents_with_precursors=len(foreseeable),
        warned_ahead=warned,
        warned_share=warned / len(foreseeable) if foreseeable else None,
        all_warned_ahead=all_warned,
        median_lead_s=statistics.median(leads) if leads else None,
    )


def _lead(episodes: Sequence[RiskEpisodeSpan], opened_s: float, horizon_s: float) -> float | None:
    """The lead of the first episode open at some point of ``(opened - horizon, opened]``."""
    for episode in episodes:  # in order of start
        if episode.started_s > opened_s:
            return None
        if episode.resolved_s is None or episode.resolved_s >= opened_s - horizon_s:
            return opened_s - episode.started_s
    return None
