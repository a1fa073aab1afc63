"""The detector's parts, built from the settings: who makes what, and who gets what.

Every part gets what it needs through its constructor; nothing calls back into the
detector, which conducts them (:mod:`stream.detector.detector`).
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from stream.core.logs import LogPipeline
from stream.core.logs.offsets import OpenWindowOffsets
from stream.core.pipeline import Clock, MetricPipeline
from stream.core.risk_settings import risk_pipeline
from stream.detector.alert_age import AlertAgeGate
from stream.detector.champions import ChampionWatcher, artifact_store
from stream.detector.dead_letters import DeadLetters
from stream.detector.http import HttpGuard
from stream.detector.label_gate import LabelGate
from stream.detector.log_stage import LogModels, LogStage
from stream.detector.metric_stage import MetricStage
from stream.detector.partition_models import MetricModels, PartitionModels
from stream.detector.positions import Positions
from stream.detector.rebalance import PartitionSnapshots
from stream.detector.risk_stage import RiskStage
from stream.detector.snapshots import SnapshotStore
from stream.detector.stage import StageContext
from stream.detector.training_feed import TrainingFeed
from stream.kafka.kafka_logs import KafkaLogCollector, KafkaLogFilter
from stream.kafka.kafka_options import kafka_options
from stream.kafka.label_reader import LabelReader
from stream.kafka.publisher import Publisher
from stream.kafka.transactions import TransactionalPublisher
from stream.settings import Settings
from stream.telemetry import DetectorMetrics

__all__ = ["DetectorParts", "build_parts", "group_topics", "input_topics"]


def group_topics(settings: Settings) -> list[str]:
    """The topics the group deals out: a service's partition is its owner's."""
    return [settings.topic_metrics, settings.topic_logs]


def input_topics(settings: Settings) -> list[str]:
    """Every topic a detector reads (the label topics outside the group)."""
    topics = [settings.topic_metrics, settings.topic_logs, settings.topic_feedback]
    if settings.incident_risk:
        topics.append(settings.topic_incidents)
    return topics


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorParts:
    """A detector's parts (see :func:`build_parts`)."""

    settings: Settings
    registry: CollectorRegistry
    metrics: DetectorMetrics
    kafka_logs: KafkaLogFilter
    counts: collections.Counter[str]
    """Running totals of this process: consumed, scored, dead_lettered, alerts,
    alerts_too_old."""
    pipeline: MetricPipeline
    publisher: Publisher
    transactions: TransactionalPublisher | None
    """The exactly-once output path (None: at least once); the publisher when set."""
    champions: ChampionWatcher
    training: TrainingFeed
    stages: StageContext
    risk: RiskStage
    metric_stage: MetricStage
    logs: LogStage
    snapshots: PartitionSnapshots | None
    """Snapshots of the metrics partitions' state (None when snapshots are off)."""
    log_snapshots: PartitionSnapshots | None
    """Snapshots of the logs partitions' state."""
    positions: Positions
    label_reader: LabelReader
    """Every partition of the incidents and feedback topics, outside the group."""
    label_gate: LabelGate
    """Metrics wait while incident labels are unread."""
    http_guard: HttpGuard

    def describe(self) -> dict[str, Any]:
        """Models, versions and thresholds for ``GET /models``."""
        models = {"metrics": self.pipeline.describe(), "logs": self.logs.pipeline.describe()}
        if self.risk.pipeline is not None:
            models["incident_risk"] = self.risk.pipeline.describe()
        if self.snapshots is not None:
            models["snapshots"] = self.snapshots.describe()
        if self.log_snapshots is not None:
            models["log_snapshots"] = self.log_snapshots.describe()
        models["champions"] = {
            "scorer": self.settings.incident_scorer,
            "loaded": self.champions.describe(),
            "in_shadow": self.champions.describe_challengers(),
        }
        return models


def build_parts(
    settings: Settings,
    *,
    registry: CollectorRegistry,
    clock: Clock,
    kafka_logs: KafkaLogFilter,
) -> DetectorParts:
    """Build a detector's parts: nothing connects until they are started."""
    metrics = DetectorMetrics(
        registry,
        input_topics(settings),
        service_pattern=settings.metrics_services,
        max_services=settings.metrics_services_max,
    )
    registry.register(KafkaLogCollector(kafka_logs))
    pipeline = _metric_pipeline(settings, clock, metrics)
    transactions = _transactions(settings)
    publisher = transactions or Publisher.from_settings(settings, f"{settings.client_id}-producer")
    counts: collections.Counter[str] = collections.Counter()
    champions, training = _champions_and_training(settings, metrics, publisher)
    champion_of = champions.risk if settings.incident_scorer == "champion" else None
    risk = risk_pipeline(settings, clock, champion_of=champion_of, on_labelled=training.labelled)
    log_pipeline = LogPipeline(settings.log_config(), clock)
    log_offsets = OpenWindowOffsets[TopicPartition]()
    snapshots, log_snapshots = _keepers(
        settings, metrics, publisher, MetricModels(pipeline, risk),
        LogModels(log_pipeline, log_offsets, settings.topic_logs),
    )  # fmt: skip
    positions = Positions([k for k in (snapshots, log_snapshots) if k is not None])
    stages = _stage_context(settings, clock, metrics, publisher, counts, positions)
    risk_stage = RiskStage(risk, stages)
    logs = LogStage(
        log_pipeline, stages, idle_s=settings.log_idle_s, on_outcome=risk_stage.after_logs,
        offsets=log_offsets,
    )  # fmt: skip
    label_reader = LabelReader(
        settings, [t for t in input_topics(settings) if t not in group_topics(settings)],
        settings.topic_incidents,
    )  # fmt: skip
    return DetectorParts(
        settings=settings,
        registry=registry,
        metrics=metrics,
        kafka_logs=kafka_logs,
        counts=counts,
        pipeline=pipeline,
        publisher=publisher,
        transactions=transactions,
        champions=champions,
        training=training,
        stages=stages,
        risk=risk_stage,
        metric_stage=MetricStage(pipeline, stages, risk_stage),
        logs=logs,
        snapshots=snapshots,
        log_snapshots=log_snapshots,
        positions=positions,
        label_reader=label_reader,
        label_gate=LabelGate(
            label_reader,
            risk,
            settings.topic_metrics,
            metrics.risk.metrics_paused,
            metrics.risk.metrics_held_back,
        ),
        http_guard=HttpGuard.from_settings(settings, registry),
    )


def _stage_context(
    settings: Settings,
    clock: Clock,
    metrics: DetectorMetrics,
    publisher: Publisher,
    counts: collections.Counter[str],
    positions: Positions,
) -> StageContext:
    """Where the stages' output goes: alerts (unless sent before a restore, or too old to
    page), dead letters."""
    age_gate = AlertAgeGate(settings.max_alert_age_s)
    return StageContext(
        publisher,
        metrics,
        counts,
        DeadLetters(publisher, metrics, counts, clock).send,
        settings.max_message_bytes,
        already_sent=positions.already_sent,
        too_old=lambda alert: age_gate.withholds(alert, clock()),
        links=settings.link_templates(),
    )


def _metric_pipeline(settings: Settings, clock: Clock, metrics: DetectorMetrics) -> MetricPipeline:
    """The metric pipeline, its budget and model announced on the gauges."""
    pipeline = MetricPipeline(settings.anomaly_config(), clock)
    for source in ("metrics", "logs"):
        metrics.budget.labels(source=source).set(settings.anomaly_budget_per_day)
    metrics.model_info.labels(
        name=pipeline.model_name, engine=pipeline.engine, version=pipeline.config_id
    ).set(1)
    return pipeline


def _champions_and_training(
    settings: Settings, metrics: DetectorMetrics, publisher: Publisher
) -> tuple[ChampionWatcher, TrainingFeed]:
    """What the sidecar publishes (champions, challengers) and what it learns from (the
    training feed, which shadow-scores its rows with the challengers)."""
    champions = ChampionWatcher(
        settings.bootstrap_servers,
        settings.topic_models,
        artifact_store(settings.artifact_dir, settings.group_id),
        metrics.champions,
        settings.client_id,
        kafka_options=kafka_options(settings),
    )
    training = TrainingFeed(
        publisher,
        settings.topic_features,
        on_failure=metrics.training_send_failures.inc,
        shadow_of=champions.shadow,
        on_shadow=functools.partial(_count_shadow, metrics),
    )
    return champions, training


def _transactions(settings: Settings) -> TransactionalPublisher | None:
    if settings.processing_guarantee != "exactly_once":
        return None
    return TransactionalPublisher(
        settings.bootstrap_servers,
        alerts_topic=settings.topic_alerts,
        dlq_topic=settings.topic_dlq,
        client_id=f"{settings.client_id}-producer",
        group_id=settings.group_id,
        kafka_options=kafka_options(settings),
    )


def _keepers(
    settings: Settings,
    metrics: DetectorMetrics,
    publisher: Publisher,
    metric_models: MetricModels,
    log_models: LogModels,
) -> tuple[PartitionSnapshots | None, PartitionSnapshots | None]:
    """The snapshot keepers of the metrics and the logs partitions (None: snapshots off)."""
    if not settings.snapshots:
        return None, None
    store = SnapshotStore(
        Path(settings.snapshot_dir) / settings.group_id, keep=settings.snapshot_keep
    )
    send_pointer = functools.partial(_send_pointer, publisher, settings.topic_models)

    def keeper(models: PartitionModels, topic: str) -> PartitionSnapshots:
        return PartitionSnapshots(
            store,
            models,
            metrics.snapshots,
            topic=topic,
            interval_s=settings.snapshot_interval_s,
            send_pointer=send_pointer,
        )

    return keeper(metric_models, settings.topic_metrics), keeper(log_models, settings.topic_logs)


async def _send_pointer(
    publisher: Publisher, topic: str, key: bytes, value: dict[str, Any]
) -> None:
    """Publish a snapshot pointer and wait for its acknowledgement."""
    await (await publisher.send_json(topic, key, value))


def _count_shadow(
    metrics: DetectorMetrics, group: str, role: str, outcome: str, count: int
) -> None:
    """Count shadow-scored vectors of a group's champion or challenger."""
    metrics.champions.shadow.labels(group=group, role=role, outcome=outcome).inc(count)
