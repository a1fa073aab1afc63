"""The detector's incident-risk stage: risk alerts after each metric batch; labels from the
incidents topic; operator feedback.

Incident and feedback records come from the detector's own reader of every partition of
those topics (:mod:`stream.kafka.label_reader`): every detector applies every label. Vectors become
negatives only while every incidents partition is read up to its high watermark: an incident
waiting unread in a backlog must not find its vectors already learned as negatives. A record
that does not decode, and feedback on an alert no detector here knows, are dead-lettered and
counted by one detector only (``designated``), not by each.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import structlog
from aiokafka import TopicPartition
from pydantic import BaseModel

from stream.codec import DecodeError, decode
from stream.core.incident_risk import IncidentRiskPipeline, RiskOutcome
from stream.core.logs.outcome import LogBatchOutcome
from stream.core.pipeline import BatchOutcome, EvidenceOf
from stream.detector.stage import StageContext
from stream.kafka.records import Pending, Record
from stream.schemas import Feedback, IncidentEvent, MetricSample

__all__ = ["RiskStage"]

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

_QUALITY_REFRESH_S = 60.0
"""Prequential figures cost ~20 ms per group over 50k labels (measured), on the event loop:
once a minute, not at every lag refresh, so they do not show in the p99 of event->alert."""


class RiskStage:
    """Incident risk in the detector: publish risk alerts, learn from incidents and feedback.

    Args:
        pipeline: The incident-risk pipeline (its models are this detector's); None when
            incident risk is off: feedback is still counted (kind ``unknown``).
        context: Where output goes, what is counted, and the dead-letter path.
    """

    def __init__(
        self,
        pipeline: IncidentRiskPipeline | None,
        context: StageContext,
    ) -> None:
        self.pipeline = pipeline
        self._ctx = context
        self._exported: collections.Counter[str] = collections.Counter()
        self._quality_at = 0.0

    async def after_metrics(
        self, events: Sequence[MetricSample], outcome: BatchOutcome, evidence: EvidenceOf
    ) -> Pending:
        """Fold a scored metric batch in; publish the risk alerts of the steps it closed."""
        if self.pipeline is None:
            return []
        self.pipeline.remember_alerts(alert for _, alert in outcome.alerts)
        return await self._publish(self.pipeline.on_metrics(events, outcome, evidence))

    def after_logs(self, outcome: LogBatchOutcome) -> None:
        """Closed log windows feed the services' next risk vectors."""
        if self.pipeline is None:
            return
        self.pipeline.remember_alerts(outcome.alerts)
        for window in outcome.windows:
            ratio = 0.0 if window.warming_up else window.score / max(window.threshold, 1e-12)
            self.pipeline.on_log_window(window.service, ratio, window.new_error_templates)

    async def handle(
        self,
        batches: Mapping[TopicPartition, Sequence[Record]],
        *,
        incidents_topic: str,
        feedback_topic: str,
        behind: bool,
        designated: Callable[[Record], bool],
    ) -> Pending:
        """Apply incident and feedback records, then let label horizons pass if it is safe.

        Args:
            batches: Label records by partition.
            incidents_topic: The incidents topic.
            feedback_topic: The feedback topic.
            behind: Whether incident records may wait unread (no vector becomes a negative).
            designated: Whether this detector is the one to dead-letter (and count, when no
                detector knows its alert) a record.
        """
        pending: Pending = []
        for tp, records in batches.items():
            if tp.topic == incidents_topic:
                pending.extend(await self._incidents(records, designated))
            elif tp.topic == feedback_topic:
                pending.extend(await self._feedback(records, designated))
        if self.pipeline is None:
            return pending
        self.pipeline.hold_labels = behind
        self.pipeline.advance()
        self._export_counts()
        return pending

    async def _decoded(
        self, records: Sequence[Record], model: type[M], designated: Callable[[Record], bool]
    ) -> tuple[list[tuple[Record, M]], Pending]:
        """The records that decode as ``model``; the others are dead-lettered (here if this
        detector is the designated one)."""
        decoded: list[tuple[Record, M]] = []
        pending: Pending = []
        for record in records:
            message = decode(record.value, model, self._ctx.max_message_bytes)
            if isinstance(message, DecodeError):
                if designated(record):
                    pending.append((await self._ctx.dead_letter(record, message), None))
            else:
                decoded.append((record, message))
        return decoded, pending

    async def _incidents(
        self, records: Sequence[Record], designated: Callable[[Record], bool]
    ) -> Pending:
        events, pending = await self._decoded(records, IncidentEvent, designated)
        for _, event in events:
            self._ctx.metrics.risk.incidents.labels(status=event.status).inc()
            log.info(
                "incident_received",
                service=event.service,
                incident_id=event.incident_id,
                status=event.status,
                ts=event.ts.isoformat(),
            )
            if self.pipeline is not None:
                self.pipeline.on_incident(event)
        return pending

    async def _feedback(
        self, records: Sequence[Record], designated: Callable[[Record], bool]
    ) -> Pending:
        messages, pending = await self._decoded(records, Feedback, designated)
        for record, feedback in messages:
            kind = "unknown" if self.pipeline is None else self.pipeline.on_feedback(feedback)
            # Every detector reads every verdict: the one that raised the alert counts it by
            # kind; one that knows no such alert counts it only if designated.
            if kind != "unknown" or designated(record):
                self._ctx.metrics.risk.feedback.labels(verdict=feedback.verdict, kind=kind).inc()
        return pending

    def _export_counts(self) -> None:
        """Labelling outcomes, counted by the labeler, as counter increments."""
        assert self.pipeline is not None
        counts = self.pipeline.labeler.counts
        for outcome, total in counts.items():
            delta = total - self._exported[outcome]
            if delta > 0:
                self._ctx.metrics.risk.labels.labels(outcome=outcome).inc(delta)
                self._exported[outcome] = total

    async def _publish(self, outcome: RiskOutcome) -> Pending:
        risk = self._ctx.metrics.risk
        if outcome.vectors:
            risk.vectors.inc(outcome.vectors)
            for probabilities in outcome.probabilities:
                risk.probabilities.observe_many(probabilities)
        if outcome.suppressed:
            self._ctx.metrics.alerts_suppressed.labels(kind="incident_risk", source="metrics").inc(
                outcome.suppressed
            )
        pending: Pending = []
        for alert in outcome.alerts:
            ack = await self._ctx.send_alert(
                alert,
                kind="incident_risk",
                probability=alert.score,
                threshold=alert.threshold,
                strategy=alert.threshold_strategy,
                status=alert.status,
                episode_id=alert.episode_id,
            )
            if ack is not None:
                pending.append((ack, None))
                if alert.status == "firing":  # an episode opened (a resolved one closes it)
                    self._ctx.counts["risk_alerts"] += 1
        return pending

    def refresh_gauges(self) -> None:
        """Quality gauges cost a pass over recent labels: refreshed once a minute."""
        now = time.monotonic()
        if self.pipeline is None or now - self._quality_at < _QUALITY_REFRESH_S:
            return
        self._quality_at = now
        risk = self._ctx.metrics.risk
        described = self.pipeline.describe()
        risk.buffer_bytes.set(described["buffer_bytes"])
        for group, view in described["groups"].items():
            risk.set_quality(group, view["prequential"])
            if view["threshold"] is not None:
                risk.threshold.labels(group=group, strategy=view["strategy"]).set(view["threshold"])
