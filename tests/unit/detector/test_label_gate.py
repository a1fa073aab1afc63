"""The rule 'metrics wait for incident labels', on its own (fakes for the reader and the
consumer; the real broker path is tests/integration/test_global_labels.py)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter

from models.incident import RiskConfig
from stream.core.incident_risk import IncidentRiskPipeline
from stream.detector.label_gate import LabelGate

METRICS = [TopicPartition("m", 0), TopicPartition("m", 1)]
LOGS = TopicPartition("l", 0)


class _Reader:
    def __init__(self, behind: bool) -> None:
        self.answer = behind
        self.asked: list[bool] = []

    async def incidents_behind(self, *, fresh: bool = True) -> bool:
        self.asked.append(fresh)
        return self.answer


class _Consumer:
    def __init__(self, assigned: list[TopicPartition]) -> None:
        self.assigned = set(assigned)
        self.held: set[TopicPartition] = set()
        self.sought: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def paused(self) -> set[TopicPartition]:
        return set(self.held)

    def pause(self, *partitions: TopicPartition) -> None:
        self.held.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.held.difference_update(partitions)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {0, 1} if topic == "m" else None

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.sought[partition] = offset


def _gate(reader: _Reader, risk: bool = True, state: str = "detector") -> tuple[LabelGate, Counter]:
    registry = CollectorRegistry()
    paused = Counter("paused", "pauses", registry=registry)
    held_back = Counter("held_back", "records", registry=registry)
    pipeline = IncidentRiskPipeline(RiskConfig(), state=state) if risk else None  # type: ignore[arg-type]
    return LabelGate(reader, pipeline, "m", paused, held_back), paused  # type: ignore[arg-type]


async def test_without_incident_risk_nothing_waits_and_nothing_is_asked() -> None:
    reader = _Reader(behind=True)
    gate, _ = _gate(reader, risk=False)
    assert not await gate.behind(_Consumer([*METRICS, LOGS]), METRICS)
    assert reader.asked == []


async def test_the_broker_is_asked_when_metrics_came_or_something_is_held() -> None:
    reader = _Reader(behind=True)
    gate, _ = _gate(reader)
    consumer = _Consumer([*METRICS, LOGS])
    assert await gate.behind(consumer, [METRICS[0]])
    assert await gate.behind(consumer, [LOGS])  # an idle step: the last fetch decides
    assert reader.asked == [True, False]
    assert gate.pipeline is not None
    gate.pipeline.hold_labels = True
    await gate.behind(consumer, [])
    assert reader.asked[-1] is True
    assert not await gate.behind(_Consumer([]), METRICS)  # not a member yet: not asked
    assert len(reader.asked) == 3


def _value(counter: Counter) -> float:
    samples: Any = next(iter(counter.collect())).samples
    return float(samples[0].value)


def test_metrics_pause_while_behind_and_resume_after() -> None:
    gate, paused = _gate(_Reader(behind=True))
    consumer = _Consumer([*METRICS, LOGS])
    gate.apply(consumer, behind=True)
    gate.apply(consumer, behind=True)  # already paused: once
    assert consumer.held == set(METRICS)
    assert _value(paused) == 1.0
    gate.apply(consumer, behind=False)
    assert consumer.held == set()


def test_the_owner_of_the_metrics_partition_of_the_same_number_dead_letters_a_label() -> None:
    class _Replaying(_Reader):
        def replayed(self, record: Any) -> bool:
            return bool(record.offset < 3)  # read before this start: another run's to report

    gate, _ = _gate(_Replaying(behind=False))
    designated = gate.designated(_Consumer([METRICS[1], LOGS]))

    class _Label:
        def __init__(self, partition: int, offset: int) -> None:
            self.partition, self.offset = partition, offset

    # Incidents partitions 1 and 3 map to metrics partition 1 (two metrics partitions).
    assert [designated(_Label(p, 5)) for p in range(4)] == [False, True, False, True]
    assert not designated(_Label(1, 2))


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def test_per_partition_metrics_fetched_while_behind_are_fetched_again() -> None:
    """State per partition: a metrics batch read while incidents wait unread is not
    processed (its partitions go back to its first records); labels and logs are."""
    batches: Any = {
        METRICS[0]: [_Record(7), _Record(8)],
        METRICS[1]: [_Record(3)],
        LOGS: [_Record(1)],
    }
    gate, _ = _gate(_Reader(behind=True), state="partition")
    consumer = _Consumer([*METRICS, LOGS])
    assert gate.hold_back(consumer, batches, behind=False) is batches
    assert list(gate.hold_back(consumer, batches, behind=True)) == [LOGS]
    assert consumer.sought == {METRICS[0]: 7, METRICS[1]: 3}
    assert gate.held_back_total is not None
    assert _value(gate.held_back_total) == 3.0
    pooled, _ = _gate(_Reader(behind=True))  # pooled: processed, horizons held instead
    assert pooled.hold_back(consumer, batches, behind=True) is batches
