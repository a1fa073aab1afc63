"""``vigil notify``'s Prometheus metrics (declarations, labels pre-initialised)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from stream.codec import DECODE_REASONS
from stream.core.notifications.policy import SKIP_REASONS

__all__ = ["FAILURE_REASONS", "RETRY_REASONS", "NotifyMetrics"]

FAILURE_REASONS = ("rejected", "retries_exhausted", "unexpected")
"""Why a notification was given up: the sink refused it (a 4xx other than 408/429), it kept
failing for ``notify_retry_max_s``, or building or sending it raised (a bug: logged)."""
RETRY_REASONS = ("http_5xx", "http_429", "http_408", "timeout", "connect", "protocol")
"""Why an attempt is retried (HTTP statuses grouped, so the label stays bounded)."""


class NotifyMetrics:
    """Deliveries, failures, retries and skips per sink; records consumed and dead-lettered.

    Args:
        registry: Where to register.
        sinks: The sink names configured (label values).
        topics: The input topics (label values).
    """

    def __init__(
        self, registry: CollectorRegistry, sinks: Iterable[str], topics: Iterable[str]
    ) -> None:
        sinks, topics = tuple(sinks), tuple(topics)
        self.consumed = Counter(
            "vigil_notify_records_consumed_total",
            "Problem (and alert) records read.",
            ["topic"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "vigil_notify_dead_lettered_total",
            "Records dead-lettered: malformed (decode reasons) or a sink's notification given "
            "up (notify).",
            ["topic", "reason"],
            registry=registry,
        )
        self.delivered = Counter(
            "vigil_notifications_delivered_total",
            "Notifications a sink accepted (re-posts to Alertmanager included).",
            ["sink"],
            registry=registry,
        )
        self.failures = Counter(
            "vigil_notification_failures_total",
            "Notifications given up: refused by the sink or retried too long.",
            ["sink", "reason"],
            registry=registry,
        )
        self.retries = Counter(
            "vigil_notification_retries_total",
            "Delivery attempts that failed and were retried, by why.",
            ["sink", "reason"],
            registry=registry,
        )
        self.skipped = Counter(
            "vigil_notifications_skipped_total",
            "Problem messages not notified to a sink, by why (silenced, no_change, ...).",
            ["sink", "reason"],
            registry=registry,
        )
        self.open_problems = Gauge(
            "vigil_notify_open_problems",
            "Problems notified open to Alertmanager and re-posted until they resolve.",
            registry=registry,
        )
        self.pending = Gauge(
            "vigil_notify_pending_records",
            "Records read whose deliveries are not all settled (their offsets wait).",
            registry=registry,
        )
        self.commit_failures = Counter(
            "vigil_notify_commit_failures_total",
            "Offset commits that failed (retried at the next step).",
            registry=registry,
        )
        for topic in topics:
            self.consumed.labels(topic=topic)
            for reason in (*DECODE_REASONS, "notify"):
                self.dead_lettered.labels(topic=topic, reason=reason)
        for sink in sinks:
            self.delivered.labels(sink=sink)
            for reason in FAILURE_REASONS:
                self.failures.labels(sink=sink, reason=reason)
            for reason in RETRY_REASONS:
                self.retries.labels(sink=sink, reason=reason)
            for reason in SKIP_REASONS:
                self.skipped.labels(sink=sink, reason=reason)


def retry_reason(reason: str) -> str:
    """An attempt's reason as a bounded label (:data:`RETRY_REASONS`).

    Examples:
        >>> retry_reason("http_503"), retry_reason("http_429"), retry_reason("timeout")
        ('http_5xx', 'http_429', 'timeout')
    """
    if reason.startswith("http_5"):
        return "http_5xx"
    return reason if reason in RETRY_REASONS else "protocol"
