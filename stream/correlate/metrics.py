"""``vigil correlate``'s Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["CorrelateMetrics"]


class CorrelateMetrics:
    """Alerts routed and read, problems published, restores and snapshots."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.alerts = Counter(
            "vigil_correlate_alerts_total",
            "Alert records handled: routed to their scope's partition, read into problems, or "
            "dead-lettered (malformed).",
            ["outcome"],
            registry=registry,
        )
        self.problems = Counter(
            "vigil_problems_total",
            "Problem messages published, by status.",
            ["status"],
            registry=registry,
        )
        self.silenced = Counter(
            "vigil_problems_silenced_total",
            "Problem messages published silenced (a silence, window or deploy covers them).",
            registry=registry,
        )
        self.open = Gauge(
            "vigil_problems_open", "Problems open in the partitions held.", registry=registry
        )
        self.ticks = Counter(
            "vigil_correlate_ticks_total",
            "Ticks written into the scoped alerts partitions (event time moving while idle).",
            registry=registry,
        )
        self.restored = Counter(
            "vigil_correlate_partitions_restored_total",
            "Scoped alerts partitions taken on (snapshot, then the records after it).",
            registry=registry,
        )
        self.snapshots = Counter(
            "vigil_correlate_snapshots_total",
            "Snapshots of scoped alerts partitions, by outcome (written, failed, rejected).",
            ["outcome"],
            registry=registry,
        )
        self.kafka_errors = Counter(
            "vigil_correlate_kafka_errors",
            "Batches that failed on a Kafka error (broker away, commit refused), each "
            "rewound to the last commit and retried with backoff.",
            registry=registry,
        )
        for outcome in ("routed", "correlated", "dead_letter"):
            self.alerts.labels(outcome=outcome)
        for status in ("opened", "updated", "resolved"):
            self.problems.labels(status=status)
        for outcome in ("written", "failed", "rejected"):
            self.snapshots.labels(outcome=outcome)
