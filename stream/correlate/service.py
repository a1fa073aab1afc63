"""``vigil correlate``: alerts in, problems out (``docs/problems.md``).

One consumer group reads two topics. Alerts (keyed by service) are routed to the scoped
alerts topic, keyed by their scope (the scope label's value), so every alert of a scope lands
on one partition whatever service raised it; the owner of that partition groups them into
problems (:class:`~stream.core.problems.scoped_log.ScopedLog`) and publishes each change to
the problems topic, keyed by ``problem_id``. Offsets are committed once what a batch produced
is acknowledged; ticks written into every scoped partition move event time while no alert
comes (:mod:`.ticks`, :mod:`stream.core.problems.event_clock`). More correlators share the
scopes the Kafka way; a partition's new owner restores it from its snapshot
(:mod:`.partitions`).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from stream.codec import DecodeError, encode
from stream.core.problems.event_clock import EventClock
from stream.core.problems.merge import EventTimeMerge
from stream.correlate.metrics import CorrelateMetrics
from stream.correlate.partitions import ScopedPartitions
from stream.correlate.router import Router
from stream.correlate.setup import correlation_setup
from stream.correlate.ticks import Ticker
from stream.detector.http import HttpServer, create_service_app
from stream.detector.http_guard import HttpGuard
from stream.detector.shutdown import StopDeadline
from stream.kafka.kafka_options import kafka_options
from stream.kafka.publisher import Ack, Publisher
from stream.kafka.records import Record, dead_letter_of
from stream.kafka.silences import SilenceFollower
from stream.kafka.topic_specs import topic_spec
from stream.kafka.topics import ensure_topics
from stream.schemas import Problem
from stream.settings import Settings

__all__ = ["Correlate", "Silencer"]

log = structlog.get_logger(__name__)

Silencer = Callable[[Problem], list[str]]
"""What silences a problem (silence ids, windows, deploys); empty: nothing."""

_RETRY_S = (0.5, 8.0)
"""Retries of a failed batch: the first wait, doubling up to the second."""

_TOPICS = ("topic_alerts", "topic_scoped_alerts", "topic_problems", "topic_silences", "topic_dlq")


class Correlate:
    """The correlator service: routes, groups, publishes, commits (see the module docstring).

    Args:
        settings: The configuration (``correlate_*``, Kafka, topics, snapshots, HTTP).
        serve_http: Serve ``/healthz``, ``/readyz``, ``/metrics`` and ``/models``.
        silencer: What silences a problem (default: the silences topic, the maintenance
            windows and the deploy rule of the settings, at the problem's latest alert).
    """

    def __init__(
        self, settings: Settings, *, serve_http: bool = True, silencer: Silencer | None = None
    ) -> None:
        self.settings = settings
        self.config, self.topology = correlation_setup(settings)
        self.registry = CollectorRegistry()
        self.metrics = CorrelateMetrics(self.registry)
        self.partitions = ScopedPartitions(settings, self.config, self.topology, self.metrics)
        self.publisher = Publisher.from_settings(settings, f"{settings.client_id}-correlate")
        self.silences = settings.silence_book(self.topology)
        """Silences (from the silences topic), maintenance windows and the deploy rule."""
        self._follower = SilenceFollower(settings, self.silences)
        self.registry.register(self._follower)
        self.silencer: Silencer = silencer or self._silenced_by
        self.clock = EventClock()
        self.committed: dict[int, int] = {}
        """Scoped partitions held -> the offset committed."""
        self.counts: collections.Counter[str] = collections.Counter()
        """Running totals: alerts ``routed``, ``correlated`` and ``dead_lettered``."""
        self.router = Router(
            self.publisher,
            settings.topic_scoped_alerts,
            self.config.scope_label,
            self.clock,
            self._dead_letter,
            self._count_routed,
        )
        self.ticker = Ticker(
            self.publisher,
            settings.topic_scoped_alerts,
            self.clock,
            every_s=settings.correlate_tick_s,
            lateness_s=settings.correlate_lateness_s,
            written=self.metrics.ticks,
        )
        self._alerts_committed: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        guard = HttpGuard(
            max_body_bytes=settings.http_max_body_bytes,
            token=settings.http_token,
            registry=self.registry,
        )
        self._http = (
            HttpServer(
                create_service_app(self, "Vigil correlate", guard),
                settings.http_host,
                settings.http_port,
            )
            if serve_http
            else None
        )
        self._stop_requested = asyncio.Event()
        self._started = False
        self._rewind_due = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Create missing topics, connect, join the group and serve HTTP."""
        settings = self.settings
        if settings.create_topics:
            specs = [topic_spec(settings, name) for name in _TOPICS]
            await ensure_topics(
                settings.bootstrap_servers, specs, kafka_options=kafka_options(settings)
            )
        try:
            await self.publisher.start()
            await self._follower.start()
        except BaseException:
            await self._release()
            raise
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.correlate_group_id,
            client_id=f"{settings.client_id}-correlate",
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            isolation_level="read_committed",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=min(3_000, settings.session_timeout_ms // 3),
            **kafka_options(settings),
        )
        consumer.subscribe(
            [settings.topic_alerts, settings.topic_scoped_alerts], listener=_Handover(self)
        )
        try:
            await consumer.start()
            if self._http is not None:
                await self._http.start()
        except BaseException:
            await self._release()  # what did start; a retry starts again
            raise
        self._started = True
        log.info("correlate_started", group_id=settings.correlate_group_id)

    async def stop(self, deadline: StopDeadline | None = None) -> bool:
        """Leave the group (snapshotting what it held) and disconnect; safe to call twice.
        The stop watchdog bounds it (``deadline`` is not divided among its steps)."""
        self._stop_requested.set()
        await self._release()
        if self._started:
            self._started = False
            log.info("correlate_stopped")
        return True

    async def _release(self) -> None:
        """Stop whatever started: the consumer (its partitions are revoked, so snapshotted),
        the publisher, the silences follower and the HTTP server."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()  # revokes the partitions: their snapshots are written
        await self.publisher.stop()
        await self._follower.stop()
        if self._http is not None:
            await self._http.stop()

    def request_stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (signal-handler safe)."""
        self._stop_requested.set()

    async def run(self) -> None:
        """Work until :meth:`request_stop`. A Kafka error (the broker away, a commit refused
        after a rebalance) is logged, counted and retried with backoff: the work since the
        last commit is rewound (:meth:`_rewind`) and done again."""
        delay = _RETRY_S[0]
        while not self._stop_requested.is_set():
            try:
                if self._rewind_due:
                    await self._rewind()
                await self.step()
                delay = _RETRY_S[0]
            except KafkaError as exc:
                self._rewind_due = True
                self.counts["kafka_errors"] += 1
                self.metrics.kafka_errors.inc()
                log.warning("correlate_kafka_error", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_S[1])

    async def _rewind(self) -> None:
        """Back to the last commit: each partition held is read again from its committed
        offset, scoped ones restored from their snapshots, the held alerts dropped (what a
        failed batch published comes again, the same messages)."""
        consumer = self._consumer
        assert consumer is not None
        async with self._lock:
            for tp in consumer.assignment():
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
            self.partitions.logs.clear()
            self.committed.clear()
            self.router.merge = EventTimeMerge()
            self._alerts_committed.clear()
            self._rewind_due = False
        log.info("correlate_rewound", partitions=len(consumer.assignment()))

    # -- work --------------------------------------------------------------------------------

    async def step(self, timeout_s: float = 1.0) -> int:
        """One batch: route alerts, read scoped records into problems, publish, wait for the
        acknowledgements, commit; then a tick when one is due. Returns the records read."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        wait_ms = int(min(timeout_s, self.settings.correlate_tick_s) * 1000)
        batch = await consumer.getmany(timeout_ms=wait_ms, max_records=self.settings.max_batch)
        read = 0
        async with self._lock:
            pending: list[Ack] = []
            offsets: dict[TopicPartition, int] = {}
            alerts_topic = self.settings.topic_alerts
            for tp, records in batch.items():
                if tp.topic == alerts_topic:
                    if tp in consumer.assignment():
                        pending += await self.router.take(records)
                elif await self._held(consumer, tp, records[0].offset):
                    pending += await self._correlate(tp.partition, records)
                    offsets[tp] = records[-1].offset + 1
                read += len(records)  # else revoked while the fetch was on its way
            pending += await self.router.release(consumer, alerts_topic)
            offsets |= {
                tp: o
                for tp, o in self.router.commits(alerts_topic).items()
                if self._alerts_committed.get(tp) != o
            }
            if pending:
                await asyncio.gather(*pending)
            if offsets:
                await consumer.commit(offsets)
                for tp, offset in offsets.items():
                    if tp.topic == self.settings.topic_scoped_alerts:
                        self.committed[tp.partition] = offset
                    else:
                        self._alerts_committed[tp] = offset
            self.partitions.snapshot_due(self.committed)
            self.metrics.open.set(self.partitions.open_problems)
        consumer = self._consumer  # None once stop() released it meanwhile
        if consumer is not None:
            await self.ticker.tick_if_due(consumer)
        return read

    async def _held(self, consumer: AIOKafkaConsumer, tp: TopicPartition, first: int) -> bool:
        """Whether a scoped partition's records can be read: it is held and restored. One
        assigned whose restore failed (the broker away) is restored now, else read again
        later from ``first``."""
        if tp.partition in self.partitions.logs:
            return True
        if tp not in consumer.assignment():
            return False
        try:
            await self._restore(consumer, tp)
            return True
        except Exception:
            log.warning("scoped_partition_restore_retry", partition=tp.partition, exc_info=True)
            consumer.seek(tp, first)
            await asyncio.sleep(1.0)
            return False

    async def _restore(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        committed = await consumer.committed(tp)
        await self.partitions.restore(tp.partition, committed)
        if committed is not None:
            self.committed[tp.partition] = committed
        latest = self.partitions.logs[tp.partition].latest_event_s()
        if latest is not None:
            self.clock.seen(latest, time.time())

    def _count_routed(self) -> None:
        self.metrics.alerts.labels(outcome="routed").inc()
        self.counts["routed"] += 1

    async def _correlate(self, partition: int, records: Sequence[Record]) -> list[Ack]:
        """Read a scoped partition's records; publish the problem messages they cause."""
        scoped = self.partitions.logs[partition]
        pending: list[Ack] = []
        now = time.time()
        for record in records:
            taken = scoped.take(record.offset, record.value)
            if taken.error is not None:
                pending.append(await self._dead_letter(record, taken.error))
                continue
            if taken.alert is not None:
                self.clock.seen(taken.alert.event_ts.timestamp(), now)
                self.metrics.alerts.labels(outcome="correlated").inc()
                self.counts["correlated"] += 1
            for problem in taken.problems:
                pending.append(await self._publish(problem))
        return pending

    def _silenced_by(self, problem: Problem) -> list[str]:
        """What silences ``problem`` at its latest alert's event time."""
        return self.silences.silenced_by(problem, problem.updated_at)

    async def _publish(self, problem: Problem) -> Ack:
        silenced_by = self.silencer(problem)
        if silenced_by:
            problem = problem.model_copy(update={"silenced": True, "silenced_by": silenced_by})
            self.metrics.silenced.inc()
        self.metrics.problems.labels(status=problem.status).inc()
        topic, key = self.settings.topic_problems, problem.problem_id.encode()
        return await self.publisher.send_bytes(topic, key, encode(problem))

    async def _dead_letter(self, record: Record, error: DecodeError) -> Ack:
        self.metrics.alerts.labels(outcome="dead_letter").inc()
        self.counts["dead_lettered"] += 1
        letter = dead_letter_of(record, error, datetime.now(UTC))
        return await self.publisher.send_dead_letter(letter, record.key)

    # -- what the HTTP API shows -------------------------------------------------------------

    def is_ready(self) -> bool:
        return self._started

    def describe_models(self) -> dict[str, Any]:
        config = self.config
        return {
            "correlation": {
                "window_s": config.window_s,
                "hold_s": config.hold_s,
                "quiet_s": config.quiet_s,
                "scope_label": config.scope_label,
                "group_labels": list(config.group_labels),
                "topology_services": len(self.topology.depends_on),
            },
            "partitions": sorted(self.partitions.logs),
            "open_problems": self.partitions.open_problems,
        }


class _Handover(ConsumerRebalanceListener):  # type: ignore[misc]
    """Scoped partitions lost (snapshotted at their commit) and got (restored)."""

    def __init__(self, service: Correlate) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        service = self.service
        async with service._lock:
            for tp in revoked:
                if tp.topic == service.settings.topic_alerts:
                    service.router.merge.drop(tp.partition)
                    service._alerts_committed.pop(tp, None)
                if tp.topic == service.settings.topic_scoped_alerts:
                    committed = service.committed.pop(tp.partition, None)
                    service.partitions.release(tp.partition, committed)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        service = self.service
        consumer = service._consumer
        assert consumer is not None
        async with service._lock:
            for tp in sorted(assigned):
                if tp.topic != service.settings.topic_scoped_alerts:
                    continue
                if tp.partition in service.partitions.logs:
                    continue
                try:
                    await service._restore(consumer, tp)
                except Exception:  # retried when its records come (Correlate._held)
                    log.exception("scoped_partition_restore_failed", partition=tp.partition)
