"""Where each of the detector's input partitions stands.

The next offset to process (the state holds the records before it, restored or learned),
the offset the group committed, the partitions a restore moved since the last fetch, and,
through the snapshot keepers, the offset a restored partition is being replayed up to. The
detector asks it which fetched records are its to process and which offsets it may commit.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from aiokafka import TopicPartition

from stream.detector.rebalance import PartitionSnapshots
from stream.kafka.records import Record
from stream.schemas import Alert

__all__ = ["Positions", "Seeking"]

Batches = dict[TopicPartition, list[Record]]


class Seeking(Protocol):
    """What positions need of a consumer: its assignment, moving a partition, its end."""

    def assignment(self) -> Collection[TopicPartition]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...


class Positions:
    """The detector's input partitions: processed up to where, committed up to where.

    Args:
        keepers: The snapshot keepers (one per topic whose state is snapshotted), which know
            what a restored partition is being replayed up to.
    """

    def __init__(self, keepers: Sequence[PartitionSnapshots]) -> None:
        self.keepers = keepers
        self.next_offsets: dict[TopicPartition, int] = {}
        """Metrics or logs partition -> the next offset to process (records before it were:
        the state holds them)."""
        self.committed: dict[TopicPartition, int] = {}
        """The offsets this detector committed, per partition it holds."""
        self.sought: set[TopicPartition] = set()
        """Partitions a restore moved (seek) since the last fetch returned: what that fetch
        holds of them is from before the seek (aiokafka fetches from the committed offset
        before the assignment callback restores), and is dropped."""
        self.rebalances = 0
        self._checked_rebalances = 0

    def still_ours(self, batches: Batches, consumer: Seeking) -> Batches:
        """The batch without what is not this detector's to process: records of partitions
        assigned elsewhere by a rebalance that ran while they were fetched, records of
        partitions a restore moved meanwhile, and metrics or log records before where their
        partition stands (a fetch made before a restore's seek, or from a committed offset
        behind what the state holds, can still deliver them). A replay ends at a batch's
        end: a batch that crosses it is cut there, and the rest fetched again."""
        kept = {tp: part for tp, part in batches.items() if tp not in self.sought}
        if self.rebalances != self._checked_rebalances:
            self._checked_rebalances = self.rebalances
            assignment = consumer.assignment()
            kept = {tp: part for tp, part in kept.items() if tp in assignment}
        resume = self.next_offsets
        for tp, part in list(kept.items()):
            if part[0].offset < resume.get(tp, -1):
                part = [r for r in part if r.offset >= resume[tp]]
                if part:
                    kept[tp] = part
                else:
                    del kept[tp]
        for tp, part in list(kept.items()):
            until = self.replay_limit(tp)
            if until is not None and part[0].offset < until <= part[-1].offset:
                kept[tp] = [r for r in part if r.offset < until]
                consumer.seek(tp, until)
        return kept

    def to_commit(self, offsets: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """The offsets worth committing: not committed already, and not below the committed
        offset a restored partition is being replayed up to (committing it would move the
        group's offset back, and a crash during the replay would then re-send what was
        already sent or committed)."""
        return {
            tp: offset
            for tp, offset in offsets.items()
            if self.committed.get(tp) != offset and not self._replaying_below(tp, offset)
        }

    def processed(self, batches: Batches, topics: Collection[str]) -> None:
        """The records of ``batches`` on ``topics`` are in the state now."""
        for tp, part in batches.items():
            if tp.topic in topics:
                self.next_offsets[tp] = part[-1].offset + 1

    def restored(self, tp: TopicPartition, offset: int, consumer: Seeking) -> None:
        """A restore put partition ``tp``'s state at ``offset``: read on from there."""
        consumer.seek(tp, offset)
        self.sought.add(tp)
        self.next_offsets[tp] = offset

    def keep_only(self, assigned: Iterable[TopicPartition]) -> None:
        """Forget where the partitions not in ``assigned`` stand (another detector's now)."""
        for tp in set(self.next_offsets) - set(assigned):
            del self.next_offsets[tp]

    def forget_commits(self, partitions: Iterable[TopicPartition]) -> None:
        """Revoked partitions' commits are their new owner's."""
        for tp in partitions:
            self.committed.pop(tp, None)

    def lags(self, consumer: Seeking) -> dict[TopicPartition, int]:
        """Records between each assigned partition's end and its committed offset."""
        out = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = self.committed.get(tp)
            if highwater is not None and position is not None:
                out[tp] = max(0, highwater - position)
        return out

    def already_sent(self, alert: Alert) -> bool:
        """Whether the event an alert points at was processed before a restore from a
        snapshot (its alerts were sent and acknowledged then)."""
        return any(keeper.replaying(alert.evidence) for keeper in self.keepers)

    def replay_limit(self, tp: TopicPartition) -> int | None:
        """The committed offset a restored partition is being replayed up to, if it is."""
        for keeper in self.keepers:
            if keeper.topic == tp.topic:
                return keeper.replay_limit(tp.partition)
        return None

    def _replaying_below(self, tp: TopicPartition, offset: int) -> bool:
        until = self.replay_limit(tp)
        return until is not None and offset < until
