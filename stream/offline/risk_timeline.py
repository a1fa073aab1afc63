"""What incident risk did over a replay, in event time, and its picture (``timeline.png``).

:class:`RiskTrace` is attached to an :class:`~stream.core.incident_risk.IncidentRiskPipeline` and
told of each vector as it is predicted (its probability, made before any learning on it,
and the threshold in force), each risk alert the replay raised and each IncidentEvent. It
only records: the replay's results are the same with it as without.
"""

from __future__ import annotations

import statistics
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from models.incident import IncidentSpan, busiest_services, incident_spans
from models.incident.alert_quality import (
    AlertQuality,
    IncidentTruth,
    RiskEpisodeSpan,
    risk_alert_quality,
)
from stream.core.incident_risk import IncidentRiskPipeline
from stream.offline.figures import new_figure, save_figure
from stream.schemas import Alert, IncidentEvent

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes

__all__ = ["RiskSeries", "RiskTrace", "plot_risk_timeline"]

_FLOOR = 1e-3  # the probability axis is logarithmic, down to this


@dataclass
class RiskSeries:
    """One service's vectors in prediction order: event time, probability, threshold."""

    ts_s: array[float] = field(default_factory=lambda: array("d"))
    probability: array[float] = field(default_factory=lambda: array("d"))
    threshold: array[float] = field(default_factory=lambda: array("d"))


class RiskTrace:
    """Per service, every vector's probability and threshold, the risk alerts and the
    incidents of a replay."""

    def __init__(self) -> None:
        self.series: dict[str, RiskSeries] = defaultdict(RiskSeries)
        self.alerts: dict[str, list[tuple[float, float]]] = defaultdict(list)
        """Service → its firing risk alerts (one per episode) as (event time, probability)."""
        self.ends: dict[str, list[float]] = defaultdict(list)
        """Service → when each of those episodes resolved (``inf``: still open)."""
        self.precursors: dict[str, bool] = {}
        """Incident id → whether it came with warning signs, where the data says so."""
        self.opened: dict[str, tuple[str, float]] = {}
        """Incident id → (service, opening time); a repeated opening is ignored."""
        self.resolved: dict[str, float] = {}
        """Incident id → resolution time."""

    def attach(self, pipeline: IncidentRiskPipeline) -> None:
        """Be told of ``pipeline``'s predictions and incidents (alerts: :meth:`alerted`)."""
        pipeline.on_predicted = self.predicted
        pipeline.on_incident_event = self.incident

    def predicted(self, service: str, ts_s: float, probability: float, threshold: float) -> None:
        """A vector was predicted."""
        series = self.series[service]
        series.ts_s.append(ts_s)
        series.probability.append(probability)
        series.threshold.append(threshold)

    def alerted(self, alert: Alert) -> None:
        """An alert the replay raised (only incident-risk alerts are kept: a firing one opens
        an episode, a resolved one closes the service's open episode)."""
        if alert.kind != "incident_risk":
            return
        if alert.status == "firing":
            self.alerts[alert.service].append((alert.event_ts.timestamp(), alert.score))
            self.ends[alert.service].append(float("inf"))
        elif self.ends[alert.service]:
            self.ends[alert.service][-1] = alert.event_ts.timestamp()

    def incident(self, event: IncidentEvent) -> None:
        """An IncidentEvent was applied."""
        if event.status == "opened":
            self.opened.setdefault(event.incident_id, (event.service, event.ts.timestamp()))
        else:
            self.resolved.setdefault(event.incident_id, event.ts.timestamp())

    def spans(self, horizon_s: float) -> list[IncidentSpan]:
        """Every incident opened, with its resolution and first warning within ``horizon_s``
        (an episode firing in it, or still open when it began)."""
        alert_times = {s: [t for t, _ in alerts] for s, alerts in self.alerts.items()}
        return incident_spans(self.opened, self.resolved, alert_times, horizon_s, self.ends)

    def service_days(self) -> float:
        """The services' spans of event time, in days: the span from each one's first vector
        to its last (plus a step's worth, taken from its median spacing), summed."""
        total = 0.0
        for series in self.series.values():
            ts = np.frombuffer(series.ts_s)
            if ts.size > 1:
                total += float(ts[-1] - ts[0] + np.median(np.diff(ts)))
        return total / 86_400.0

    def quality(self, horizon_s: float) -> AlertQuality:
        """The risk alerts as an operator would count them (see
        :mod:`~models.incident.alert_quality`): per service-day, precision, the incidents
        with precursors warned ahead (all incidents when the data does not say), lead."""
        episodes = [
            RiskEpisodeSpan(service, fired_s, None if end == float("inf") else end)
            for service, alerts in self.alerts.items()
            for (fired_s, _), end in zip(alerts, self.ends[service], strict=True)
        ]
        incidents = [
            IncidentTruth(
                service,
                incident_id,
                opened_s,
                self.resolved.get(incident_id),
                self.precursors.get(incident_id),
            )
            for incident_id, (service, opened_s) in self.opened.items()
        ]
        return risk_alert_quality(
            episodes, incidents, horizon_s=horizon_s, service_days=self.service_days()
        )


def plot_risk_timeline(
    trace: RiskTrace, horizon_s: float, path: Path, max_services: int = 4
) -> None:
    """``timeline.png``: for the services with the most incidents, probability and threshold
    over event time, incidents (open → resolved) and the horizon before each opening shaded,
    risk alerts, and each opening marked as warned ahead (with the lead) or missed."""
    spans = trace.spans(horizon_s)
    services = busiest_services(spans, max_services) or sorted(trace.series)[:max_services]
    starts = [trace.series[s].ts_s[0] for s in services if s in trace.series]
    origin_s = min(starts + [span.opened_s - horizon_s for span in spans], default=0.0)
    figure = new_figure(12.0, 0.6 + 2.3 * len(services))
    axes = figure.subplots(len(services), 1, sharex=True, squeeze=False)[:, 0]
    for ax, service in zip(axes, services, strict=True):
        own = [span for span in spans if span.service == service]
        _draw_service(ax, trace, service, own, origin_s, horizon_s)
    axes[-1].set_xlabel("event time, hours from the start")
    figure.legend(
        handles=_legend_handles(), loc="outside upper center", ncol=4, fontsize=8, frameon=False
    )
    save_figure(figure, path)


def _hours(ts_s: npt.ArrayLike, origin_s: float) -> npt.NDArray[np.float64]:
    return (np.asarray(ts_s, dtype=np.float64) - origin_s) / 3600.0


def _draw_service(
    ax: Axes,
    trace: RiskTrace,
    service: str,
    spans: list[IncidentSpan],
    origin_s: float,
    horizon_s: float,
) -> None:
    series = trace.series.get(service, RiskSeries())
    t = _hours(np.frombuffer(series.ts_s), origin_s)
    end_s = series.ts_s[-1] if series.ts_s else max((s.opened_s for s in spans), default=0.0)
    for span in spans:
        ax.axvspan(*_hours([span.opened_s - horizon_s, span.opened_s], origin_s), **_HORIZON)
        resolved_s = span.resolved_s if span.resolved_s is not None else end_s
        ax.axvspan(*_hours([span.opened_s, resolved_s], origin_s), **_INCIDENT)
        _mark_opening(ax, span, origin_s)
    probability = np.maximum(np.frombuffer(series.probability), _FLOOR)
    ax.plot(t, probability, **_PROBABILITY)
    threshold = np.frombuffer(series.threshold)
    # Until the strategy has labels to tune on, the threshold is ~0: shown on the floor.
    shown = np.maximum(np.where(np.isfinite(threshold), threshold, np.nan), _FLOOR)
    ax.step(t, shown, where="post", **_THRESHOLD)
    alerts = trace.alerts.get(service, [])
    ax.scatter(
        _hours([ts for ts, _ in alerts], origin_s),
        [max(p, _FLOOR) for _, p in alerts],
        **_ALERT,
    )
    ax.set_yscale("log")
    ax.set_ylim(_FLOOR, 1.5)
    ax.set_ylabel(f"P(incident within\n{horizon_s / 60:g} min)", fontsize=8)
    ax.set_title(_title(service, spans, len(alerts)), loc="left", fontsize=9)
    ax.grid(alpha=0.25, which="major")


def _mark_opening(ax: Axes, span: IncidentSpan, origin_s: float) -> None:
    """▼ over the opening: green with the lead in minutes when warned ahead, grey if missed."""
    x = float(_hours(span.opened_s, origin_s))
    transform = ax.get_xaxis_transform()  # x in data, y in axes fraction
    warned = span.lead_s is not None
    ax.scatter([x], [0.93], transform=transform, **(_WARNED if warned else _MISSED))
    if span.lead_s is not None:
        ax.text(
            x,
            0.99,
            f"{span.lead_s / 60:.0f} min",
            transform=transform,
            ha="center",
            va="top",
            fontsize=6,
            color="darkgreen",
        )


def _title(service: str, spans: list[IncidentSpan], alerts: int) -> str:
    leads = [span.lead_s for span in spans if span.lead_s is not None]
    lead = f" (median lead {statistics.median(leads) / 60:.1f} min)" if leads else ""
    return (
        f"{service}: {len(spans)} incidents, {len(leads)} warned ahead{lead}, {alerts} risk alerts"
    )


# Matplotlib styles, shared by the drawing and the legend.
_PROBABILITY: dict[str, Any] = {"lw": 0.6, "color": "tab:blue"}
_THRESHOLD: dict[str, Any] = {"lw": 0.9, "color": "black", "ls": "--"}
_ALERT: dict[str, Any] = {"marker": "o", "s": 16, "color": "tab:red", "zorder": 3}
_INCIDENT: dict[str, Any] = {"color": "tab:red", "alpha": 0.25, "lw": 0}
_HORIZON: dict[str, Any] = {"color": "tab:orange", "alpha": 0.3, "lw": 0}
_WARNED: dict[str, Any] = {"marker": "v", "s": 30, "color": "tab:green", "zorder": 4}
_MISSED: dict[str, Any] = {"marker": "v", "s": 30, "color": "grey", "zorder": 4}


def _legend_handles() -> list[Artist]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def marker(style: dict[str, Any], label: str) -> Line2D:
        return Line2D([], [], ls="", marker=style["marker"], color=style["color"], label=label)

    return [
        Line2D([], [], label="risk probability (predicted before learning)", **_PROBABILITY),
        Line2D([], [], label="threshold in force", **_THRESHOLD),
        marker(_ALERT, "risk alert"),
        Patch(label="incident, open → resolved", **_INCIDENT),
        Patch(label="horizon before the opening", **_HORIZON),
        marker(_WARNED, "opening warned ahead (lead above)"),
        marker(_MISSED, "opening missed"),
    ]
