"""The detector's log stage: log records -> LogPipeline -> alerts, and what may be committed.

The detector hands over what it fetched from the logs topic; this stage decodes it (bad
records are dead-lettered by the detector's own path), runs each partition's records through
the :class:`~stream.core.logs.LogPipeline` as one *source* of event time, queues the alerts of the
windows they closed, and keeps the per-partition offsets that are safe to commit (see
:mod:`stream.core.logs.offsets`).

The watermark follows the slowest partition (see :mod:`stream.core.logs.windows`), so each round
tells it about the partitions that brought nothing: one with records still to fetch, or one
silent for less than ``idle_s`` (more may be on its way, as when a backlog is being
produced), holds the windows open; one caught up and silent for ``idle_s`` is idle and stops
holding them. When every partition is idle, event time moves on at the wall clock's pace from
the last event time seen, so the last windows (and those of a topic gone quiet, which may be
the incident) close after ``window_s + lateness_s`` of silence, as they would have had lines
kept coming.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import TopicPartition

from models.snapshot import SnapshotError
from stream.codec import DecodeError, decode
from stream.core.logs import LogPipeline
from stream.core.logs.offsets import OpenWindowOffsets
from stream.core.logs.outcome import LogBatchOutcome
from stream.detector.stage import StageContext
from stream.kafka.consumer_log import Positioned, caught_up
from stream.kafka.records import Pending, Record, evidence_of
from stream.schemas import LogEvent

__all__ = ["LogModels", "LogStage"]

log = structlog.get_logger(__name__)


class LogStage:
    """Log records of one detector: decode, window, score, publish; offsets safe to commit.

    Args:
        pipeline: The log pipeline (its models are this detector's).
        context: Where output goes, what is counted, and the dead-letter path.
        idle_s: A caught-up partition without records this long (wall clock) is idle: the
            watermark stops waiting for it. Until then it holds the watermark at its last event
            time, as records may still be on their way (a backlog being produced).
        on_outcome: Told of every outcome (closed windows, alerts) before it is published.
    """

    def __init__(
        self,
        pipeline: LogPipeline,
        context: StageContext,
        idle_s: float = 2.0,
        on_outcome: Callable[[LogBatchOutcome], None] | None = None,
        offsets: OpenWindowOffsets[TopicPartition] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self._ctx = context
        self._idle_s = idle_s
        self._on_outcome = on_outcome
        self._last_records: dict[TopicPartition, float] = {}
        self._offsets = offsets if offsets is not None else OpenWindowOffsets[TopicPartition]()
        self._carried: list[LogBatchOutcome] = []
        self._processed: tuple[list[str], list[Record], list[Record]] = ([], [], [])
        self._idle_from: tuple[float, float] | None = None
        """(monotonic time, latest event time) when the last log records arrived."""

    async def handle(
        self,
        batches: Mapping[TopicPartition, Sequence[Record]],
        consumer: Positioned,
        topic: str,
    ) -> Pending:
        """Process one fetch of the logs ``topic`` (per partition, in offset order).

        Partitions without records tell the watermark whether to wait for them: a caught-up
        one is idle, one with records still to fetch holds it. Returns the acks to await.
        """
        pending: Pending = []
        for outcome in self._carried:
            pending.extend(await self._publish(outcome))
        self._carried.clear()
        all_idle = True
        now = time.monotonic()
        for tp in consumer.assignment():
            if tp.topic != topic or batches.get(tp):
                continue
            # Silent since its last records, or since it was first seen here.
            silent_s = now - self._last_records.setdefault(tp, now)
            if await caught_up(consumer, tp) and silent_s >= self._idle_s:
                pending.extend(await self._publish(self.pipeline.set_idle(tp)))
            else:
                all_idle = False
                self.pipeline.hold(tp)  # records to fetch, or more may be on their way
        received = False
        for tp, records in batches.items():
            if records:
                received = True
                self._last_records[tp] = now
                pending.extend(await self._handle_partition(tp, records))
        if received:
            self._idle_from = (time.monotonic(), self.pipeline.latest_event_s)
        elif all_idle:
            pending.extend(await self._follow_wall_clock())
        return pending

    async def _handle_partition(self, tp: TopicPartition, records: Sequence[Record]) -> Pending:
        pending: Pending = []
        events: list[LogEvent] = []
        sources: list[Record] = []
        windows: list[int | None] = []
        for record in records:
            event = decode(record.value, LogEvent, self._ctx.max_message_bytes)
            if isinstance(event, DecodeError):
                pending.append((await self._ctx.dead_letter(record, event), None))
                windows.append(None)
            else:
                events.append(event)
                sources.append(record)
                windows.append(self.pipeline.window_index(event.ts))
        if events:
            try:
                outcome = self.pipeline.process_batch(
                    events, lambda i: evidence_of(sources[i]), source=tp
                )
            except Exception as exc:
                # A bug in per-batch work must not stop the loop. The pipeline may be part-way
                # through the batch, so retrying the events could count some twice: they go to
                # the dead-letter topic with the error, for a replay once it is fixed.
                log.exception("log_batch_failed", size=len(events))
                error = DecodeError("unexpected", f"{type(exc).__name__}: {exc}")
                for record in sources:
                    pending.append((await self._ctx.dead_letter(record, error), None))
                windows = [None] * len(windows)
            else:
                pending.extend(await self._publish(outcome))
        for record, window in zip(records, windows, strict=True):
            self._offsets.add(tp, record.offset, window)
        services, scored, read = self._processed
        services.extend(event.service for event in events)
        scored.extend(sources)
        read.extend(records)
        self._ctx.counts["scored"] += len(events)
        return pending

    async def _follow_wall_clock(self) -> Pending:
        """Every log partition is idle: event time moves on at the wall clock's pace."""
        if self._idle_from is None:
            return []
        since, latest = self._idle_from
        to = latest + (time.monotonic() - since)
        if to <= self.pipeline.latest_event_s:
            return []
        return await self._publish(self.pipeline.advance(datetime.fromtimestamp(to, UTC)))

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets of the log partitions that may be committed: nothing in an open window."""
        return self._offsets.committable(self.pipeline.closed_below)

    def take_processed(self) -> tuple[list[str], list[Record], list[Record]]:
        """What was handled since the last call: each decoded line's service and record, and
        every record read (dead letters included)."""
        processed, self._processed = self._processed, ([], [], [])
        return processed

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions this detector no longer owns (revoked in a rebalance).

        Windows stop waiting for them; alerts of windows that closed are sent with the next
        batch's.
        """
        self._offsets.forget(partitions)
        self.drop_sources(partitions)

    def drop_sources(self, partitions: Sequence[TopicPartition]) -> None:
        """Windows stop waiting for these partitions (revoked: they may come back, with their
        open windows' commit holds, which are kept until :meth:`forget`)."""
        for tp in partitions:
            self._last_records.pop(tp, None)
            self._carried.append(self.pipeline.drop_source(tp))

    def refresh_gauges(self) -> None:
        """Gauges that cost a pass over the services: refreshed now and then, not per batch."""
        logs = self._ctx.metrics.logs
        logs.open_windows.set(self.pipeline.open_windows())
        logs.commit_holds.set(self._offsets.held())
        self._ctx.metrics.models_held.labels(source="logs").set(len(self.pipeline))
        self._ctx.metrics.realised.labels(source="logs").set(
            self.pipeline.episodes_per_service_day()
        )

    async def _publish(self, outcome: LogBatchOutcome) -> Pending:
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        metrics, logs = self._ctx.metrics, self._ctx.metrics.logs
        if outcome.lines:
            metrics.events_scored.labels(source="logs").inc(outcome.lines)
        if outcome.late:
            logs.late_lines.inc(outcome.late)
        if outcome.truncated:
            logs.truncated.inc(outcome.truncated)
        if outcome.new_templates:
            logs.templates_new.inc(outcome.new_templates)
        if outcome.templates_evicted:
            logs.templates_evicted.inc(outcome.templates_evicted)
        if outcome.windows:
            logs.windows.labels(empty="true").inc(outcome.empty_windows)
            logs.windows.labels(empty="false").inc(len(outcome.windows) - outcome.empty_windows)
            metrics.anomaly_scores.labels(source="logs").observe_many(
                [w.score for w in outcome.windows if not w.warming_up]
            )
            # Per service as their windows close (nothing unless VIGIL_METRICS_SERVICES).
            metrics.services.count_events(((w.service, w.lines) for w in outcome.windows), "logs")
        if outcome.suppressed:
            metrics.alerts_suppressed.labels(kind="anomaly", source="logs").inc(outcome.suppressed)
        watermark = self.pipeline.watermark
        if watermark is not None:
            logs.watermark.set(watermark.timestamp())
        pending: Pending = []
        for alert in outcome.alerts:
            ack = await self._ctx.send_alert(
                alert,
                source="logs",
                model=alert.model.name,
                window_start=alert.event_ts.isoformat(),
            )
            if ack is not None:
                pending.append((ack, None))
        return pending


class LogModels:
    """A logs partition's state, for its snapshots: its services' templates, window models,
    template baselines and open windows, and the commit holds of those windows.

    Args:
        pipeline: The log pipeline (its services' state).
        offsets: The log stage's open windows' first offsets (the commit holds).
        topic: The logs topic.
    """

    def __init__(
        self, pipeline: LogPipeline, offsets: OpenWindowOffsets[TopicPartition], topic: str
    ) -> None:
        self.pipeline = pipeline
        self.offsets = offsets
        self.topic = topic

    def config_ids(self) -> dict[str, str]:
        return {"logs": self.pipeline.state_id}

    def export(self, partition: int, services: list[str]) -> dict[str, Any]:
        return {
            "logs": self.pipeline.export(services),
            "offsets": self.offsets.export(TopicPartition(self.topic, partition)),
        }

    def check(self, state: Any) -> None:
        logs = state.get("logs") if isinstance(state, dict) else None
        if (
            not isinstance(logs, dict)
            or not isinstance(logs.get("services"), dict)
            or not isinstance(logs.get("windows"), dict)
            or not isinstance(logs.get("closed_below"), int)
            or not isinstance(state.get("offsets"), tuple)
        ):
            raise SnapshotError("unreadable", "log state is not what this version writes")

    def install(self, partition: int, state: dict[str, Any], stale: frozenset[str]) -> list[str]:
        # One family: a snapshot whose logs changed is refused before it gets here.
        self.pipeline.install(state["logs"])
        self.offsets.install(TopicPartition(self.topic, partition), state["offsets"])
        return list(state["logs"]["services"])

    def forget(self, partitions: list[int], services: list[str]) -> None:
        self.pipeline.forget(services)
        self.offsets.forget([TopicPartition(self.topic, p) for p in partitions])
