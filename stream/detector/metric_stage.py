"""The detector's metric stage: metric records -> MetricPipeline -> alerts, then incident risk.

The detector hands over the metric records of a fetch; this stage decodes them (a record that
does not decode is dead-lettered), scores the batch, publishes its alerts and feeds the scored
batch to the incident-risk stage. A failure inside the batch's scoring is narrowed down event
by event, so one bad event is dead-lettered and the rest are scored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import structlog

from stream.codec import DecodeError, decode_metric
from stream.core.pipeline import BatchOutcome, MetricPipeline
from stream.detector.http import ScoreResult
from stream.detector.risk_stage import RiskStage
from stream.detector.stage import StageContext
from stream.kafka.records import Pending, Record, evidence_of
from stream.schemas import Evidence, MetricEvent, MetricSample

__all__ = ["MetricStage"]

log = structlog.get_logger(__name__)


class MetricStage:
    """Metric records of one detector: decode, score, publish, and on to incident risk.

    Args:
        pipeline: The metric pipeline (its models are this detector's).
        context: Where output goes, what is counted, and the dead-letter path.
        risk: The incident-risk stage, fed every scored batch.
    """

    def __init__(self, pipeline: MetricPipeline, context: StageContext, risk: RiskStage) -> None:
        self.pipeline = pipeline
        self._ctx = context
        self._risk_stage = risk

    async def handle(self, records: list[Record]) -> tuple[Pending, tuple[list[str], list[Record]]]:
        """Decode and score metric records; return the acks to await, and the services
        scored with the records they came in."""
        pending: Pending = []
        events: list[MetricSample] = []
        sources: list[Record] = []
        for record in records:
            event = decode_metric(record.value, self._ctx.max_message_bytes)
            if isinstance(event, DecodeError):
                pending.append((await self._ctx.dead_letter(record, event), None))
            else:
                events.append(event)
                sources.append(record)
        scored = ([e.service for e in events], sources)
        if not events:
            return pending, scored
        started = time.perf_counter()
        try:
            outcome = self.pipeline.process_batch(events, lambda i: evidence_of(sources[i]))
        except Exception:
            # A bug in per-batch work must not stop the loop: find the events that cause it.
            log.exception("batch_failed", size=len(events))
            return pending + await self._handle_one_by_one(events, sources), scored
        self._ctx.metrics.scoring_latency.labels(source="metrics").observe(
            time.perf_counter() - started
        )
        pending.extend(await self._publish(outcome, sources))
        pending.extend(await self._risk(events, outcome, sources))
        return pending, scored

    async def _risk(
        self, events: Sequence[MetricSample], outcome: BatchOutcome, sources: Sequence[Record]
    ) -> Pending:
        """Incident risk over a scored batch; a failure there costs risk alerts, not anomalies."""
        try:
            return await self._risk_stage.after_metrics(
                events, outcome, lambda i: evidence_of(sources[i])
            )
        except Exception:
            self._ctx.metrics.risk.failures.inc()
            log.exception("risk_batch_failed", size=len(events))
            return []

    async def _handle_one_by_one(
        self, events: list[MetricSample], sources: list[Record]
    ) -> Pending:
        pending: Pending = []
        for event, record in zip(events, sources, strict=True):
            try:
                outcome = self.pipeline.process_batch([event], [evidence_of(record)].__getitem__)
            except Exception as exc:
                log.exception(
                    "message_failed",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
                error = DecodeError("unexpected", f"{type(exc).__name__}: {exc}")
                pending.append((await self._ctx.dead_letter(record, error), None))
                continue
            pending.extend(await self._publish(outcome, [record]))
            pending.extend(await self._risk([event], outcome, [record]))
        return pending

    async def _publish(self, outcome: BatchOutcome, sources: list[Record]) -> Pending:
        scored = len(sources)
        self._ctx.metrics.events_scored.labels(source="metrics").inc(scored)
        self._ctx.counts["scored"] += scored
        # One pair per service of the batch (nothing at all unless VIGIL_METRICS_SERVICES).
        self._ctx.metrics.services.count_events(
            ((rows.service, len(rows.indices)) for rows in outcome.by_service), "metrics"
        )
        self._ctx.metrics.anomaly_scores.labels(source="metrics").observe_many(
            outcome.scores[~outcome.warming_up]
        )
        if outcome.missing_features:
            self._ctx.metrics.missing_features.labels(source="metrics").inc(
                outcome.missing_features
            )
        for service, new in outcome.grown:
            self._ctx.metrics.feature_set_changes.labels(source="metrics").inc()
            log.info("feature_set_grew", service=service, new=list(new))
        suppressed = int(outcome.suppressed.sum())
        if suppressed:
            self._ctx.metrics.alerts_suppressed.labels(kind="anomaly", source="metrics").inc(
                suppressed
            )
        pending: Pending = []
        for index, alert in outcome.alerts:
            record = sources[index]
            ack = await self._ctx.send_alert(
                alert, score=alert.score, partition=record.partition, offset=record.offset
            )
            if ack is not None:
                pending.append((ack, record))
        return pending

    def score(
        self, events: list[MetricEvent], positions: Sequence[int] | None = None
    ) -> list[ScoreResult]:
        """Score events without learning (``POST /score``); an alert's evidence offset is
        its event's place in the request, ``positions[i]`` (default ``i``)."""
        places = positions if positions is not None else range(len(events))
        outcome = self.pipeline.process_batch(
            events, lambda i: Evidence(topic="http", partition=0, offset=places[i]), learn=False
        )
        alerts = dict(outcome.alerts)
        return [
            ScoreResult(
                service=event.service,
                score=float(outcome.scores[i]),
                threshold=(
                    float(outcome.thresholds[i]) if math.isfinite(outcome.thresholds[i]) else None
                ),
                warming_up=bool(outcome.warming_up[i]),
                would_alert=i in alerts,
                alert=alerts.get(i),
            )
            for i, event in enumerate(events)
        ]
