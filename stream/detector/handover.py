"""A rebalance hands partitions over: what the detector does when it loses some and gets
others.

Losing: once the batch in hand is done, commit what is acknowledged, snapshot the revoked
metrics and logs partitions and release their transactional producers, so the next owner
starts where this detector stopped (a failure only means it re-reads more). Getting: restore
the new partitions from their snapshots and resume each at its snapshot's offset.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from stream.detector.log_stage import LogStage
from stream.detector.positions import Positions
from stream.kafka.committer import BackgroundCommitter
from stream.kafka.consumer_log import ConsumerLog
from stream.kafka.transactions import TransactionalPublisher
from stream.settings import Settings
from stream.telemetry import DetectorMetrics

__all__ = ["Handover"]

log = structlog.get_logger(__name__)


class Handover(ConsumerRebalanceListener):  # type: ignore[misc]
    """The consumer's rebalance listener: partitions lost and partitions got.

    aiokafka logs and swallows what a listener raises: failures are logged here, and the
    consumer goes on.

    Args:
        consumer: The group member whose partitions change.
        positions: Where the partitions stand (their keepers restore and snapshot them).
        batch_lock: Held while a batch is in hand: a rebalance waits for it.
        committer: Commits what is acknowledged (flushed before partitions go).
        transactions: The exactly-once producers (None: at least once).
        logs: The log stage (its open windows of lost partitions go).
        logs_snapshotted: Whether logs partitions are snapshotted (their open windows then
            stay until the assignment shows where they went).
        metrics: The detector's metrics (lag of lost partitions is no longer reported).
        cluster_id: The cluster's id (snapshots name it).
        settings: The configuration (probe consumers of the restore).
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        positions: Positions,
        batch_lock: asyncio.Lock,
        committer: BackgroundCommitter[TopicPartition],
        transactions: TransactionalPublisher | None,
        logs: LogStage,
        logs_snapshotted: bool,
        metrics: DetectorMetrics,
        cluster_id: str | None,
        settings: Settings,
    ) -> None:
        self._consumer = consumer
        self._positions = positions
        self._lock = batch_lock
        self._committer = committer
        self._transactions = transactions
        self._logs = logs
        self._logs_snapshotted = logs_snapshotted
        self._metrics = metrics
        self._cluster_id = cluster_id
        self._settings = settings

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        try:
            await self.revoked(revoked)
        except Exception:
            log.exception("partitions_revoked_failed")

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        try:
            await self.assigned(assigned)
        except Exception:
            log.exception("partitions_assigned_failed")

    async def revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """Commit, snapshot and release the revoked partitions once the batch is done."""
        async with self._lock:
            self._positions.rebalances += 1
            with contextlib.suppress(Exception):
                await self._committer.flush()
            for keeper in self._positions.keepers:
                await keeper.revoked(tp.partition for tp in revoked if tp.topic == keeper.topic)
            if self._transactions is not None:
                await self._transactions.release(revoked)
            self.forget(revoked)
        log.info("partitions_revoked", partitions=_names(revoked))

    async def assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """Restore the assigned partitions from their snapshots; resume each where its
        snapshot stands."""
        async with self._lock:
            self._positions.rebalances += 1
            for keeper in self._positions.keepers:
                mine = [tp.partition for tp in assigned if tp.topic == keeper.topic]
                source = ConsumerLog(
                    self._consumer, keeper.topic, mine, self._cluster_id, self._settings
                )
                try:
                    resume = await keeper.assigned(mine, source)
                finally:
                    await source.close()
                for partition, offset in resume.items():
                    tp = TopicPartition(keeper.topic, partition)
                    self._positions.restored(tp, offset, self._consumer)
            self._positions.keep_only(assigned)
        log.info("partitions_assigned", partitions=_names(assigned))

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions revoked in a rebalance: their commits are the new owner's now. With
        snapshots, a logs partition's open windows and their commit holds stay until the
        assignment shows where it went (its keeper drops them then)."""
        self._positions.forget_commits(partitions)
        for tp in partitions:
            # Its lag is the new owner's to report: a frozen value here would hold alerts.
            with contextlib.suppress(KeyError):
                self._metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        if self._logs_snapshotted:
            self._logs.drop_sources(partitions)
        else:
            self._logs.forget(partitions)


def _names(partitions: Sequence[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)
