"""The messages of Vigil's external contract (``shared/CONTRACT.md``), as pydantic models.

Unknown fields are ignored, never fatal. Timestamps are RFC 3339 strings or epoch
milliseconds and are held as timezone-aware UTC datetimes.
"""

from __future__ import annotations

import math
import string
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

__all__ = [
    "ALERT_SCHEMA_VERSION",
    "LINK_FIELDS",
    "PROBLEM_SCHEMA_VERSION",
    "Alert",
    "AlertModelInfo",
    "DeadLetter",
    "Evidence",
    "Explanation",
    "Feedback",
    "IncidentEvent",
    "LogEvent",
    "MetricEvent",
    "MetricSample",
    "Problem",
    "ProblemMember",
    "Silence",
    "Suspect",
    "SuspectMetric",
    "TemplateSample",
    "Timestamp",
    "TopFeature",
    "check_link_template",
    "summarize",
    "with_links",
]


def _parse_ts(value: object) -> object:
    """Epoch milliseconds (int or float, not bool) become a UTC datetime; strings pass on."""
    if isinstance(value, bool):
        raise ValueError("timestamp must be RFC 3339 text or epoch milliseconds, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("timestamp must be finite")
        try:
            return datetime.fromtimestamp(value / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"epoch milliseconds out of range: {value}") from exc
    return value


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a timezone (e.g. a trailing Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is out of range in UTC") from None


Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_ts),
    AfterValidator(_require_utc),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            "description": "RFC 3339 with a timezone, or epoch milliseconds",
        }
    ),
]
"""An event time: RFC 3339 with a timezone, or epoch milliseconds; held in UTC."""


def _require_finite(metrics: dict[str, float]) -> dict[str, float]:
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise ValueError(f"metric {name!r} is not a finite number")
    return metrics


ServiceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
MetricValue = StrictFloat | StrictInt


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class MetricEvent(_Event):
    """One sample of a service's telemetry."""

    ts: Timestamp
    service: ServiceName
    metrics: Annotated[
        dict[MetricName, MetricValue], Field(min_length=1), AfterValidator(_require_finite)
    ]
    region: str | None = None
    host: str | None = None
    deploy_recent: bool = False


class MetricSample(Protocol):
    """What the metric pipeline reads from an event: a :class:`MetricEvent`, or the faster
    decoder's record of the same message (``stream.codec.decode_metric``)."""

    @property
    def ts(self) -> datetime: ...

    @property
    def service(self) -> str: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...

    @property
    def deploy_recent(self) -> bool: ...

    @property
    def region(self) -> str | None: ...

    @property
    def host(self) -> str | None: ...


LogLevel = Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]

_LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL"}


def _normalise_level(value: object) -> object:
    if isinstance(value, str):
        upper = value.strip().upper()
        return _LEVEL_ALIASES.get(upper, upper)
    return value


class LogEvent(_Event):
    """One log line, already parsed by the log-processor."""

    ts: Timestamp
    service: ServiceName
    level: Annotated[LogLevel, BeforeValidator(_normalise_level)]
    message: str
    host: str | None = None
    trace_id: str | None = None


class IncidentEvent(_Event):
    """An incident opened or resolved for a service: a label for learning."""

    ts: Timestamp
    incident_id: Annotated[str, StringConstraints(min_length=1)]
    service: ServiceName
    status: Literal["opened", "resolved"]
    severity: str | None = None


class Feedback(_Event):
    """An operator's verdict on an alert."""

    ts: Timestamp
    alert_id: Annotated[str, StringConstraints(min_length=1)]
    verdict: Literal["true_positive", "false_positive", "expected"]
    """``expected``: the alert was right, and the change was meant (a deploy, a
    maintenance): counted, never a label for learning."""
    by: str | None = None
    service: ServiceName | None = None
    """The alert's service (optional): its owner finds the alert's vector among that
    service's alone; without it, among all it holds, by alert id."""


class TopFeature(BaseModel):
    """One feature's part in an alert."""

    name: str
    value: float
    baseline: float
    contribution: float


class TemplateSample(BaseModel):
    """One log template of a window behind a log alert, with one (truncated) sample line."""

    template_id: str
    template: str
    count: int
    sample: str


class Explanation(BaseModel):
    """Why an alert fired."""

    top_features: list[TopFeature]
    missing_features: list[str] = Field(default_factory=list)
    top_templates: list[TemplateSample] = Field(default_factory=list)
    z_scores: dict[str, float] = Field(default_factory=dict)
    """Every metric's robust z at the event that opened the episode (metric anomaly alerts):
    signed, seasonal baseline removed; what root-cause suspects are ranked by."""


class AlertModelInfo(BaseModel):
    """The model that raised an alert."""

    name: str
    version: str


class Evidence(BaseModel):
    """Where the event behind an alert is stored."""

    topic: str
    partition: int
    offset: int


ALERT_SCHEMA_VERSION = 2
"""Alerts since ``summary``, ``labels`` and ``links`` (1: before them)."""


class Alert(BaseModel):
    """What alerting systems subscribe to on ``vigil.alerts``."""

    alert_id: str
    kind: Literal["anomaly", "incident_risk"]
    source: Literal["metrics", "logs"]
    service: str
    event_ts: datetime
    detected_at: datetime
    score: float
    threshold: float
    severity: Literal["warning", "critical"]
    model: AlertModelInfo
    explanation: Explanation
    evidence: Evidence
    threshold_strategy: str | None = None
    """Incident risk: how the threshold was chosen (``recall_at_least``, ``max_f1``,
    ``alert_budget`` or ``override``)."""
    horizon_s: float | None = None
    """Incident risk: the score is the probability of an incident within this many seconds."""
    status: Literal["firing", "resolved"] = "firing"
    """``firing`` opens an episode; ``resolved`` closes it (its ``event_ts`` is the sample
    that ended it). Later samples of an open episode raise no alert of their own."""
    episode_id: str | None = None
    """The episode this alert opens or closes: stable, the same for its firing and resolved
    alerts, so consumers can pair them."""
    started_at: datetime | None = None
    """Event time of the episode's first anomalous sample."""
    summary: str = ""
    """One line a pager can show: what, where, how far off (filled from the other fields
    when not given)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """The labels of the event the evidence points at, where it carried them: ``region``,
    ``host`` and ``deploy_recent: "true"`` on metric alerts (anomaly: the scored event;
    incident risk: the step's last event), ``host`` on log alerts (the window's last line;
    a silent window's, the service's last line before it)."""
    links: dict[str, str] = Field(default_factory=dict)
    """``runbook`` and ``dashboard`` URLs, from the templates configured
    (``VIGIL_ALERT_RUNBOOK_URL``, ``VIGIL_ALERT_DASHBOARD_URL``)."""
    schema_version: int = ALERT_SCHEMA_VERSION
    """2: with ``summary``, ``labels`` and ``links``."""

    @model_validator(mode="after")
    def _summarised(self) -> Alert:
        if not self.summary:
            self.summary = summarize(self)
        return self


PROBLEM_SCHEMA_VERSION = 1
"""The first version of Problem."""


class ProblemMember(BaseModel):
    """One alert episode of a problem (its firing alert; ``status`` follows its resolved one)."""

    alert_id: str
    episode_id: str | None
    kind: Literal["anomaly", "incident_risk"]
    source: Literal["metrics", "logs"]
    service: str
    severity: Literal["warning", "critical"]
    started_at: datetime
    status: Literal["firing", "resolved"]
    summary: str


class SuspectMetric(BaseModel):
    """A metric of a suspect service and its robust z at the service's first alert."""

    name: str
    z: float


class Suspect(BaseModel):
    """A service that may be where a problem started, with why we think so."""

    service: str
    rank: int
    """1: the most likely."""
    reasons: list[str]
    """Human-readable evidence, strongest first."""
    first_seen: datetime
    """Event time of the service's earliest alert episode in the problem."""
    depends_on_it: int
    """Other affected services that depend on it (directly or not) in the topology."""
    deploy_recent: bool
    """One of its alerts came from an event sent with ``deploy_recent``."""
    metrics: list[SuspectMetric] = Field(default_factory=list)
    """Its metrics by |z| (largest first)."""
    templates: list[str] = Field(default_factory=list)
    """Log templates of its log alerts."""


class Problem(BaseModel):
    """Alerts of one failure, grouped: what broke, where it started and why we think so."""

    problem_id: str
    status: Literal["opened", "updated", "resolved"]
    scope: str
    """The value of the scope label the problem belongs to ("" without one)."""
    summary: str
    severity: Literal["warning", "critical"]
    opened_at: datetime
    """Event time of the first member's start."""
    updated_at: datetime
    """Event time of the latest member alert."""
    resolved_at: datetime | None = None
    services: list[str]
    members: list[ProblemMember]
    suspects: list[Suspect]
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels every member shares."""
    silenced: bool = False
    """A silence, maintenance window or recent deploy covers it: recorded, never notified."""
    silenced_by: list[str] = Field(default_factory=list)
    """What silences it: silence ids, ``window:<name>`` or ``deploy:<service>``."""
    revision: int = 1
    """1 for ``opened``, one more for each later message of the problem: a consumer that saw
    a revision already (a replay after a restart) can drop it."""
    schema_version: int = PROBLEM_SCHEMA_VERSION


class Silence(BaseModel):
    """A silence or maintenance window: problems it matches are recorded, never notified.

    Kept in the compacted silences topic keyed by ``silence_id``; a tombstone ends it early.
    Patterns are shell-style (``fnmatch``): ``payments-*``, ``*``.
    """

    silence_id: Annotated[str, StringConstraints(min_length=1)]
    service: Annotated[str, StringConstraints(min_length=1)] = "*"
    """Service pattern a problem's service must match."""
    metric: str | None = None
    """Metric pattern (None: any); a problem matches when one of its anomaly members'
    features does."""
    starts_at: Timestamp
    ends_at: Timestamp
    reason: str = ""
    created_by: str | None = None
    created_at: Timestamp | None = None


class DeadLetter(BaseModel):
    """A message Vigil could not process, with the original bytes and why."""

    topic: str
    partition: int
    offset: int
    key_b64: str | None
    value_b64: str
    value_size: int
    value_truncated: bool = False
    reason: str
    error: str
    failed_at: datetime


def summarize(alert: Alert) -> str:
    """One line for a pager: severity or status, service, what, and the evidence.

    Examples:
        >>> alert = Alert.model_validate({
        ...     "alert_id": "a", "kind": "anomaly", "source": "metrics", "service": "payments",
        ...     "event_ts": "2026-11-23T08:00:00Z", "detected_at": "2026-11-23T08:00:01Z",
        ...     "score": 0.9999, "threshold": 0.999, "severity": "critical",
        ...     "model": {"name": "hst-metrics", "version": "1"},
        ...     "explanation": {"top_features": [
        ...         {"name": "p95", "value": 1830.0, "baseline": 410.2, "contribution": 0.7},
        ...         {"name": "5xx", "value": 12.0, "baseline": 1.0, "contribution": 0.3}]},
        ...     "evidence": {"topic": "vigil.metrics", "partition": 3, "offset": 91822}})
        >>> alert.summary
        '[critical] payments: metrics unusual: p95 1830 (usually 410.2), 5xx 12 (usually 1)'
    """
    what = "incident risk" if alert.kind == "incident_risk" else f"{alert.source} unusual"
    if alert.status == "resolved":
        since = f" since {alert.started_at:%Y-%m-%d %H:%M}Z" if alert.started_at else ""
        return f"[resolved] {alert.service}: {what}{since} is over"
    head = f"[{alert.severity}] {alert.service}: {what}"
    if alert.kind == "incident_risk":
        within = f" within {alert.horizon_s / 60:.0f} min" if alert.horizon_s else ""
        return f"{head}: {alert.score:.0%}{within} (alerts from {alert.threshold:.0%})"
    templates = alert.explanation.top_templates
    if templates:
        top = templates[0]
        return f'{head}: {top.count}x "{_clip(top.template, 80)}"'
    parts = [
        f"{f.name} {f.value:.6g} (usually {f.baseline:.6g})"
        for f in alert.explanation.top_features[:2]
    ]
    return f"{head}: {', '.join(parts)}" if parts else head


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 3] + "..."


LINK_FIELDS = ("service", "kind", "source", "status", "alert_id", "episode_id", "region", "host")
"""What an alert link template may name (``{service}``, ...)."""


def check_link_template(template: str) -> None:
    """Raise ValueError unless ``template`` names only :data:`LINK_FIELDS`.

    Examples:
        >>> check_link_template("https://wiki.example/{service}")
        >>> check_link_template("https://wiki.example/{team}")
        Traceback (most recent call last):
        ...
        ValueError: unknown placeholder {team}: use service, kind, source, status, alert_id, \
episode_id, region, host
    """
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"not a template: {exc}") from None
    for name in names:
        if name not in LINK_FIELDS:
            raise ValueError(f"unknown placeholder {{{name}}}: use {', '.join(LINK_FIELDS)}")


def with_links(alert: Alert, templates: Mapping[str, str]) -> Alert:
    """``alert`` with its ``links`` rendered from ``templates`` (link name -> template; values
    URL-quoted, a label the alert lacks empty); the alert itself when there are none.

    Examples:
        >>> alert = Alert.model_validate({
        ...     "alert_id": "a1", "kind": "anomaly", "source": "logs", "service": "pay ments",
        ...     "event_ts": 0, "detected_at": 0, "score": 1, "threshold": 0.9,
        ...     "severity": "warning", "model": {"name": "m", "version": "1"},
        ...     "explanation": {"top_features": []},
        ...     "evidence": {"topic": "t", "partition": 0, "offset": 1}})
        >>> with_links(alert, {"runbook": "https://wiki/{service}?a={alert_id}"}).links
        {'runbook': 'https://wiki/pay%20ments?a=a1'}
    """
    if not templates:
        return alert
    values = {
        "service": alert.service,
        "kind": alert.kind,
        "source": alert.source,
        "status": alert.status,
        "alert_id": alert.alert_id,
        "episode_id": alert.episode_id or "",
        "region": alert.labels.get("region", ""),
        "host": alert.labels.get("host", ""),
    }
    quoted = {name: urllib.parse.quote(value, safe="") for name, value in values.items()}
    links = {name: template.format_map(quoted) for name, template in templates.items()}
    return alert.model_copy(update={"links": links})
