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
import collections
import contextlib
import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import CollectorRegistry

from stream.codec import DecodeError, dead_letter
from stream.core.incident_risk import risk_pipeline
from stream.core.logs import LogPipeline
from stream.core.pipeline import Clock, MetricPipeline, utc_now
from stream.detector.alert_age import AlertAgeGate
from stream.detector.champions import ChampionWatcher, artifact_store
from stream.detector.http import HttpGuard, HttpServer, ScoreResult, create_app
from stream.detector.label_gate import LabelGate
from stream.detector.log_stage import LogModels, LogStage
from stream.detector.metric_stage import MetricStage
from stream.detector.rebalance import MetricModels, PartitionSnapshots
from stream.detector.risk_stage import RiskStage
from stream.detector.shutdown import StopDeadline
from stream.detector.snapshots import SnapshotStore
from stream.detector.stage import StageContext
from stream.detector.training_feed import TrainingFeed
from stream.kafka.committer import BackgroundCommitter
from stream.kafka.consumer_log import ConsumerLog, read_cluster_id
from stream.kafka.kafka_logs import KafkaLogCollector, KafkaLogFilter
from stream.kafka.kafka_options import kafka_options
from stream.kafka.label_reader import LabelReader
from stream.kafka.publisher import Ack, Publisher
from stream.kafka.records import Pending, Record
from stream.kafka.topic_specs import features_topic_spec, topic_specs
from stream.kafka.topics import ensure_topics
from stream.kafka.transactions import TransactionalPublisher
from stream.schemas import Alert, MetricEvent
from stream.settings import Settings
from stream.telemetry import DetectorMetrics

__all__ = ["Detector", "features_topic_spec", "topic_specs"]

log = structlog.get_logger(__name__)

_LAG_REFRESH_S = 1.0
_CHAMPIONS_POLL_S = 1.0


class Detector:
    """One detector process: a consumer-group member with its models, producer and HTTP API.

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
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = DetectorMetrics(self.registry, self._input_topics(settings))
        self.kafka_logs = kafka_logs if kafka_logs is not None else KafkaLogFilter()
        self.registry.register(KafkaLogCollector(self.kafka_logs))
        self.pipeline = MetricPipeline(settings.anomaly_config(), clock)
        for source in ("metrics", "logs"):
            self.metrics.budget.labels(source=source).set(settings.anomaly_budget_per_day)
        self._clock = clock
        self._transactions: TransactionalPublisher | None = None
        """The exactly-once output path (None: at least once)."""
        if settings.processing_guarantee == "exactly_once":
            self._transactions = TransactionalPublisher(
                settings.bootstrap_servers,
                alerts_topic=settings.topic_alerts,
                dlq_topic=settings.topic_dlq,
                client_id=f"{settings.client_id}-producer",
                group_id=settings.group_id,
                kafka_options=kafka_options(settings),
            )
        self._publisher = self._transactions or Publisher.from_settings(
            settings, f"{settings.client_id}-producer"
        )
        self.counts: collections.Counter[str] = collections.Counter()
        """Running totals of this process: consumed, scored, dead_lettered, alerts,
        alerts_too_old."""
        self.champions = ChampionWatcher(
            settings.bootstrap_servers,
            settings.topic_models,
            artifact_store(settings.artifact_dir, settings.group_id),
            self.metrics.champions,
            settings.client_id,
            kafka_options=kafka_options(settings),
        )
        self.training = TrainingFeed(
            self._publisher,
            settings.topic_features,
            on_failure=self.metrics.training_send_failures.inc,
            shadow_of=self.champions.shadow,
            on_shadow=functools.partial(_count_shadow, self.metrics),
        )
        self._age_gate = AlertAgeGate(settings.max_alert_age_s)
        self._stages = StageContext(
            self._publisher,
            self.metrics,
            self.counts,
            self._dead_letter,
            settings.max_message_bytes,
            already_sent=self._already_sent,
            too_old=lambda alert: self._age_gate.withholds(alert, self._clock()),
        )
        champion_of = self.champions.risk if settings.incident_scorer == "champion" else None
        self.risk = RiskStage(
            risk_pipeline(
                settings, clock, champion_of=champion_of, on_labelled=self.training.labelled
            ),
            self._stages,
        )
        self.metric_stage = MetricStage(self.pipeline, self._stages, self.risk)
        self._champions_polled_at = 0.0
        self.logs = LogStage(
            LogPipeline(settings.log_config(), clock),
            self._stages,
            idle_s=settings.log_idle_s,
            on_outcome=self.risk.after_logs,
        )
        self.snapshots: PartitionSnapshots | None = None
        """Snapshots of the metrics partitions' state (None when snapshots are off)."""
        self.log_snapshots: PartitionSnapshots | None = None
        """Snapshots of the logs partitions' state."""
        if settings.snapshots:
            store = SnapshotStore(
                Path(settings.snapshot_dir) / settings.group_id, keep=settings.snapshot_keep
            )
            self.snapshots = PartitionSnapshots(
                store,
                MetricModels(self.pipeline, self.risk.pipeline),
                self.metrics.snapshots,
                topic=settings.topic_metrics,
                interval_s=settings.snapshot_interval_s,
                send_pointer=self._send_pointer,
            )
            self.log_snapshots = PartitionSnapshots(
                store,
                LogModels(self.logs, settings.topic_logs),
                self.metrics.snapshots,
                topic=settings.topic_logs,
                interval_s=settings.snapshot_interval_s,
                send_pointer=self._send_pointer,
            )
        self._keepers = [k for k in (self.snapshots, self.log_snapshots) if k is not None]
        self._batch_lock = asyncio.Lock()
        """Held while a batch is in hand: a rebalance waits for it to be done."""
        self._rebalances = 0
        self._cluster_id: str | None = None
        """The Kafka cluster's id, read at start when snapshots are kept."""
        self._checked_rebalances = 0
        self._next_offsets: dict[TopicPartition, int] = {}
        """Metrics or logs partition → the next offset to process (records before it were:
        the state holds them)."""
        self._sought: set[TopicPartition] = set()
        """Partitions a restore moved (seek) since the last fetch returned: what that fetch
        holds of them is from before the seek (aiokafka fetches from the committed offset
        before the assignment callback restores), and is dropped."""
        self._consumer: AIOKafkaConsumer | None = None
        self.label_reader = LabelReader(
            settings,
            [t for t in self._input_topics(settings) if t not in self._group_topics(settings)],
            settings.topic_incidents,
        )
        """Every partition of the incidents and feedback topics, outside the group."""
        self.label_gate = LabelGate(
            self.label_reader,
            self.risk.pipeline,
            settings.topic_metrics,
            self.metrics.risk.metrics_paused,
        )
        """Metrics wait while incident labels are unread."""
        self.http_guard = HttpGuard.from_settings(settings, self.registry)
        self._http = (
            HttpServer(create_app(self, self.http_guard), settings.http_host, settings.http_port)
            if serve_http
            else None
        )
        self._stop_requested = asyncio.Event()
        self._positions: dict[TopicPartition, int] = {}
        self._committer: BackgroundCommitter[TopicPartition] = BackgroundCommitter(self._commit)
        self._lag_refreshed_at = 0.0
        self._polled = False
        self._started = False
        self._batch_in_hand = False
        """A batch is being processed: the models may hold records whose output is not
        acknowledged yet (True after a batch was cut short by a stop)."""
        self.metrics.model_info.labels(
            name=self.pipeline.model_name,
            engine=self.pipeline.engine,
            version=self.pipeline.config_id,
        ).set(1)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create missing topics, connect, join the group and serve HTTP."""
        if self._started:
            return
        settings = self.settings
        if settings.create_topics:
            await ensure_topics(
                settings.bootstrap_servers,
                topic_specs(settings),
                kafka_options=kafka_options(settings),
            )
        if self._keepers:
            self._cluster_id = await read_cluster_id(settings)
        await self._publisher.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.group_id,
            group_instance_id=settings.group_instance_id,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=min(3_000, settings.session_timeout_ms // 3),
            client_id=f"{settings.client_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
            # The broker holds a fetch with no new data this long, and no other fetch goes to
            # it meanwhile: keep it near the batch wait, not aiokafka's 500 ms, or records on
            # busy partitions wait behind an idle one.
            fetch_max_wait_ms=max(1, int(settings.batch_wait_s * 1000)),
            # Exactly once reads committed input only (another Vigil's alerts, a transactional
            # log-processor); at least once reads what is there, as before.
            isolation_level=(
                "read_committed"
                if settings.processing_guarantee == "exactly_once"
                else "read_uncommitted"
            ),
            **kafka_options(settings),
        )
        self._consumer.subscribe(self._group_topics(settings), listener=_Revocations(self))
        try:
            await self.champions.start()
            await self.label_reader.start()
            await self._consumer.start()
            if self._http is not None:
                await self._http.start()
        except BaseException:
            await self.stop()  # release what did start
            raise
        self._started = True
        log.info(
            "detector_started",
            group_id=settings.group_id,
            topics=self._input_topics(settings),
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
        with contextlib.suppress(Exception):
            await deadline.wait("commit", self._committer.close(), share=0.4)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await deadline.wait("consumer_stop", consumer.stop(), share=0.5)
        with contextlib.suppress(Exception):
            await deadline.wait("producer_stop", self._publisher.stop(), share=0.6)
        with contextlib.suppress(Exception):
            await deadline.wait("champions_stop", self.champions.stop(), share=0.5)
        with contextlib.suppress(Exception):
            await deadline.wait("labels_stop", self.label_reader.stop(), share=0.5)
        if self._http is not None:
            await deadline.wait("http_stop", self._http.stop())
        if was_started:
            log.info("detector_stopped", cut_short=deadline.timed_out)
        return not deadline.timed_out

    @staticmethod
    def _group_topics(settings: Settings) -> list[str]:
        """The topics the group deals out: a service's partition is its owner's."""
        return [settings.topic_metrics, settings.topic_logs]

    @staticmethod
    def _input_topics(settings: Settings) -> list[str]:
        topics = [settings.topic_metrics, settings.topic_logs, settings.topic_feedback]
        if settings.incident_risk:
            topics.append(settings.topic_incidents)
        return topics

    async def flush_commits(self) -> None:
        """Wait until the offsets of every batch processed so far are committed."""
        await self._committer.flush()

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
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("Detector.start() must be awaited first")
        # Labels first, without waiting: once a member (so one detector can be designated for
        # what all of them read).
        labels = (
            await self.label_reader.fetch(self.settings.max_batch) if consumer.assignment() else {}
        )
        batches = await consumer.getmany(
            timeout_ms=int(self.settings.batch_wait_s * 1000), max_records=self.settings.max_batch
        )
        self._polled = True
        self._sought.clear()
        async with self._batch_lock:  # a rebalance waits for the batch in hand
            if self._sought:  # a restore ran while this batch waited: it re-fetches those
                batches = {tp: part for tp, part in batches.items() if tp not in self._sought}
            batches = self._still_ours(batches, consumer)
            count = sum(len(records) for records in batches.values())
            behind = await self.label_gate.behind(consumer, batches)
            self._batch_in_hand = True
            await self._process(batches, consumer, count, labels, behind)
            self._batch_in_hand = False
        return count

    def _still_ours(
        self, batches: dict[TopicPartition, list[Record]], consumer: AIOKafkaConsumer
    ) -> dict[TopicPartition, list[Record]]:
        """The batch without what is not this detector's to process: records of partitions
        assigned elsewhere by a rebalance that ran while they were fetched, and metrics or
        log records before where their partition stands (a fetch made before a restore's
        seek, or from a committed offset behind what the state holds, can still deliver
        them)."""
        kept = batches
        if self._rebalances != self._checked_rebalances:
            self._checked_rebalances = self._rebalances
            assignment = consumer.assignment()
            kept = {tp: part for tp, part in batches.items() if tp in assignment}
        resume = self._next_offsets
        for tp, part in list(kept.items()):
            if part[0].offset < resume.get(tp, -1):
                part = [r for r in part if r.offset >= resume[tp]]
                if part:
                    kept[tp] = part
                else:
                    del kept[tp]
        # A replay ends at a batch's end: cut there, the rest is fetched again.
        for tp, part in list(kept.items()):
            until = self._replay_limit(tp)
            if until is not None and part[0].offset < until <= part[-1].offset:
                kept[tp] = [r for r in part if r.offset < until]
                consumer.seek(tp, until)
        return kept

    async def _process(
        self,
        batches: dict[TopicPartition, list[Record]],
        consumer: AIOKafkaConsumer,
        count: int,
        labels: dict[TopicPartition, list[Record]],
        labels_behind: bool,
    ) -> None:
        logs_topic, metrics_topic = self.settings.topic_logs, self.settings.topic_metrics
        metric_records = [
            r for tp, part in batches.items() if tp.topic == metrics_topic for r in part
        ]
        pending: Pending = []
        if count:
            self.metrics.batch_size.observe(count)
        for tp, part in [*batches.items(), *labels.items()]:
            self.counts["consumed"] += len(part)
            self.metrics.events_consumed.labels(topic=tp.topic).inc(len(part))
        scored: tuple[list[str], list[Record]] = ([], [])
        # Labels in hand first: an incident read with this batch labels its vectors before
        # the batch's event time can let them pass as negatives.
        pending.extend(await self._labels(labels, consumer, labels_behind))
        if metric_records:
            handled, scored = await self.metric_stage.handle(metric_records)
            pending.extend(handled)
            if self.risk.pipeline is not None:
                self.risk.pipeline.advance()  # horizons the batch passed (unless held)
        log_batches = {tp: part for tp, part in batches.items() if tp.topic == logs_topic}
        pending.extend(await self.logs.handle(log_batches, consumer, logs_topic))
        await self._await_acks(pending)
        offsets = {
            tp: part[-1].offset + 1 for tp, part in batches.items() if tp.topic != logs_topic
        }
        offsets.update(self.logs.committable())
        offsets = {
            tp: o
            for tp, o in offsets.items()
            if self._positions.get(tp) != o and not self._replaying_below(tp, o)
        }
        if self._transactions is not None:
            # Output and offsets of each input partition in one transaction, done before the
            # next fetch: nothing is acknowledged, and so nothing committed, on its own.
            try:
                await self._transactions.commit(offsets)
            except Exception:
                self.metrics.kafka_errors.labels(operation="commit").inc()
                raise
            self._positions.update(offsets)
            if offsets:
                self.metrics.commits.inc()
        elif offsets:
            self._committer.submit(offsets)
        for tp, part in batches.items():
            if tp.topic in (metrics_topic, logs_topic):
                self._next_offsets[tp] = part[-1].offset + 1
        self.metrics.training_rows.inc(await self.training.flush())
        log_processed = self.logs.take_processed()
        if self.snapshots is not None and metric_records:
            self.snapshots.processed(*scored, metric_records)
        if self.log_snapshots is not None and log_processed[2]:
            self.log_snapshots.processed(*log_processed)
        for keeper in self._keepers:
            await keeper.snapshot_due()
        now = time.monotonic()
        if now - self._champions_polled_at >= _CHAMPIONS_POLL_S:
            self._champions_polled_at = now
            await self.champions.poll()
        self._refresh_lag()

    async def _labels(
        self,
        batches: dict[TopicPartition, list[Record]],
        consumer: AIOKafkaConsumer,
        behind: bool,
    ) -> Pending:
        """Incident and feedback records (every partition, from :attr:`labels`): labels for
        incident risk, feedback counted."""
        metrics_topic = self.settings.topic_metrics
        owned = consumer.assignment()
        metrics_partitions = len(consumer.partitions_for_topic(metrics_topic) or ()) or 1

        def designated(record: Record) -> bool:
            """One detector dead-letters a label record: the owner of the metrics partition
            of its partition's number (modulo), and only a record first read live (every
            start reads the topics again)."""
            home = TopicPartition(metrics_topic, record.partition % metrics_partitions)
            return home in owned and not self.label_reader.replayed(record)

        pending = await self.risk.handle(
            batches,
            incidents_topic=self.settings.topic_incidents,
            feedback_topic=self.settings.topic_feedback,
            behind=behind,
            designated=designated,
        )
        self.label_gate.apply(consumer, behind)
        return pending

    def _replaying_below(self, tp: TopicPartition, offset: int) -> bool:
        """Whether ``offset`` is below the committed offset a restored partition is being
        replayed up to: committing it would move the group's offset back (and a crash during
        the replay would then re-send what was already sent or committed)."""
        until = self._replay_limit(tp)
        return until is not None and offset < until

    def _replay_limit(self, tp: TopicPartition) -> int | None:
        """The committed offset a restored partition is being replayed up to, if it is."""
        for keeper in self._keepers:
            if keeper.topic == tp.topic:
                return keeper.replay_limit(tp.partition)
        return None

    def _already_sent(self, alert: Alert) -> bool:
        """Whether the event an alert points at was processed before a restore from a
        snapshot (its alerts were sent and acknowledged then)."""
        return any(keeper.replaying(alert.evidence) for keeper in self._keepers)

    async def _send_pointer(self, key: bytes, value: dict[str, Any]) -> None:
        await (await self._publisher.send_json(self.settings.topic_models, key, value))

    async def _dead_letter(self, record: Record, error: DecodeError) -> Ack:
        self.metrics.dead_lettered.labels(topic=record.topic, reason=error.reason).inc()
        self.counts["dead_lettered"] += 1
        log.warning(
            "message_dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=error.reason,
            error=error.detail[:200],
        )
        letter = dead_letter(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            error=error,
            failed_at=self._clock(),
        )
        return await self._publisher.send_dead_letter(letter, record.key)

    async def _await_acks(self, pending: Pending) -> None:
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

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the new owner re-reads from the last commit.
            self.metrics.kafka_errors.labels(operation="commit").inc()
            log.warning("commit_failed", error=str(exc))
            return
        self._positions.update(offsets)
        self.metrics.commits.inc()
        self.metrics.models_held.labels(source="metrics").set(len(self.pipeline))

    async def partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """A rebalance starts: once the batch in hand is done, commit what is acknowledged and
        snapshot the revoked metrics and logs partitions, so the next owner starts where this
        one stopped (a failure only means it re-reads more)."""
        async with self._batch_lock:
            self._rebalances += 1
            with contextlib.suppress(Exception):
                await self.flush_commits()
            for keeper in self._keepers:
                await keeper.revoked(tp.partition for tp in revoked if tp.topic == keeper.topic)
            if self._transactions is not None:
                await self._transactions.release(revoked)
            self.forget_partitions(revoked)
        log.info("partitions_revoked", partitions=_names(revoked))

    async def partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """A rebalance ended: restore newly assigned metrics and logs partitions from their
        snapshots and resume each at its snapshot's offset."""
        async with self._batch_lock:
            self._rebalances += 1
            consumer = self._consumer
            for keeper in self._keepers if consumer is not None else ():
                assert consumer is not None
                mine = [tp.partition for tp in assigned if tp.topic == keeper.topic]
                source = ConsumerLog(consumer, keeper.topic, mine, self._cluster_id, self.settings)
                try:
                    resume = await keeper.assigned(mine, source)
                finally:
                    await source.close()
                for partition, offset in resume.items():
                    tp = TopicPartition(keeper.topic, partition)
                    consumer.seek(tp, offset)
                    self._sought.add(tp)
                    self._next_offsets[tp] = offset
            for tp in set(self._next_offsets) - set(assigned):
                del self._next_offsets[tp]
        log.info("partitions_assigned", partitions=_names(assigned))

    def forget_partitions(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions revoked in a rebalance: their commits are the new owner's now. With
        snapshots, a logs partition's open windows and their commit holds stay until the
        assignment shows where it went (its keeper drops them then)."""
        for tp in partitions:
            self._positions.pop(tp, None)
            # Its lag is the new owner's to report: a frozen value here would hold alerts.
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        if self.log_snapshots is not None:
            self.logs.drop_sources(partitions)
        else:
            self.logs.forget(partitions)

    def _refresh_lag(self) -> None:
        now = time.monotonic()
        if self._consumer is None or now - self._lag_refreshed_at < _LAG_REFRESH_S:
            return
        self._lag_refreshed_at = now
        self.logs.refresh_gauges()
        self.risk.refresh_gauges()
        realised = self.pipeline.episodes_per_service_day()
        self.metrics.realised.labels(source="metrics").set(realised)
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            position = self._positions.get(tp)
            if highwater is None or position is None:
                continue
            self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                max(0, highwater - position)
            )

    # -- the HTTP view -----------------------------------------------------------------------

    def is_ready(self) -> bool:
        """Consuming: joined the group, partitions assigned, polled since, Kafka reached."""
        return self.not_ready_reason() is None

    def not_ready_reason(self) -> str | None:
        """Why ``/readyz`` says not ready (None: ready)."""
        if self.kafka_logs.unreachable_for() is not None:
            return "kafka_unreachable"
        consuming = self._started and self._polled and self._consumer is not None
        if not consuming:
            return "starting"
        assert self._consumer is not None
        return None if self._consumer.assignment() else "no_partitions"

    def describe_models(self) -> dict[str, Any]:
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

    def score(
        self, events: list[MetricEvent], positions: Sequence[int] | None = None
    ) -> list[ScoreResult]:
        """Score events without learning (``POST /score``): see :meth:`MetricStage.score`."""
        return self.metric_stage.score(events, positions)


def _count_shadow(
    metrics: DetectorMetrics, group: str, role: str, outcome: str, count: int
) -> None:
    """Count shadow-scored vectors of a group's champion or challenger."""
    metrics.champions.shadow.labels(group=group, role=role, outcome=outcome).inc(count)


def _names(partitions: Sequence[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the detector which partitions it lost and got in a rebalance."""

    def __init__(self, detector: Detector) -> None:
        self._detector = detector

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # aiokafka logs and swallows what a listener raises: log it our way, go on.
        try:
            await self._detector.partitions_revoked(revoked)
        except Exception:
            log.exception("partitions_revoked_failed")

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        try:
            await self._detector.partitions_assigned(assigned)
        except Exception:
            log.exception("partitions_assigned_failed")
