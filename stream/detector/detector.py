"""The detector: consume metric and log events, score and learn, publish alerts, commit after acks.

Each fetched batch is processed in full, its alerts and dead letters are sent, and only when
the broker has acknowledged every one of them are the batch's offsets committed (by a
background task, while the next batch is fetched: see :mod:`stream.kafka.committer`). A crash at
any point therefore re-delivers events whose output was not acknowledged (at-least-once), and
the deterministic ``alert_id`` lets consumers drop the duplicates that re-delivery can cause.
A log line's output is its window's alert, due when the window closes: log partitions are
committed only up to the first line of their oldest open window (see
:mod:`stream.detector.log_stage`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from stream.core.pipeline import Clock, utc_now
from stream.detector.handover import Handover
from stream.detector.http import HttpServer, ScoreResult, create_app
from stream.detector.offset_commits import Commits
from stream.detector.parts import build_parts, group_topics, input_topics
from stream.detector.shutdown import StopDeadline
from stream.detector.upkeep import Upkeep
from stream.kafka.consumer_log import read_cluster_id
from stream.kafka.group_consumer import group_consumer
from stream.kafka.kafka_logs import KafkaLogFilter
from stream.kafka.kafka_options import kafka_options
from stream.kafka.records import Pending, Record
from stream.kafka.topic_specs import features_topic_spec, topic_specs
from stream.kafka.topics import ensure_topics
from stream.schemas import MetricEvent
from stream.settings import Settings

__all__ = ["Detector", "features_topic_spec", "topic_specs"]

log = structlog.get_logger(__name__)


class Detector:
    """One detector process: a consumer-group member with its models, producer and HTTP API.

    It conducts: its parts (:func:`~stream.detector.parts.build_parts`) do the work. Each
    step fetches a batch, hands its records to the stages (labels, metrics, logs), waits for
    every send's acknowledgement, commits, and lets the snapshot keepers, champions and
    gauges catch up.

    Args:
        settings: The configuration.
        registry: The Prometheus registry to register metrics on (a fresh one if omitted).
        clock: The time stamped on alerts (inject a fixed clock in tests).
        serve_http: Whether to serve the HTTP API.
        kafka_logs: The filter on the Kafka client's log lines
            (:func:`~stream.telemetry.configure_logging`'s): its counts are exported, and
            ``/readyz`` says when it hears that Kafka cannot be reached.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        clock: Clock = utc_now,
        serve_http: bool = True,
        kafka_logs: KafkaLogFilter | None = None,
    ) -> None:
        self.settings = settings
        self.parts = parts = build_parts(
            settings,
            registry=registry if registry is not None else CollectorRegistry(),
            clock=clock,
            kafka_logs=kafka_logs if kafka_logs is not None else KafkaLogFilter(),
        )
        self.registry, self.metrics, self.counts = parts.registry, parts.metrics, parts.counts
        self.pipeline, self.risk, self.logs = parts.pipeline, parts.risk, parts.logs
        self.champions, self.http_guard = parts.champions, parts.http_guard
        self.snapshots, self.log_snapshots = parts.snapshots, parts.log_snapshots
        self._transactions = parts.transactions
        self._keepers = parts.positions.keepers
        self._batch_lock = asyncio.Lock()
        """Held while a batch is in hand: a rebalance waits for it to be done."""
        self._consumer: AIOKafkaConsumer | None = None
        self._http = (
            HttpServer(create_app(self, self.http_guard), settings.http_host, settings.http_port)
            if serve_http
            else None
        )
        self._stop_requested = asyncio.Event()
        self._commits: Commits | None = None
        self._upkeep = Upkeep(parts)
        self._polled = self._started = False
        self._batch_in_hand = False
        """A batch is being processed: the models may hold records whose output is not
        acknowledged yet (True after a batch was cut short by a stop)."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create missing topics, connect, join the group and serve HTTP."""
        if self._started:
            return
        settings, parts = self.settings, self.parts
        if settings.create_topics:
            await ensure_topics(
                settings.bootstrap_servers,
                topic_specs(settings),
                kafka_options=kafka_options(settings),
            )
        cluster_id = await read_cluster_id(settings) if self._keepers else None
        await parts.publisher.start()
        self._consumer = consumer = group_consumer(settings)
        self._commits = Commits(
            consumer, parts.positions, self._transactions, self.metrics, self.pipeline
        )
        handover = Handover(
            consumer, parts.positions, self._batch_lock, self._commits.background,
            self._transactions,
            self.logs, self.log_snapshots is not None, self.metrics, cluster_id, settings,
        )  # fmt: skip
        consumer.subscribe(group_topics(settings), listener=handover)
        try:
            await self.champions.start()
            await parts.label_reader.start()
            await consumer.start()
            if self._http is not None:
                await self._http.start()
        except BaseException:
            await self.stop()  # release what did start
            raise
        self._started = True
        log.info(
            "detector_started",
            group_id=settings.group_id,
            topics=input_topics(settings),
            http_port=self.http_port,
            http_work_endpoints=self.http_guard.work_endpoints,
            max_alert_age_s=settings.max_alert_age_s,
        )

    async def stop(self, deadline: StopDeadline | None = None) -> bool:
        """Snapshot, commit, leave the group and disconnect whatever was started, each step
        within its share of ``deadline`` (default: ``shutdown_timeout_s`` from now); safe to
        call twice. Returns whether every step finished in time.

        A batch cut short (its acknowledgements never came) left the models ahead of the
        offsets they were snapshotted at: then no snapshot is taken, and the next owner
        resumes from the last one and replays up to the committed offsets.
        """
        if deadline is None:
            deadline = StopDeadline(self.settings.shutdown_timeout_s)
        was_started, self._started = self._started, False
        self._stop_requested.set()
        if was_started and self._batch_in_hand:
            log.warning("snapshot_on_stop_skipped", reason="batch_cut_short")
        elif was_started:
            async with self._batch_lock:
                for keeper in self._keepers:
                    try:
                        snapshot = keeper.snapshot_now(keeper.owned)
                        await deadline.wait("snapshot", snapshot, share=0.5)
                    except Exception:
                        log.exception("snapshot_on_stop_failed", topic=keeper.topic)
        # What was acknowledged is committed; Kafka errors here only mean a re-read.
        if self._commits is not None:
            await deadline.settle("commit", self._commits.background.close(), share=0.4)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await deadline.settle("consumer_stop", consumer.stop(), share=0.5)
        await deadline.settle("producer_stop", self.parts.publisher.stop(), share=0.6)
        await deadline.settle("champions_stop", self.champions.stop(), share=0.5)
        await deadline.settle("labels_stop", self.parts.label_reader.stop(), share=0.5)
        if self._http is not None:
            await deadline.wait("http_stop", self._http.stop())
        if was_started:
            log.info("detector_stopped", cut_short=deadline.timed_out)
        return not deadline.timed_out

    async def flush_commits(self) -> None:
        """Wait until the offsets of every batch processed so far are committed."""
        if self._commits is not None:
            await self._commits.background.flush()

    def request_stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (signal-handler safe)."""
        self._stop_requested.set()

    @property
    def http_port(self) -> int | None:
        """The port the HTTP API is bound to, if serving."""
        return self._http.port if self._http is not None and self._started else None

    async def run(self) -> None:
        """Consume until :meth:`request_stop`; each batch is committed after its acks."""
        while not self._stop_requested.is_set():
            await self.step()

    # -- the loop ----------------------------------------------------------------------------

    async def step(self) -> int:
        """Fetch, process and commit one batch; returns the number of records processed."""
        consumer, parts = self._consumer, self.parts
        if consumer is None:
            raise RuntimeError("Detector.start() must be awaited first")
        # Labels first, without waiting: once a member (so one detector can be designated for
        # what all of them read).
        labels = (
            await parts.label_reader.fetch(self.settings.max_batch) if consumer.assignment() else {}
        )
        batches = await consumer.getmany(
            timeout_ms=int(self.settings.batch_wait_s * 1000), max_records=self.settings.max_batch
        )
        self._polled = True
        parts.positions.sought.clear()
        async with self._batch_lock:  # a rebalance waits for the batch in hand
            batches = parts.positions.still_ours(batches, consumer)
            behind = await parts.label_gate.behind(consumer, batches)
            batches = parts.label_gate.hold_back(consumer, batches, behind)
            self._batch_in_hand = True
            await self._process(batches, consumer, labels, behind)
            self._batch_in_hand = False
        return sum(len(records) for records in batches.values())

    async def _process(
        self,
        batches: dict[TopicPartition, list[Record]],
        consumer: AIOKafkaConsumer,
        labels: dict[TopicPartition, list[Record]],
        labels_behind: bool,
    ) -> None:
        parts, settings = self.parts, self.settings
        logs_topic, metrics_topic = settings.topic_logs, settings.topic_metrics
        metric_records = [
            r for tp, part in batches.items() if tp.topic == metrics_topic for r in part
        ]
        self._upkeep.consumed(batches, labels)
        # Labels in hand first: an incident read with this batch labels its vectors before
        # the batch's event time can let them pass as negatives.
        pending: Pending = await self.risk.handle(
            labels,
            incidents_topic=settings.topic_incidents,
            feedback_topic=settings.topic_feedback,
            behind=labels_behind,
            designated=parts.label_gate.designated(consumer),
        )
        parts.label_gate.apply(consumer, labels_behind)
        scored: tuple[list[str], list[Record]] = ([], [])
        if metric_records:
            handled, scored = await parts.metric_stage.handle(metric_records)
            pending.extend(handled)
            if self.risk.pipeline is not None:
                self.risk.pipeline.advance()  # horizons the batch passed (unless held)
        log_batches = {tp: part for tp, part in batches.items() if tp.topic == logs_topic}
        pending.extend(await self.logs.handle(log_batches, consumer, logs_topic))
        await parts.stages.await_acks(pending)
        offsets = {
            tp: part[-1].offset + 1 for tp, part in batches.items() if tp.topic != logs_topic
        }
        offsets.update(self.logs.committable())
        assert self._commits is not None
        await self._commits.commit(offsets)
        parts.positions.processed(batches, (metrics_topic, logs_topic))
        await self._upkeep.after(metric_records, scored, self._consumer)

    # -- the HTTP view -----------------------------------------------------------------------

    def is_ready(self) -> bool:
        """Consuming: joined the group, partitions assigned, polled since, Kafka reached."""
        return self.not_ready_reason() is None

    def not_ready_reason(self) -> str | None:
        """Why ``/readyz`` says not ready (None: ready)."""
        if self.parts.kafka_logs.unreachable_for() is not None:
            return "kafka_unreachable"
        if not (self._started and self._polled and self._consumer is not None):
            return "starting"
        return None if self._consumer.assignment() else "no_partitions"

    def describe_models(self) -> dict[str, Any]:
        """Models, versions and thresholds for ``GET /models``."""
        return self.parts.describe()

    def score(
        self, events: list[MetricEvent], positions: Sequence[int] | None = None
    ) -> list[ScoreResult]:
        """Score events without learning (``POST /score``): see :meth:`MetricStage.score`."""
        return self.parts.metric_stage.score(events, positions)
