"""Around each batch: what it counts going in, and what follows once it is committed
(training rows out, snapshots due, champions polled, gauges refreshed)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from aiokafka import TopicPartition

from stream.detector.parts import DetectorParts
from stream.detector.positions import Seeking
from stream.kafka.records import Record

__all__ = ["Upkeep"]

_LAG_REFRESH_S = 1.0
_CHAMPIONS_POLL_S = 1.0


class Upkeep:
    """A detector's upkeep around its batches.

    Args:
        parts: The detector's parts.
        monotonic: The clock of the polling intervals (injected in tests).
    """

    def __init__(
        self, parts: DetectorParts, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._parts = parts
        self._monotonic = monotonic
        self._champions_polled_at = 0.0
        self._gauges_refreshed_at = 0.0

    def consumed(self, *batches: Mapping[TopicPartition, Sequence[Record]]) -> None:
        """Count the records of a step's batches (the group's batch sized first)."""
        metrics, counts = self._parts.metrics, self._parts.counts
        if count := sum(len(part) for part in batches[0].values()) if batches else 0:
            metrics.batch_size.observe(count)
        for batch in batches:
            for tp, part in batch.items():
                counts["consumed"] += len(part)
                metrics.events_consumed.labels(topic=tp.topic).inc(len(part))

    async def after(
        self,
        metric_records: list[Record],
        scored: tuple[list[str], list[Record]],
        consumer: Seeking | None,
    ) -> None:
        """What follows a committed batch of ``metric_records`` (``scored``: the services
        and records the metrics stage scored)."""
        parts = self._parts
        parts.metrics.training_rows.inc(await parts.training.flush())
        log_processed = parts.logs.take_processed()
        if parts.snapshots is not None and metric_records:
            parts.snapshots.processed(*scored, metric_records)
        if parts.log_snapshots is not None and log_processed[2]:
            parts.log_snapshots.processed(*log_processed)
        for keeper in parts.positions.keepers:
            await keeper.snapshot_due()
        now = self._monotonic()
        if now - self._champions_polled_at >= _CHAMPIONS_POLL_S:
            self._champions_polled_at = now
            await parts.champions.poll()
        if consumer is not None and now - self._gauges_refreshed_at >= _LAG_REFRESH_S:
            self._gauges_refreshed_at = now
            self._refresh_gauges(consumer)

    def _refresh_gauges(self, consumer: Seeking) -> None:
        parts = self._parts
        parts.logs.refresh_gauges()
        parts.risk.refresh_gauges()
        realised = parts.pipeline.episodes_per_service_day()
        parts.metrics.realised.labels(source="metrics").set(realised)
        for tp, lag in parts.positions.lags(consumer).items():
            parts.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)
