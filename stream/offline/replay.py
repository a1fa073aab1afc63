"""``vigil replay``: run a JSONL file through the detector's pure pipeline, no Kafka.

Lines are told apart by their fields (``metrics`` → MetricEvent, ``message`` → LogEvent,
``incident_id`` → IncidentEvent, ``verdict`` → Feedback). Each line is one record at offset
= its 0-based line number; bad lines are reported like dead letters and never stop the run.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from stream.codec import DecodeError, decode_metric, encode, parse_object, validate
from stream.core.incident_risk import IncidentRiskPipeline
from stream.core.logs import LogPipeline
from stream.core.pipeline import MetricPipeline
from stream.core.risk_settings import risk_pipeline
from stream.schemas import (
    Alert,
    Evidence,
    Feedback,
    IncidentEvent,
    LogEvent,
    MetricSample,
    with_links,
)
from stream.settings import Settings

__all__ = ["ReplayStats", "line_kind", "replay", "run_replay"]


def line_kind(raw: bytes) -> str | None:
    """The kind of event a JSONL line holds, by its fields (None if it is not an object).

    Examples:
        >>> line_kind(b'{"service": "api", "metrics": {}}'), line_kind(b'{"verdict": "x"}')
        ('metrics', 'feedback')
    """
    data = parse_object(raw, max_bytes=len(raw) + 1)
    return None if isinstance(data, DecodeError) else _kind_of(data)


def _kind_of(data: dict[str, Any]) -> str:
    for key, kind in (
        ("metrics", "metrics"),
        ("message", "logs"),
        ("incident_id", "incidents"),
        ("verdict", "feedback"),
    ):
        if key in data:
            return kind
    return "unknown"


@dataclass
class ReplayStats:
    """What a replay saw."""

    lines: int = 0
    scored: int = 0
    alerts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    unsupported: Counter[str] = field(default_factory=Counter)
    labels: Counter[str] = field(default_factory=Counter)
    """Incident and feedback lines applied as incident-risk labels."""
    errors: list[str] = field(default_factory=list)


def replay(
    lines: Iterable[bytes],
    pipeline: MetricPipeline,
    *,
    source: str = "replay",
    stats: ReplayStats | None = None,
    max_errors_kept: int = 20,
    batch_size: int = 2000,
    logs: LogPipeline | None = None,
    risk: IncidentRiskPipeline | None = None,
) -> Iterator[Alert]:
    """Feed the lines through ``pipeline`` as the live detector would; yield the alerts.

    Events go through in batches of ``batch_size``, which gives the same alerts as one at a
    time (the models are exact over any batch boundaries). Log lines go to ``logs`` when it is
    given; log windows still open at the end of the input are not scored (live, they close as
    time moves on). With ``risk``, scored metric batches also feed incident risk, and incident
    and feedback lines are its labels, applied where they stand in the file (after the
    metric lines before them).
    """
    replayer = _Replay(
        pipeline,
        source,
        stats if stats is not None else ReplayStats(),
        max_errors_kept,
        batch_size,
        logs,
        risk,
    )
    return replayer.run(lines)


class _Replay:
    """One replay's batches in progress and what it does with each kind of line."""

    def __init__(
        self,
        pipeline: MetricPipeline,
        source: str,
        stats: ReplayStats,
        max_errors_kept: int,
        batch_size: int,
        logs: LogPipeline | None,
        risk: IncidentRiskPipeline | None,
    ) -> None:
        self.pipeline, self.source, self.stats = pipeline, source, stats
        self.max_errors_kept, self.batch_size = max_errors_kept, batch_size
        self.logs, self.risk = logs, risk
        self.events: list[MetricSample] = []
        self.offsets: list[int] = []
        self.log_events: list[LogEvent] = []
        self.log_offsets: list[int] = []

    def run(self, lines: Iterable[bytes]) -> Iterator[Alert]:
        events, offsets, stats = self.events, self.offsets, self.stats
        for offset, raw in enumerate(lines):
            if raw.isspace() or not raw:
                continue
            stats.lines += 1
            event = decode_metric(raw)
            if isinstance(event, DecodeError):
                yield from self._other_line(raw, offset, event)
                continue
            events.append(event)
            offsets.append(offset)
            if len(events) >= self.batch_size:
                yield from self._flush()
        if events:
            yield from self._flush()
        if self.log_events:
            yield from self._flush_logs()

    def _evidence(self, offsets: list[int]) -> Callable[[int], Evidence]:
        return lambda i: Evidence(topic=self.source, partition=0, offset=offsets[i])

    def _flush(self) -> Iterator[Alert]:
        events, risk = self.events, self.risk
        outcome = self.pipeline.process_batch(events, self._evidence(self.offsets))
        self.stats.scored += len(events)
        self.stats.alerts += len(outcome.alerts)
        for _, alert in outcome.alerts:
            yield alert
        if risk is not None:
            risk.remember_alerts(alert for _, alert in outcome.alerts)
            # A step may close in a later batch, and ask then where its last event was.
            evidence = self._evidence(list(self.offsets))
            risk_alerts = risk.on_metrics(events, outcome, evidence).alerts
            risk.advance()
            self.stats.alerts += len(risk_alerts)
            yield from risk_alerts
        events.clear()
        self.offsets.clear()

    def _flush_logs(self) -> Iterator[Alert]:
        assert self.logs is not None
        outcome = self.logs.process_batch(self.log_events, self._evidence(self.log_offsets))
        self.stats.scored += len(self.log_events)
        self.stats.alerts += len(outcome.alerts)
        self.log_events.clear()
        self.log_offsets.clear()
        yield from outcome.alerts

    def _other_line(self, raw: bytes, offset: int, error: DecodeError) -> Iterator[Alert]:
        """A line that is not a metric event: a log line, a label, or a rejection. Only
        these lines pay for telling kinds apart, parsing the line once more."""
        data = parse_object(raw)
        kind = None if isinstance(data, DecodeError) else _kind_of(data)
        if kind == "logs" and self.logs is not None and not isinstance(data, DecodeError):
            log_event = validate(data, LogEvent)
            if not isinstance(log_event, DecodeError):
                self.log_events.append(log_event)
                self.log_offsets.append(offset)
                if len(self.log_events) >= self.batch_size:
                    yield from self._flush_logs()
                return
            error = log_event
        elif (
            kind in ("incidents", "feedback")
            and self.risk is not None
            and not isinstance(data, DecodeError)
        ):
            if self.events:  # the metric lines before it come first
                yield from self._flush()
            label_error = self._apply_label(data, kind)
            if label_error is None:
                return
            error = label_error
        elif kind not in (None, "metrics", "unknown"):
            self.stats.unsupported[kind] += 1
            return
        self.stats.rejected[error.reason] += 1
        if len(self.stats.errors) < self.max_errors_kept:
            self.stats.errors.append(f"line {offset + 1}: {error.reason}: {error.detail}")

    def _apply_label(self, data: dict[str, Any], kind: str) -> DecodeError | None:
        assert self.risk is not None
        if kind == "incidents":
            incident = validate(data, IncidentEvent)
            if isinstance(incident, DecodeError):
                return incident
            self.risk.on_incident(incident)
        else:
            feedback = validate(data, Feedback)
            if isinstance(feedback, DecodeError):
                return feedback
            self.risk.on_feedback(feedback)
        self.stats.labels[kind] += 1
        return None


def run_replay(path: Path, out: Path | None, settings: Settings) -> int:
    """``vigil replay FILE``: alerts as JSONL to ``out`` or stdout, a summary on stderr."""
    if str(path) != "-" and not path.is_file():
        print(f"vigil replay: no such file: {path}", file=sys.stderr)
        return 2
    pipeline = MetricPipeline(settings.anomaly_config())
    logs = LogPipeline(settings.log_config())
    risk = risk_pipeline(settings)
    stats = ReplayStats()
    source = "stdin" if str(path) == "-" else path.name
    with contextlib.ExitStack() as stack:
        lines = sys.stdin.buffer if str(path) == "-" else stack.enter_context(path.open("rb"))
        sink = stack.enter_context(out.open("wb")) if out is not None else sys.stdout.buffer
        links = settings.link_templates()
        alerts = replay(
            lines, pipeline, source=source, stats=stats, logs=logs, risk=risk,
            batch_size=settings.max_batch,
        )  # fmt: skip
        for alert in alerts:
            sink.write(encode(with_links(alert, links)) + b"\n")
    summary = {
        "lines": stats.lines,
        "scored": stats.scored,
        "alerts": stats.alerts,
        "rejected": dict(stats.rejected),
        "unsupported": dict(stats.unsupported),
        "services": len(pipeline),
        "log_services": len(logs),
        "log_windows": logs.windows_total,
        "late_log_lines": logs.late_total,
        "labels": dict(stats.labels),
    }
    if risk is not None:
        summary["incident_risk"] = risk.summaries()
    print(orjson.dumps(summary).decode(), file=sys.stderr)
    for error in stats.errors:
        print(f"vigil replay: {error}", file=sys.stderr)
    return 0
