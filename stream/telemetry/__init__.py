"""Prometheus metrics (registered on a registry passed in) and structlog configuration."""

from __future__ import annotations

import logging
import sys
import typing
from collections.abc import Iterable
from typing import Any, Literal

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from models.snapshot import RejectReason
from stream.codec import DECODE_REASONS
from stream.kafka.kafka_logs import KafkaLogFilter
from stream.telemetry.bulk_histogram import BulkHistogram
from stream.telemetry.service_series import ServiceSeries

__all__ = [
    "ChampionMetrics",
    "DetectorMetrics",
    "LogMetrics",
    "RiskMetrics",
    "ServiceSeries",
    "SnapshotMetrics",
    "configure_logging",
]

_LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_SCORING_BUCKETS_S = (
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.05,
)
_SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
"""Anomaly scores lie in [0, 1): usual ones near 0.3-0.5, thresholds (a high quantile) above
0.55 (measured on the simulator's services)."""
_PROBABILITY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
)
"""Incident-risk probabilities are calibrated: most near the base rate (a few %), thresholds
from a few % to a few tenths."""
SOURCES = ("metrics", "logs")
KINDS = ("anomaly", "incident_risk")


class DetectorMetrics:
    """The detector's Prometheus metrics, labels pre-initialised.

    Args:
        registry: Where to register (tests pass a fresh one; nothing global is touched).
        topics: The input topics (label values).
        service_pattern: The services that get per-service series (``VIGIL_METRICS_SERVICES``,
            see :class:`~stream.telemetry.service_series.ServiceSeries`); None: none.
        max_services: At most this many services get their own series.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        topics: Iterable[str],
        *,
        service_pattern: str | None = None,
        max_services: int = 200,
    ) -> None:
        topics = tuple(topics)
        self.services = ServiceSeries(registry, service_pattern, max_services)
        self.events_consumed = Counter(
            "vigil_events_consumed_total",
            "Events read from input topics.",
            ["topic"],
            registry=registry,
        )
        self.events_scored = Counter(
            "vigil_events_scored_total",
            "Events scored by a model.",
            ["source"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "vigil_events_dead_lettered_total",
            "Events sent to the dead-letter topic.",
            ["topic", "reason"],
            registry=registry,
        )
        self.alerts = Counter(
            "vigil_alerts_total",
            "Alerts published.",
            ["kind", "source", "severity"],
            registry=registry,
        )
        self.alerts_suppressed = Counter(
            "vigil_alerts_suppressed_total",
            "Anomalous samples not alerted: their service's episode was already open.",
            ["kind", "source"],
            registry=registry,
        )
        self.alerts_too_old = Counter(
            "vigil_alerts_too_old_total",
            "Alerts withheld, their event older than VIGIL_MAX_ALERT_AGE_S (and the resolved "
            "alerts of their episodes); the events were learned from.",
            ["kind", "source"],
            registry=registry,
        )
        self.episodes = Counter(
            "vigil_episodes_total",
            "Alerts by episode status: firing ones open an episode, resolved ones close it.",
            ["kind", "source", "status"],
            registry=registry,
        )
        self.budget = Gauge(
            "vigil_anomaly_budget_per_service_day",
            "The anomaly alert budget: false episodes a service may open per day.",
            ["source"],
            registry=registry,
        )
        self.realised = Gauge(
            "vigil_anomaly_episodes_per_service_day",
            "Anomaly episodes opened per service-day of event time, over the services held.",
            ["source"],
            registry=registry,
        )
        self.feature_set_changes = Counter(
            "vigil_feature_set_changes_total",
            "Times a service's feature set grew and a model over the new set started learning.",
            ["source"],
            registry=registry,
        )
        self.missing_features = Counter(
            "vigil_missing_features_total",
            "Known features absent from an event (imputed at their baseline).",
            ["source"],
            registry=registry,
        )
        self.scoring_latency = Histogram(
            "vigil_scoring_latency_seconds",
            "Time to score and learn one event.",
            ["source"],
            buckets=_SCORING_BUCKETS_S,
            registry=registry,
        )
        self.event_to_alert_latency = Histogram(
            "vigil_event_to_alert_latency_seconds",
            "From an event's Kafka timestamp to the broker acknowledging its alert.",
            ["source"],
            buckets=_LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.anomaly_scores = BulkHistogram(
            "vigil_anomaly_score",
            "Anomaly scores of metric events and log windows past their model's warm-up "
            "(those held to the alert threshold), by source.",
            _SCORE_BUCKETS,
            labelnames=("source",),
            registry=registry,
        )
        self.batch_size = Histogram(
            "vigil_batch_size_events",
            "Records per fetched batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "vigil_consumer_lag_messages",
            "Messages behind the partition's high watermark.",
            ["topic", "partition"],
            registry=registry,
        )
        self.models_held = Gauge(
            "vigil_models_held",
            "Per-service models held in memory.",
            ["source"],
            registry=registry,
        )
        self.model_info = Gauge(
            "vigil_model_info",
            "The model in use (value 1), by name, engine and version.",
            ["name", "engine", "version"],
            registry=registry,
        )
        self.commits = Counter(
            "vigil_offset_commits_total",
            "Offset commits after acknowledged output.",
            registry=registry,
        )
        self.kafka_errors = Counter(
            "vigil_kafka_errors_total",
            "Kafka errors by operation.",
            ["operation"],
            registry=registry,
        )
        self.training_rows = Counter(
            "vigil_training_rows_total",
            "Feature rows published to the features topic for the sidecar.",
            registry=registry,
        )
        self.training_send_failures = Counter(
            "vigil_training_send_failures_total",
            "Messages of feature rows that could not be sent (training data is best effort).",
            registry=registry,
        )
        self.logs = LogMetrics(registry)
        self.risk = RiskMetrics(registry)
        self.snapshots = SnapshotMetrics(registry)
        self.champions = ChampionMetrics(registry)
        for topic in topics:
            self.events_consumed.labels(topic=topic)
            for reason in DECODE_REASONS:
                self.dead_lettered.labels(topic=topic, reason=reason)
        for source in SOURCES:
            self.events_scored.labels(source=source)
            self.feature_set_changes.labels(source=source)
            self.missing_features.labels(source=source)
            self.scoring_latency.labels(source=source)
            self.event_to_alert_latency.labels(source=source)
            self.anomaly_scores.labels(source=source)
            self.models_held.labels(source=source)
            self.budget.labels(source=source)
            self.realised.labels(source=source)
            for kind in KINDS:
                self.alerts_suppressed.labels(kind=kind, source=source)
                self.alerts_too_old.labels(kind=kind, source=source)
                for status in ("firing", "resolved"):
                    self.episodes.labels(kind=kind, source=source, status=status)
                for severity in ("warning", "critical"):
                    self.alerts.labels(kind=kind, source=source, severity=severity)
        for operation in ("fetch", "produce", "commit"):
            self.kafka_errors.labels(operation=operation)


class ChampionMetrics:
    """The sidecar's champions as a detector follows them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.loads = Counter(
            "vigil_champion_loads_total",
            "Champions and challengers announced on the models topic, by outcome (loaded, failed).",
            ["outcome"],
            registry=registry,
        )
        self.info = Gauge(
            "vigil_champion_info",
            "The champion in use per kind and model group (value 1; its version as a label).",
            ["kind", "group", "version"],
            registry=registry,
        )
        self.shadow = Counter(
            "vigil_shadow_vectors_total",
            "Labelled incident-risk vectors scored in shadow while a challenger is announced, "
            "by model group, role (champion, challenger) and outcome at the model's own "
            "threshold (tp, fp, fn, tn): neither alerts on them.",
            ["group", "role", "outcome"],
            registry=registry,
        )
        for outcome in ("loaded", "failed"):
            self.loads.labels(outcome=outcome)


class SnapshotMetrics:
    """Snapshots of partition state: written, restored, refused, and how old the newest is."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = Counter(
            "vigil_snapshots_written_total", "Partition snapshots written.", registry=registry
        )
        self.write_failures = Counter(
            "vigil_snapshot_write_failures_total",
            "Snapshot writes that failed (the previous snapshot stays the newest).",
            registry=registry,
        )
        self.restored = Counter(
            "vigil_snapshots_restored_total",
            "Partitions whose state was restored from a snapshot on assignment.",
            registry=registry,
        )
        self.rejected = Counter(
            "vigil_snapshots_rejected_total",
            "Snapshots refused on restore (the one before was tried next), by reason.",
            ["reason"],
            registry=registry,
        )
        self.replayed = Counter(
            "vigil_snapshot_replayed_events_total",
            "Events re-read after a restore, between the snapshot and the committed offset: "
            "learned again, their alerts not sent twice.",
            registry=registry,
        )
        self.bytes = Gauge(
            "vigil_snapshot_bytes", "Size of the last snapshot written.", registry=registry
        )
        self.write_seconds = Histogram(
            "vigil_snapshot_write_seconds",
            "Time to encode and store one partition's snapshot.",
            buckets=_LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.restore_seconds = Histogram(
            "vigil_snapshot_restore_seconds",
            "Time to find, check and load one partition's snapshot.",
            buckets=_LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.age = Gauge(
            "vigil_snapshot_age_seconds",
            "Age of the oldest newest-snapshot among the partitions this detector owns.",
            registry=registry,
        )
        for reason in typing.get_args(RejectReason):
            self.rejected.labels(reason=reason)


class LogMetrics:
    """What the log pipeline does between lines and alerts: windows, templates, lateness."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.late_lines = Counter(
            "vigil_log_lines_late_total",
            "Log lines later than the allowed lateness: their window had closed; in no window.",
            registry=registry,
        )
        self.truncated = Counter(
            "vigil_log_messages_truncated_total",
            "Log messages longer than the limit, cut to it before templating.",
            registry=registry,
        )
        self.windows = Counter(
            "vigil_log_windows_closed_total",
            "Log windows closed and scored, by whether the service logged nothing in them.",
            ["empty"],
            registry=registry,
        )
        self.templates_new = Counter(
            "vigil_log_templates_new_total",
            "Log templates a service had never seen.",
            registry=registry,
        )
        self.templates_evicted = Counter(
            "vigil_log_templates_evicted_total",
            "Log templates evicted at the per-service cap (least recently matched first).",
            registry=registry,
        )
        self.watermark = Gauge(
            "vigil_log_watermark_timestamp_seconds",
            "Event time below which log windows are closed (Unix seconds).",
            registry=registry,
        )
        self.open_windows = Gauge(
            "vigil_log_open_windows",
            "Log windows open (holding lines, not yet closed by the watermark).",
            registry=registry,
        )
        self.commit_holds = Gauge(
            "vigil_log_commit_holds",
            "Open windows holding a log partition's committed offset back to their first line.",
            registry=registry,
        )
        for empty in ("true", "false"):
            self.windows.labels(empty=empty)


LABEL_OUTCOMES = (
    "positive",
    "negative",
    "feedback",
    "late",
    "duplicate",
    "unknown_service",
    "resolved_before_opened",
    "during_incident",
    "evicted",
)
FEEDBACK_KINDS = ("anomaly", "incident_risk", "unknown")
QUALITY_FIGURES = (
    ("pr_auc", "vigil_incident_pr_auc", "Prequential PR-AUC of incident-risk predictions."),
    ("brier", "vigil_incident_brier", "Prequential Brier score of incident-risk probabilities."),
    (
        "recall_at_threshold",
        "vigil_incident_recall",
        "Prequential recall of incident-risk vectors at the threshold in force.",
    ),
    (
        "precision_at_threshold",
        "vigil_incident_precision",
        "Prequential precision of incident-risk vectors at the threshold in force.",
    ),
    ("alerts_per_day", "vigil_incident_alerts_per_day", "Incident-risk alerts per day."),
    (
        "median_lead_time_s",
        "vigil_incident_lead_time_seconds",
        "Median time from the first risk alert to the incident opening (caught incidents).",
    ),
    ("base_rate", "vigil_incident_base_rate", "Share of labelled risk vectors that were positive."),
)


class RiskMetrics:
    """Incident risk: vectors, labels by outcome, feedback, and prequential quality per group.

    Groups come from configuration (``VIGIL_INCIDENT_GROUP_PATTERN``), so they are bounded.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.metrics_paused = Counter(
            "vigil_risk_metrics_paused_total",
            "Times metrics partitions were paused for the incidents topic to catch up (labels "
            "first: vectors would otherwise wait for them past their buffer).",
            registry=registry,
        )
        self.metrics_held_back = Counter(
            "vigil_risk_metrics_held_back_total",
            "Metric records fetched while incidents waited unread, not processed and fetched "
            "again (VIGIL_INCIDENT_STATE=partition: no vector before its labels).",
            registry=registry,
        )
        self.vectors = Counter(
            "vigil_incident_vectors_total",
            "Risk vectors predicted (one per service per step of event time).",
            registry=registry,
        )
        self.labels = Counter(
            "vigil_incident_labels_total",
            "Incident-risk labelling outcomes: vectors learned as positive/negative/feedback, "
            "and incident events that were late, duplicate, for unknown services, ...",
            ["outcome"],
            registry=registry,
        )
        self.feedback = Counter(
            "vigil_feedback_total",
            "Operator feedback received, by verdict and the kind of alert it was about.",
            ["verdict", "kind"],
            registry=registry,
        )
        self.incidents = Counter(
            "vigil_incident_events_total",
            "Incident events received, by status.",
            ["status"],
            registry=registry,
        )
        self.failures = Counter(
            "vigil_incident_risk_failures_total",
            "Metric batches whose incident-risk step failed (logged; anomaly alerts unaffected).",
            registry=registry,
        )
        self.buffer_bytes = Gauge(
            "vigil_incident_buffer_bytes",
            "Memory held by risk vectors waiting for their label.",
            registry=registry,
        )
        self.probabilities = BulkHistogram(
            "vigil_incident_probability",
            "Incident-risk probability of every risk vector, from the group's online model.",
            _PROBABILITY_BUCKETS,
            registry=registry,
        )
        self.threshold = Gauge(
            "vigil_incident_threshold",
            "Incident-risk probability threshold in force, by group and strategy.",
            ["group", "strategy"],
            registry=registry,
        )
        self.quality = {
            key: Gauge(name, doc, ["group"], registry=registry)
            for key, name, doc in QUALITY_FIGURES
        }
        for outcome in LABEL_OUTCOMES:
            self.labels.labels(outcome=outcome)
        for verdict in ("true_positive", "false_positive", "expected"):
            for kind in FEEDBACK_KINDS:
                self.feedback.labels(verdict=verdict, kind=kind)
        for status in ("opened", "resolved"):
            self.incidents.labels(status=status)

    def set_quality(self, group: str, summary: dict[str, Any]) -> None:
        """Export one group's prequential summary (figures not known yet are left out)."""
        for key, gauge in self.quality.items():
            value = summary.get(key)
            if isinstance(value, int | float):
                gauge.labels(group=group).set(float(value))


def _decode_bytes(renderer: structlog.typing.Processor) -> structlog.typing.Processor:
    """The stdlib formatter needs text; orjson renders bytes."""

    def render(logger: Any, name: str, event: Any) -> Any:
        out = renderer(logger, name, event)
        return out.decode() if isinstance(out, bytes) else out

    return render


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> KafkaLogFilter:
    """Configure structlog: JSON lines (orjson) in production, a console renderer on a TTY.
    The Kafka client's lines go through a :class:`~stream.kafka.kafka_logs.KafkaLogFilter`
    (returned: it also tells whether Kafka is reachable)."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor
    if use_console:
        renderer = structlog.dev.ConsoleRenderer()
        factory: Any = structlog.PrintLoggerFactory(sys.stderr)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(sys.stderr.buffer)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Libraries (aiokafka, uvicorn) log through the standard library: same format, same stream.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _decode_bytes(renderer),
            ],
        )
    )
    kafka_logs = KafkaLogFilter()
    handler.addFilter(kafka_logs)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(logging.getLevelName(level), logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    return kafka_logs
