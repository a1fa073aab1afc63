"""``vigil notify``'s conductor: consume problems, ask each sink's policy, hand notices to
the sinks' workers, dead-letter what cannot be delivered, commit what is settled, and
re-post open problems to Alertmanager.

With single alerts (``notify_alerts``) it also follows the silences topic
(``alert_silences.AlertSilences``, read whole before consuming): an alert a silence, window
or deploy covers at its event time is skipped as ``silenced``, as the correlator's problems are.

At least once: a record's offset is committed only when every notice it started is settled
(delivered, or given up and its dead letter acknowledged). A restart re-reads what was not
committed and sends it again; within a process, (problem_id, revision, sink) is sent once.

A problems partition assigned with a committed offset is first read from its beginning up
to that offset without sending anything (the topic is compacted: about one record per
problem): the policies learn what was notified before, so an update after a restart is no
second notice, and Alertmanager's re-posts resume for the problems still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from stream.codec import DecodeError, decode
from stream.core.notifications import (
    Attempt,
    DeliveryLedger,
    Notice,
    NoticePolicy,
    problem_of_alert,
)
from stream.detector.http import HttpGuard, HttpServer, create_service_app
from stream.detector.shutdown import StopDeadline
from stream.kafka.kafka_options import kafka_options
from stream.kafka.publisher import Publisher
from stream.kafka.topic_specs import topic_spec
from stream.kafka.topics import ensure_topics
from stream.notify.alert_silences import AlertSilenceBook, AlertSilences
from stream.notify.dead_letters import DeadLetters
from stream.notify.delivery import Job, Origin, RetryPolicy, SinkWorker
from stream.notify.metrics import FAILURE_REASONS, NotifyMetrics
from stream.notify.offsets import OffsetTracker
from stream.notify.rebalance import Rebalance
from stream.notify.sinks import Sink, build_sinks
from stream.schemas import Alert, Problem
from stream.settings import Settings

__all__ = ["Notifier"]

log = structlog.get_logger(__name__)


class Notifier:
    """The notifier process: consumer, sink workers, dead letters, commits, HTTP.

    Args:
        settings: The configuration (at least one sink).
        registry: The Prometheus registry (a fresh one if omitted).
        serve_http: Whether to serve /healthz, /readyz and /metrics.
        clock: Wall-clock time (requests' timestamps, dead letters).
        silences: What silences single alerts, with ``notify_alerts`` (None: the silences
            topic, followed from :meth:`start` to :meth:`stop`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        serve_http: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        silences: AlertSilenceBook | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.sinks: list[Sink] = build_sinks(settings)
        if not self.sinks:
            raise ValueError("no sink configured")
        self.topics = [settings.topic_problems]
        if settings.notify_alerts:
            self.topics.append(settings.topic_alerts)
        self.metrics = NotifyMetrics(self.registry, [s.name for s in self.sinks], self.topics)
        self.silences = (
            AlertSilences(settings, silences, registry=self.registry)
            if settings.notify_alerts
            else None
        )
        self._clock = clock
        self._stop = asyncio.Event()
        self._policies = {s.name: NoticePolicy(keyed=s.keyed) for s in self.sinks}
        self._ledger = DeliveryLedger()
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._open: dict[str, Problem] = {}  # notified open to Alertmanager: re-posted
        self._recall_until: dict[TopicPartition, int] = {}  # read again, nothing sent
        self._reposted_at = time.monotonic()
        self._workers: list[SinkWorker] = []
        self._client: httpx.AsyncClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._publisher = Publisher.from_settings(settings, f"{settings.client_id}-notify")
        self._polled = False
        self.counts: dict[str, int] = {"consumed": 0, "dead_lettered": 0, "delivered": 0}
        self._dead_letters = DeadLetters(self._publisher, self.metrics, self.counts, clock)
        self.http_guard = HttpGuard.from_settings(settings, self.registry)
        self._http = (
            HttpServer(
                create_service_app(self, "Vigil notify", self.http_guard),
                settings.http_host,
                settings.http_port,
            )
            if serve_http
            else None
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create missing topics, connect, start the sinks' workers and serve HTTP."""
        settings = self.settings
        if settings.create_topics:
            names = ["topic_problems", "topic_dlq"]
            if settings.notify_alerts:
                names.append("topic_alerts")
            await ensure_topics(
                settings.bootstrap_servers,
                [topic_spec(settings, name) for name in names],
                kafka_options=kafka_options(settings),
            )
        await self._publisher.start()
        if self.silences is not None:
            # Before the first alert is read: every silence in force is known.
            await self.silences.start()
        self._client = httpx.AsyncClient(timeout=settings.notify_timeout_s)
        retry = RetryPolicy(
            settings.notify_backoff_s, settings.notify_backoff_max_s, settings.notify_retry_max_s
        )
        self._workers = [
            SinkWorker(sink, self._client, retry, self.metrics, self._settled, clock=self._clock)
            for sink in self.sinks
        ]
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.notify_group_id,
            client_id=f"{settings.client_id}-notify",
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=min(3_000, settings.session_timeout_ms // 3),
            **kafka_options(settings),
        )
        self._consumer.subscribe(self.topics, listener=Rebalance(self))
        await self._consumer.start()
        if self._http is not None:
            await self._http.start()
        log.info("notifier_started", topics=self.topics, sinks=[s.name for s in self.sinks])

    async def stop(self, deadline: StopDeadline | None = None) -> bool:
        """Commit what is settled, then disconnect, each step within its share of
        ``deadline``; safe to call twice. Returns whether all was done in time."""
        if deadline is None:
            deadline = StopDeadline(self.settings.shutdown_timeout_s)
        self._stop.set()
        for worker in self._workers:
            await worker.close()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await deadline.settle("commit", self._commit(consumer), share=0.3)
            await deadline.settle("consumer_stop", consumer.stop(), share=0.5)
        await deadline.settle("producer_stop", self._publisher.stop(), share=0.6)
        if self.silences is not None:
            await deadline.settle("silences_stop", self.silences.stop(), share=0.5)
        client, self._client = self._client, None
        if client is not None:
            await deadline.settle("http_client_close", client.aclose())
        if self._http is not None:
            await deadline.wait("http_stop", self._http.stop())
        return not deadline.timed_out

    def request_stop(self) -> None:
        """Ask :meth:`run` to return (signal-handler safe)."""
        self._stop.set()

    @property
    def http_port(self) -> int | None:
        """The bound HTTP port, if serving."""
        return self._http.port if self._http is not None else None

    # -- what the HTTP API shows ---------------------------------------------------------------

    def is_ready(self) -> bool:
        """Consuming (a first poll returned)."""
        return self._consumer is not None and self._polled

    def describe_models(self) -> dict[str, Any]:
        """The sinks and what waits (``/models``: the notifier has no models)."""
        return {
            "sinks": [s.name for s in self.sinks],
            "topics": self.topics,
            "open_problems": len(self._open),
            "pending_records": self._tracker.pending,
        }

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume and deliver until :meth:`request_stop`; a retriable Kafka error (a
        broker away) is waited out with backoff (0.5 s doubling to 8 s), never fatal."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                await self.step()
                delay = 0.5
            except KafkaError as exc:
                if not getattr(exc, "retriable", False):
                    raise
                log.warning("kafka_unreachable_retrying", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8.0)

    async def step(self, timeout_s: float = 0.5) -> int:
        """Read one batch and hand its notices over; commit what is settled; re-post when
        due. Returns records read."""
        consumer = self._started_consumer
        self._hold_back(consumer)
        batches = await consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=500)
        self._polled = True
        read = 0
        for tp, records in batches.items():
            for record in records:
                read += 1
                origin = Origin(
                    tp, record.topic, record.partition, record.offset, record.key, record.value
                )
                await self._handle(origin)
        await self._commit(consumer)
        self._repost_when_due()
        self.metrics.pending.set(self._tracker.pending)
        return read

    @property
    def _started_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("Notifier.start() must be awaited first")
        return self._consumer

    def _hold_back(self, consumer: AIOKafkaConsumer) -> None:
        """Pause fetching while too many records wait for their deliveries."""
        assigned = consumer.assignment()
        if self._tracker.pending >= self.settings.notify_max_pending:
            consumer.pause(*assigned)
        elif consumer.paused():
            consumer.resume(*assigned)

    async def _handle(self, origin: Origin) -> None:
        """Decode one record and start its notices (a bad one is dead-lettered)."""
        until = self._recall_until.get(origin.partition)
        if until is not None:
            if origin.offset < until:
                self._recall(origin)
                return
            del self._recall_until[origin.partition]
        self.metrics.consumed.labels(topic=origin.topic).inc()
        self.counts["consumed"] += 1
        problem = self._decode(origin)
        if isinstance(problem, DecodeError):
            await self._dead_letters.send(origin, problem)
            self._tracker.add(origin.partition, origin.offset, pending=0)
            return
        jobs: list[tuple[SinkWorker, Job]] = []
        for worker in self._workers:
            notice = self._notice(worker.sink, problem)
            if notice is not None:
                jobs.append((worker, Job(problem, notice.action, origin)))
        self._tracker.add(origin.partition, origin.offset, pending=len(jobs))
        for worker, job in jobs:
            worker.submit(job)

    def _decode(self, origin: Origin) -> Problem | DecodeError:
        max_bytes = self.settings.max_message_bytes
        if origin.topic == self.settings.topic_problems:
            return decode(origin.value, Problem, max_bytes)
        alert = decode(origin.value, Alert, max_bytes)
        if isinstance(alert, DecodeError):
            return alert
        if self.silences is None:  # alerts are read only with notify_alerts: not reached
            return problem_of_alert(alert)
        return self.silences.problem_of(alert)

    def _recall(self, origin: Origin) -> None:
        """A record settled before this assignment: what the sinks were told, not sent."""
        problem = self._decode(origin)
        if not isinstance(problem, DecodeError):
            for sink in self.sinks:
                self._notice(sink, problem, recalled=True)

    def _notice(self, sink: Sink, problem: Problem, *, recalled: bool = False) -> Notice | None:
        """The sink's policy on this revision, de-duplicated; what Alertmanager re-posts."""
        decision = self._policies[sink.name].decide(problem)
        if not isinstance(decision, Notice):
            if not recalled:
                self.metrics.skipped.labels(sink=sink.name, reason=decision.reason).inc()
            return None
        if not self._ledger.claim((problem.problem_id, problem.revision, sink.name)):
            if not recalled:
                self.metrics.skipped.labels(sink=sink.name, reason="duplicate").inc()
            return None
        if sink.name == "alertmanager":
            if decision.action == "trigger":
                self._open[problem.problem_id] = problem
            else:
                self._open.pop(problem.problem_id, None)
            self.metrics.open_problems.set(len(self._open))
        return decision

    async def _settled(self, sink: Sink, job: Job, attempt: Attempt) -> None:
        """A job's end: count it, dead-letter it if given up, and free its record."""
        problem = job.problem
        fields = {"sink": sink.name, "problem_id": problem.problem_id, "revision": problem.revision}
        if attempt.outcome == "delivered":
            self.metrics.delivered.labels(sink=sink.name).inc()
            self.counts["delivered"] += 1
            log.info(
                "notification_delivered", action=job.action, reposted=job.origin is None, **fields
            )
        else:
            reason = attempt.reason if attempt.reason in FAILURE_REASONS else "rejected"
            self.metrics.failures.labels(sink=sink.name, reason=reason).inc()
            log.warning("notification_failed", reason=attempt.reason, **fields)
            if job.origin is not None:
                error = DecodeError(
                    f"notify_{sink.name}_{attempt.reason}",
                    f"{sink.name} {job.action} of {problem.problem_id} revision "
                    f"{problem.revision} given up: {attempt.reason}",
                )
                await self._dead_letters.send(job.origin, error)
        if job.origin is not None:
            self._tracker.settle(job.origin.partition, job.origin.offset)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit the positions that moved (a failure is counted and tried again later)."""
        positions = self._tracker.committable()
        if not positions:
            return
        try:
            await asyncio.wait_for(consumer.commit(positions), timeout=10.0)
        except (KafkaError, TimeoutError) as exc:
            self._tracker.uncommit(positions)
            self.metrics.commit_failures.inc()
            log.warning("offset_commit_failed", error=str(exc))

    def _repost_when_due(self) -> None:
        """Every ``notify_repost_s``: re-post each open problem to Alertmanager (unless a
        notice of it is on its way already)."""
        now = time.monotonic()
        if now - self._reposted_at < self.settings.notify_repost_s:
            return
        self._reposted_at = now
        for worker in self._workers:
            if worker.sink.name != "alertmanager":
                continue
            for problem in list(self._open.values()):
                if not worker.has_pending(problem.problem_id):
                    worker.submit(Job(problem, "trigger", None))

    async def commit_settled(self) -> None:
        """Commit what is settled (a failure only means those records are read again)."""
        consumer = self._consumer
        if consumer is not None:
            with contextlib.suppress(Exception):
                await self._commit(consumer)

    def forget_partitions(self, partitions: set[TopicPartition]) -> None:
        """Partitions revoked: their records are no longer ours to commit."""
        self._tracker.drop(partitions)
        for tp in partitions:
            self._recall_until.pop(tp, None)

    async def recall_partitions(self, partitions: set[TopicPartition]) -> None:
        """Partitions assigned: read each problems partition with a committed offset from
        its beginning, recalling (not sending) what lies before that offset."""
        consumer = self._started_consumer
        for tp in partitions:
            if tp.topic != self.settings.topic_problems:
                continue
            committed = await consumer.committed(tp)
            if committed:
                self._recall_until[tp] = committed
                await consumer.seek_to_beginning(tp)
                log.info("partition_recalled", partition=tp.partition, until=committed)
