"""Committing a batch's offsets once its output is acknowledged.

At least once, offsets go to the group in the background while the next batch is fetched
(:class:`~stream.kafka.committer.BackgroundCommitter`); exactly once, output and offsets of each
input partition are committed in one transaction before the next fetch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sized

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from stream.detector.positions import Positions
from stream.kafka.committer import BackgroundCommitter
from stream.kafka.transactions import TransactionalPublisher
from stream.telemetry import DetectorMetrics

__all__ = ["Commits"]

log = structlog.get_logger(__name__)


class Commits:
    """Commits the offsets the detector's positions say are worth committing.

    Args:
        consumer: The group member (at least once: its offsets are committed).
        positions: Where partitions stand (what is worth committing; updated on commit).
        transactions: The exactly-once producers (None: at least once).
        metrics: Commits and commit errors are counted.
        models: What the detector holds (its size is the ``models_held`` gauge).
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        positions: Positions,
        transactions: TransactionalPublisher | None,
        metrics: DetectorMetrics,
        models: Sized,
    ) -> None:
        self._consumer = consumer
        self._positions = positions
        self._transactions = transactions
        self._metrics = metrics
        self._models = models
        self.background: BackgroundCommitter[TopicPartition] = BackgroundCommitter(self._commit)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit a batch's ``offsets`` (its output acknowledged): in the batch's
        transaction under exactly once, else in the background."""
        offsets = self._positions.to_commit(offsets)
        if self._transactions is None:
            if offsets:
                self.background.submit(offsets)
            return
        try:
            await self._transactions.commit(offsets)
        except Exception:
            self._metrics.kafka_errors.labels(operation="commit").inc()
            raise
        self._positions.committed.update(offsets)
        if offsets:
            self._metrics.commits.inc()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under us: the new owner re-reads from the last commit.
            self._metrics.kafka_errors.labels(operation="commit").inc()
            log.warning("commit_failed", error=str(exc))
            return
        self._positions.committed.update(offsets)
        self._metrics.commits.inc()
        self._metrics.models_held.labels(source="metrics").set(len(self._models))
