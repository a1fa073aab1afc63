"""What the demo shows: a live terminal view (rich) on a TTY, plain lines otherwise, and the
closing summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from stream.dev.demo.scoreboard import Verdict
from stream.schemas import Alert

__all__ = [
    "LiveStats",
    "alert_text",
    "dashboard",
    "progress_line",
    "summary_line",
    "summary_table",
    "verdict_text",
]

_STATUS_STYLE = {
    "warned": "bold green",
    "detected": "green",
    "caught": "green",
    "missed": "bold red",
    "open": "yellow",
}
_KIND_LABEL = {"anomaly": "ANOMALY", "incident_risk": "RISK", "logs": "LOG"}


@dataclass
class LiveStats:
    """What the demo last read from the detector and the sidecar."""

    elapsed_s: float = 0.0
    scored: float = 0.0
    scored_per_s: float = 0.0
    lag: float = 0.0
    warm: float = 0.0
    """Share of the anomaly models' warm-up done (events scored per service)."""
    models: list[tuple[str, str, str]] = field(default_factory=list)
    """The sidecar's groups: (kind:group, champion version or "", last decision)."""


def alert_text(alert: Alert) -> str:
    """One line: kind, service, score against threshold, and why (a resolved alert: when
    its episode started)."""
    kind = "logs" if alert.source == "logs" else alert.kind
    if alert.status == "resolved":
        since = f" (since {alert.started_at:%H:%M})" if alert.started_at is not None else ""
        return (
            f"{_KIND_LABEL[kind]:<7} {'resolved':<8} {alert.service} "
            f"{alert.event_ts:%m-%d %H:%M} score {alert.score:.3f}{since}"
        )
    if alert.source == "logs":
        why = "; ".join(f"{t.count}x {t.template[:60]}" for t in alert.explanation.top_templates)
    else:
        why = ", ".join(
            f"{f.name}={f.value:.4g} (baseline {f.baseline:.4g}, {f.contribution:.0%})"
            for f in alert.explanation.top_features[:3]
        )
    return (
        f"{_KIND_LABEL[kind]:<7} {alert.severity:<8} {alert.service} {alert.event_ts:%m-%d %H:%M} "
        f"score {alert.score:.3f} > {alert.threshold:.3f}  {why}"
    )


def verdict_text(verdict: Verdict) -> str:
    """One line: the incident and what became of it."""
    i = verdict.incident
    return (
        f"INCIDENT {i.source:<7} {i.service} {i.cause} {i.start:%m-%d %H:%M}: "
        f"{_verdict_label(verdict)}"
    )


def _verdict_label(verdict: Verdict) -> str:
    if verdict.status == "warned" and verdict.lead_s is not None:
        return f"warned {verdict.lead_s / 60:.0f} min ahead"
    if verdict.status == "detected":
        return "detected while open"
    return verdict.status


def _verdict_cell(verdict: Verdict) -> Text:
    return Text(_verdict_label(verdict), style=_STATUS_STYLE[verdict.status])


def dashboard(
    *,
    header: str,
    stats: LiveStats,
    sent: Mapping[str, int],
    now: datetime,
    figures: Mapping[str, float],
    verdicts: Sequence[Verdict],
    alerts: Iterable[str],
    warmup: RenderableType,
) -> RenderableType:
    """The live view: start-up and warm-up progress, throughput, incidents and alerts."""
    return Group(
        Panel(
            Group(warmup, _numbers(stats, sent, now, figures), _caught(figures)),
            title=header,
            title_align="left",
        ),
        Panel(_incidents_table(verdicts), title="incidents injected, and whether they were caught"),
        Panel(
            Text("\n".join(alerts) or "(none yet)", no_wrap=True, overflow="ellipsis"),
            title="latest alerts, with why",
        ),
        Panel(_models_table(stats), title="sidecar: batch models"),
    )


def _numbers(
    stats: LiveStats, sent: Mapping[str, int], now: datetime, figures: Mapping[str, float]
) -> Table:
    """What was sent and scored, the lag, the alerts by kind, event time and elapsed time."""
    numbers = Table.grid(padding=(0, 3))
    for _ in range(4):
        numbers.add_column()
    numbers.add_row(
        f"[b]{sent.get('metrics', 0):,}[/] metric samples",
        f"[b]{sent.get('logs', 0):,}[/] log lines",
        f"[b]{sent.get('labels', 0):,}[/] incident labels",
        f"event time [b]{now:%Y-%m-%d %H:%M}[/]",
    )
    numbers.add_row(
        f"[b]{stats.scored_per_s:,.0f}[/] events/s scored",
        f"lag [b]{stats.lag:,.0f}[/]",
        f"alerts [b]{figures.get('anomaly_alerts', 0):.0f}[/] anomaly "
        f"({figures.get('anomaly_alerts_in_incidents', 0):.0f} in incidents) · "
        f"[b]{figures.get('risk_alerts', 0):.0f}[/] risk "
        f"({figures.get('risk_alerts_ahead', 0):.0f} ahead of one) · "
        f"[b]{figures.get('log_alerts', 0):.0f}[/] log",
        f"elapsed [b]{stats.elapsed_s:.0f} s[/]",
    )
    return numbers


def _caught(figures: Mapping[str, float]) -> Text:
    """The incidents warned of, detected, missed and open; the log incidents caught."""
    return Text.assemble(
        ("incidents ", ""),
        (f"{figures.get('warned', 0):.0f} warned ahead", _STATUS_STYLE["warned"]),
        (" · ", ""),
        (f"{figures.get('detected', 0):.0f} detected", _STATUS_STYLE["detected"]),
        (" · ", ""),
        (f"{figures.get('missed', 0):.0f} missed", _STATUS_STYLE["missed"]),
        (" · ", ""),
        (f"{figures.get('open', 0):.0f} open", _STATUS_STYLE["open"]),
        ("   log incidents ", ""),
        (f"{figures.get('log_caught', 0):.0f}/{figures.get('log_incidents', 0):.0f} caught", ""),
    )


def _incidents_table(verdicts: Sequence[Verdict]) -> Table:
    """The latest incidents injected, and what Vigil did about each."""
    incidents = Table(expand=True, box=None, header_style="bold")
    for name in ("opened", "service", "incident", "cause", "what Vigil did"):
        incidents.add_column(name, no_wrap=True)
    for verdict in verdicts[-8:]:
        i = verdict.incident
        incidents.add_row(
            f"{i.start:%m-%d %H:%M}",
            i.service,
            "logs" if i.source == "logs" else i.incident_id[:12],
            i.cause,
            _verdict_cell(verdict),
        )
    return incidents


def _models_table(stats: LiveStats) -> Table:
    """The sidecar's model groups: each one's champion and last decision."""
    models = Table(expand=True, box=None, header_style="bold")
    for name in ("model group", "champion", "last decision"):
        models.add_column(name, no_wrap=True)
    for group, champion, decision in stats.models:
        models.add_row(group, champion or "-", decision)
    if not stats.models:
        models.add_row("(the sidecar has not trained yet)", "", "")
    return models


def progress_line(stats: LiveStats, sent: Mapping[str, int], figures: Mapping[str, float]) -> str:
    """The plain-output progress line."""
    return (
        f"progress: {stats.elapsed_s:.0f}s metrics={sent.get('metrics', 0)} "
        f"logs={sent.get('logs', 0)} labels={sent.get('labels', 0)} "
        f"scored={stats.scored:.0f} ({stats.scored_per_s:.0f}/s) lag={stats.lag:.0f} "
        f"warm={stats.warm:.0%} incidents={figures['incidents']:.0f} "
        f"warned={figures['warned']:.0f} detected={figures['detected']:.0f} "
        f"missed={figures['missed']:.0f} log_caught={figures['log_caught']:.0f}/"
        f"{figures['log_incidents']:.0f} models={len(stats.models)}"
    )


def summary_line(figures: Mapping[str, float]) -> str:
    """``summary: key=value ...``: the last line the demo prints, for scripts."""
    return "summary: " + " ".join(
        f"{k}={v:.0f}" if float(v).is_integer() else f"{k}={v:.1f}" for k, v in figures.items()
    )


def summary_table(figures: Mapping[str, float]) -> Table:
    """The closing summary for a person."""
    table = Table(title="vigil demo: summary", show_header=False, box=None, padding=(0, 2))
    table.add_column(justify="right", style="bold")
    table.add_column()
    rows = [
        (
            "events",
            f"{figures['events_sent']:,.0f} metric samples, "
            f"{figures['log_lines_sent']:,.0f} log lines, {figures['labels_sent']:,.0f} labels; "
            f"{figures['events_scored']:,.0f} scored",
        ),
        (
            "alerts",
            f"{figures['alerts']:,.0f}: {figures['anomaly_alerts']:,.0f} anomaly "
            f"({figures['anomaly_alerts_in_incidents']:,.0f} while an incident was open), "
            f"{figures['risk_alerts']:,.0f} incident risk ({figures['risk_alerts_ahead']:,.0f} "
            f"within the horizon before an incident), {figures['log_alerts']:,.0f} log",
        ),
        (
            "incidents",
            f"{figures['incidents']:.0f} injected: {figures['warned']:.0f} warned "
            f"ahead (median lead {figures['median_lead_s'] / 60:.0f} min), "
            f"{figures['detected']:.0f} detected while open, {figures['missed']:.0f} missed, "
            f"{figures['open']:.0f} still open at the stop",
        ),
        (
            "log incidents",
            f"{figures['log_incidents']:.0f} injected: "
            f"{figures['log_caught']:.0f} caught, {figures['log_missed']:.0f} missed",
        ),
        ("models", f"{figures['models_promoted']:.0f} promoted by the sidecar"),
    ]
    for name, text in rows:
        table.add_row(name, text)
    return table
