"""Incidents on a timeline: open to resolved, and whether a risk alert warned ahead (pure).

An incident counts as *warned* as :class:`~models.incident.prequential.PrequentialTracker`
counts it: by the first risk episode of its service open at some point of
``[opened - horizon, opened]`` (its firing alert in that range, or an earlier one not yet
resolved); the lead is the time from that firing alert to the opening.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["IncidentSpan", "busiest_services", "incident_spans"]


@dataclass(frozen=True, slots=True)
class IncidentSpan:
    """One incident of one service, in event-time seconds.

    Attributes:
        service: The service the incident was opened for.
        incident_id: Its id.
        opened_s: When it opened.
        resolved_s: When it was resolved (None: not within the data).
        warned_s: The firing alert of the first risk episode of the service open within the
            horizon before the opening (None: missed).
    """

    service: str
    incident_id: str
    opened_s: float
    resolved_s: float | None
    warned_s: float | None

    @property
    def lead_s(self) -> float | None:
        """How long before the opening the first warning came (None: missed)."""
        return None if self.warned_s is None else self.opened_s - self.warned_s


def incident_spans(
    opened: Mapping[str, tuple[str, float]],
    resolved: Mapping[str, float],
    alerts: Mapping[str, Sequence[float]],
    horizon_s: float,
    alert_ends: Mapping[str, Sequence[float]] | None = None,
) -> list[IncidentSpan]:
    """Every opened incident with its resolution and first warning, in order of opening.

    Args:
        opened: Incident id → (service, opening time).
        resolved: Incident id → resolution time (ids never opened are left out).
        alerts: Service → its firing risk alerts' event times, in increasing order.
        horizon_s: How far ahead of an opening an alert counts as a warning of it.
        alert_ends: Service → when each of those alerts' episode resolved (``inf``: still
            open), in the same order; without it an alert warns only inside the horizon.

    Examples:
        >>> spans = incident_spans(
        ...     {"i1": ("api", 1_000.0), "i2": ("db", 5_000.0)},
        ...     {"i1": 1_600.0},
        ...     {"api": [100.0, 500.0, 900.0], "db": [1_000.0]},
        ...     horizon_s=600.0,
        ... )
        >>> [(s.incident_id, s.resolved_s, s.warned_s, s.lead_s) for s in spans]
        [('i1', 1600.0, 500.0, 500.0), ('i2', None, None, None)]
        >>> (span,) = incident_spans(  # an episode opened at 100 s, resolved at 450 s
        ...     {"i1": ("api", 1_000.0)}, {}, {"api": [100.0]}, 600.0, {"api": [450.0]})
        >>> span.warned_s
        100.0
    """
    spans = []
    for incident_id, (service, opened_s) in opened.items():
        times = alerts.get(service, ())
        warned_s = None
        ends = alert_ends.get(service) if alert_ends is not None else None
        if ends is not None:  # the first episode still open when the horizon began
            for at in range(bisect.bisect_right(times, opened_s)):
                if ends[at] >= opened_s - horizon_s:
                    warned_s = float(times[at])
                    break
        else:
            first = bisect.bisect_left(times, opened_s - horizon_s)
            if first < len(times) and times[first] <= opened_s:
                warned_s = float(times[first])
        spans.append(
            IncidentSpan(
                service=service,
                incident_id=incident_id,
                opened_s=opened_s,
                resolved_s=resolved.get(incident_id),
                warned_s=warned_s,
            )
        )
    spans.sort(key=lambda span: (span.opened_s, span.service, span.incident_id))
    return spans


def busiest_services(spans: Sequence[IncidentSpan], k: int) -> list[str]:
    """The ``k`` services with the most incidents (ties: by name).

    Examples:
        >>> spans = [IncidentSpan(s, s + str(i), 0.0, None, None) for i, s in enumerate("abcb")]
        >>> busiest_services(spans, 2)
        ['b', 'a']
    """
    counts = collections.Counter(span.service for span in spans)
    return sorted(counts, key=lambda service: (-counts[service], service))[:k]
