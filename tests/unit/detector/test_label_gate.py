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


def _gate(reader: _Reader, risk: bool = True) -> tuple[LabelGate, Counter]:
    paused = Counter("paused", "pauses", registry=CollectorRegistry())
    pipeline = IncidentRiskPipeline(RiskConfig()) if risk else None
    return LabelGate(reader, pipeline, "m", paused), paused  # type: ignore[arg-type]


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
