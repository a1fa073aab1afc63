"""The detector's log stage on its own, with a fake of the small consumer protocol it needs
(kafka.consumer_log.Positioned) and a fake publisher: lines in, dead letters out, commits held
back to the oldest open window (the real broker path, idle partitions included, is
tests/integration/test_log_detection.py)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from stream.codec import DecodeError
from stream.core.logs import LogPipeline
from stream.detector.log_stage import LogStage
from stream.detector.stage import StageContext
from stream.kafka.records import Record
from stream.settings import Settings
from stream.telemetry import DetectorMetrics

TOPIC = "t.logs"
TP = TopicPartition(TOPIC, 0)
T0 = datetime(2026, 11, 23, tzinfo=UTC)


class _Consumer:
    """Assigned one partition, read up to ``read`` of ``end``."""

    def __init__(self, read: int, end: int) -> None:
        self.read, self.end = read, end

    def assignment(self) -> Collection[TopicPartition]:
        return {TP}

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.end

    async def position(self, partition: TopicPartition) -> int:
        return self.read


def _acked() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


def _stage(
    idle_s: float, metrics: DetectorMetrics | None = None
) -> tuple[LogStage, list[tuple[int, str]]]:
    letters: list[tuple[int, str]] = []

    class _Publisher:
        async def send_alert(self, alert: Any) -> Any:
            return _acked()

    async def dead_letter(record: Record, error: DecodeError) -> Any:
        letters.append((record.offset, error.reason))
        return _acked()

    context = StageContext(
        _Publisher(),  # type: ignore[arg-type]  # a stand-in
        metrics or DetectorMetrics(CollectorRegistry(), [TOPIC]),
        collections.Counter(),
        dead_letter,
        4096,
    )
    pipeline = LogPipeline(Settings(log_window_s=30, log_lateness_s=10).log_config())
    return LogStage(pipeline, context, idle_s=idle_s), letters


def _line(offset: int, seconds: float) -> Record:
    value = orjson.dumps(
        {
            "ts": (T0 + timedelta(seconds=seconds)).isoformat(),
            "service": "api",
            "level": "INFO",
            "message": f"GET /items/{offset} 200",
        }
    )
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, None, value, None, len(value), -1, [])


async def test_bad_lines_are_dead_lettered_and_commits_wait_for_open_windows() -> None:
    stage, letters = _stage(idle_s=3600)
    bad = ConsumerRecord(TOPIC, 0, 2, 0, 0, None, b"{nope", None, 5, -1, [])
    records = [_line(0, 1), _line(1, 2), bad, _line(3, 40), _line(4, 41)]
    await stage.handle({TP: records}, _Consumer(read=5, end=5), TOPIC)
    assert letters == [(2, "invalid_json")]
    # 41 s (lateness 10) closed [0, 30): its lines and the dead letter among them are done;
    # [30, 60) is open from offset 3 on, and holds the commit there.
    assert stage.committable() == {TP: 3}
    await stage.handle({TP: [_line(5, 75)]}, _Consumer(read=6, end=6), TOPIC)
    assert stage.committable() == {TP: 5}  # 75 s closed [30, 60)
    services, _, read = stage.take_processed()
    assert services == ["api"] * 5
    assert [r.offset for r in read] == [0, 1, 2, 3, 4, 5]


async def test_log_lines_count_per_service_as_their_window_closes_when_configured() -> None:
    registry = CollectorRegistry()
    stage, _ = _stage(3600, DetectorMetrics(registry, [TOPIC], service_pattern="api"))

    def lines() -> float | None:
        labels = {"service": "api", "source": "logs"}
        return registry.get_sample_value("vigil_service_events_total", labels)

    await stage.handle({TP: [_line(0, 1), _line(1, 2)]}, _Consumer(read=2, end=2), TOPIC)
    assert lines() is None  # [0, 30) is still open: its lines are not scored yet
    await stage.handle({TP: [_line(2, 40), _line(3, 41)]}, _Consumer(read=4, end=4), TOPIC)
    assert lines() == 2  # 41 s (lateness 10) closed [0, 30)
    await stage.handle({TP: [_line(4, 75)]}, _Consumer(read=5, end=5), TOPIC)
    assert lines() == 4
