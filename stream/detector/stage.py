"""What the detector's stages (log, incident risk) share with it."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from stream.kafka.publisher import Ack, Publisher
from stream.kafka.records import DeadLetterer, Pending
from stream.schemas import Alert, with_links
from stream.telemetry import DetectorMetrics

__all__ = ["StageContext"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class StageContext:
    """Where a stage's output goes, what it counts, and where bad records go.

    Attributes:
        publisher: Sends alerts (and dead letters); each send returns an ack to await.
        metrics: The detector's Prometheus metrics.
        counts: The detector's running totals (stages add to ``scored`` and ``alerts``).
        dead_letter: The detector's dead-letter path, for records that do not decode.
        max_message_bytes: Larger records are dead-lettered as ``too_large``.
        already_sent: Whether an alert was sent before a restore from a snapshot (the event
            it points at is being re-read): then it is not sent again.
        too_old: Whether an alert is withheld as too old (``VIGIL_MAX_ALERT_AGE_S``, see
            :mod:`stream.detector.alert_age`): then it is counted, not sent.
    """

    publisher: Publisher
    metrics: DetectorMetrics
    counts: collections.Counter[str]
    dead_letter: DeadLetterer
    max_message_bytes: int
    already_sent: Callable[[Alert], bool] = lambda alert: False
    too_old: Callable[[Alert], bool] = lambda alert: False
    links: Mapping[str, str] = field(default_factory=dict)
    """Link templates every alert sent carries (``runbook``, ``dashboard``)."""

    async def send_alert(self, alert: Alert, **fields: object) -> Ack | None:
        """Send ``alert``; count it (in ``counts``, by kind, source and severity, and by service
        for the services configured: ``VIGIL_METRICS_SERVICES``) and log
        ``alert_published`` with its service and id and ``fields``. Returns the send's ack,
        or None for an alert :attr:`already_sent` or :attr:`too_old` (nothing is sent)."""
        if self.already_sent(alert):
            return None
        if self.too_old(alert):
            self.metrics.alerts_too_old.labels(kind=alert.kind, source=alert.source).inc()
            self.counts["alerts_too_old"] += 1
            log.debug("alert_withheld_too_old", service=alert.service, alert_id=alert.alert_id)
            return None
        ack = await self.publisher.send_alert(with_links(alert, self.links))
        self.counts["alerts"] += 1
        self.metrics.alerts.labels(
            kind=alert.kind, source=alert.source, severity=alert.severity
        ).inc()
        self.metrics.episodes.labels(
            kind=alert.kind, source=alert.source, status=alert.status
        ).inc()
        self.metrics.services.count_alert(alert)
        log.info("alert_published", service=alert.service, alert_id=alert.alert_id, **fields)
        return ack

    async def await_acks(self, pending: Pending) -> None:
        """Wait for every send's acknowledgement (a failed send raises: nothing of the batch
        is committed); observe each record's event-to-alert latency."""
        if not pending:
            return
        try:
            await asyncio.gather(*(ack for ack, _ in pending))
        except Exception:
            self.metrics.kafka_errors.labels(operation="produce").inc()
            raise
        acked_at = time.time()
        histogram = self.metrics.event_to_alert_latency.labels(source="metrics")
        for _, record in pending:
            if record is not None:
                histogram.observe(max(0.0, acked_at - record.timestamp / 1000.0))
