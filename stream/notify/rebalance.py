"""The notifier's rebalance listener: partitions lost and partitions got."""

from __future__ import annotations

from typing import Protocol

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition

__all__ = ["Rebalance"]

log = structlog.get_logger(__name__)


class _Handed(Protocol):
    async def commit_settled(self) -> None: ...

    def forget_partitions(self, partitions: set[TopicPartition]) -> None: ...

    async def recall_partitions(self, partitions: set[TopicPartition]) -> None: ...


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """On revoke: commit what is settled, then forget the partitions' records. On assign:
    recall (not send) what each problems partition holds before its committed offset."""

    def __init__(self, notifier: _Handed) -> None:
        self._notifier = notifier

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # aiokafka swallows a listener's exceptions: guard and log them here.
        try:
            await self._notifier.commit_settled()
            self._notifier.forget_partitions(set(revoked))
            log.info("partitions_revoked", partitions=len(revoked))
        except Exception:
            log.exception("rebalance_listener_failed")

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            log.info("partitions_assigned", partitions=len(assigned))
            await self._notifier.recall_partitions(set(assigned))
        except Exception:
            log.exception("rebalance_listener_failed")
