"""Where the detector's partitions stand, on its own (a fake consumer and keeper; the real
broker paths are tests/integration/test_snapshots.py and test_chaos.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from stream.detector.positions import Positions

M0, M1, L0 = TopicPartition("m", 0), TopicPartition("m", 1), TopicPartition("l", 0)


@dataclass
class _Record:
    offset: int


@dataclass
class _Consumer:
    assigned: set[TopicPartition]
    ends: dict[TopicPartition, int] = field(default_factory=dict)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.ends.get(partition)


@dataclass
class _Keeper:
    """A snapshot keeper replaying partition 0 of topic m up to offset 10."""

    topic: str = "m"

    def replay_limit(self, partition: int) -> int | None:
        return 10 if partition == 0 else None

    def replaying(self, evidence: Any) -> bool:
        return bool(evidence.topic == "m" and evidence.partition == 0 and evidence.offset < 10)


def _batch(tp: TopicPartition, first: int, last: int) -> dict[TopicPartition, list[Any]]:
    return {tp: [_Record(o) for o in range(first, last + 1)]}


def _offsets(batches: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, list[int]]:
    return {tp: [r.offset for r in part] for tp, part in batches.items()}


def test_records_before_where_a_partition_stands_are_dropped() -> None:
    positions = Positions([])
    positions.next_offsets[M1] = 5
    kept = positions.still_ours({**_batch(M1, 3, 7), **_batch(L0, 0, 1)}, _Consumer({M1, L0}))
    assert _offsets(kept) == {M1: [5, 6, 7], L0: [0, 1]}
    assert positions.still_ours(_batch(M1, 0, 4), _Consumer({M1})) == {}


def test_after_a_rebalance_only_assigned_partitions_and_unsought_ones_are_kept() -> None:
    positions = Positions([])
    consumer = _Consumer({M1})
    fetched = {**_batch(M0, 0, 1), **_batch(M1, 0, 1), **_batch(L0, 0, 1)}
    assert set(positions.still_ours(fetched, consumer)) == {M0, M1, L0}  # no rebalance yet
    positions.rebalances += 1
    assert set(positions.still_ours(fetched, consumer)) == {M1}
    positions.restored(M1, 0, consumer)  # a restore moved it while the batch waited
    assert positions.still_ours(_batch(M1, 0, 1), consumer) == {}
    assert consumer.seeks == [(M1, 0)]
    assert positions.next_offsets[M1] == 0


def test_a_batch_crossing_the_end_of_a_replay_is_cut_there_and_read_again() -> None:
    positions = Positions([_Keeper()])  # type: ignore[list-item]
    consumer = _Consumer({M0})
    kept = positions.still_ours(_batch(M0, 8, 12), consumer)
    assert _offsets(kept) == {M0: [8, 9]}
    assert consumer.seeks == [(M0, 10)]


def test_offsets_below_a_replay_or_already_committed_are_not_committed() -> None:
    positions = Positions([_Keeper()])  # type: ignore[list-item]
    positions.committed[M1] = 4
    assert positions.to_commit({M0: 9, M1: 4, L0: 3}) == {L0: 3}
    assert positions.to_commit({M0: 10, M1: 5}) == {M0: 10, M1: 5}


def test_alerts_of_replayed_events_count_as_sent() -> None:
    positions = Positions([_Keeper()])  # type: ignore[list-item]

    @dataclass
    class _Alert:
        evidence: Any

    @dataclass
    class _Evidence:
        topic: str
        partition: int
        offset: int

    assert positions.already_sent(_Alert(_Evidence("m", 0, 9)))  # type: ignore[arg-type]
    assert not positions.already_sent(_Alert(_Evidence("m", 0, 10)))  # type: ignore[arg-type]
    assert not Positions([]).already_sent(_Alert(_Evidence("m", 0, 9)))  # type: ignore[arg-type]


def test_processed_moves_partitions_on_and_lags_count_from_commits() -> None:
    positions = Positions([])
    positions.processed({**_batch(M0, 0, 4), **_batch(L0, 0, 2)}, ("m",))
    assert positions.next_offsets == {M0: 5}
    positions.committed.update({M0: 5, M1: 2})
    consumer = _Consumer({M0, M1, L0}, ends={M0: 9, M1: 2, L0: 7})
    assert positions.lags(consumer) == {M0: 4, M1: 0}  # L0 never committed: no lag known
    positions.forget_commits([M0])
    positions.keep_only([L0])
    assert positions.committed == {M1: 2}
    assert positions.next_offsets == {}
