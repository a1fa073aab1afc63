"""The silences follower's records (no broker): puts, tombstones and malformed records."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from stream.kafka.silences import SilenceFollower
from stream.settings import Settings

SILENCE = {
    "silence_id": "s1",
    "service": "db",
    "starts_at": "2026-12-07T02:00:00Z",
    "ends_at": "2026-12-07T04:00:00Z",
}


def test_puts_and_tombstones_change_the_book() -> None:
    follower = SilenceFollower(Settings())
    assert follower.apply(b"s1", orjson.dumps(SILENCE)) == "put"
    assert "s1" in follower.book
    assert follower.apply(b"s1", None) == "removed"
    assert "s1" not in follower.book
    assert follower.apply(b"s1", None) == "removed"  # a tombstone of one never seen


def test_malformed_records_are_logged_counted_and_change_nothing() -> None:
    follower = SilenceFollower(Settings())
    follower.apply(b"s1", orjson.dumps(SILENCE))
    bad = [
        (b"s1", b"{not json"),
        (b"s1", orjson.dumps({"silence_id": "s1"})),  # no times
        (b"other", orjson.dumps(SILENCE)),  # a key that is not its id
        (None, orjson.dumps(SILENCE)),
        (b"\xff", None),
    ]
    with capture_logs() as logs:
        outcomes = [follower.apply(key, value, offset=i) for i, (key, value) in enumerate(bad)]
    assert outcomes == ["malformed"] * len(bad)
    assert follower.counts["malformed"] == len(bad)
    assert [e["event"] for e in logs] == ["silence_record_malformed"] * len(bad)
    assert [e["offset"] for e in logs] == list(range(len(bad)))
    assert follower.book.get("s1") is not None


def test_the_counts_are_exported() -> None:
    follower = SilenceFollower(Settings())
    follower.apply(b"s1", orjson.dumps(SILENCE))
    follower.apply(b"s1", b"nope")
    registry = CollectorRegistry()
    registry.register(follower)
    value = registry.get_sample_value
    assert value("vigil_silences_records_total", {"outcome": "put"}) == 1
    assert value("vigil_silences_records_total", {"outcome": "malformed"}) == 1
    assert value("vigil_silences_records_total", {"outcome": "removed"}) == 0
    assert value("vigil_silences_read_errors_total") == 0
    assert value("vigil_silences_held") == 1


class _FlakyConsumer:
    """Fails its first reads as a broker away would, then returns one record."""

    def __init__(self, failures: int) -> None:
        self.failures = failures

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[str, list[Any]]:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker away")
        await asyncio.sleep(timeout_ms / 1000)
        record = SimpleNamespace(key=b"s1", value=orjson.dumps(SILENCE), offset=0)
        return {"tp": [record]}


async def test_failed_reads_are_retried_with_backoff_never_fatal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("stream.kafka.silences._BACKOFF_S", (0.01, 0.02))
    follower = SilenceFollower(Settings(), poll_s=0.01)
    task = asyncio.create_task(follower._follow(_FlakyConsumer(failures=3)))  # type: ignore[arg-type]  # a fake of getmany
    try:
        with capture_logs() as logs:
            for _ in range(1000):  # up to 10 s or more: generous, for a loaded machine
                if "s1" in follower.book:
                    break
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert "s1" in follower.book
    assert follower.counts["errors"] == 3
    retries = [e["retry_in_s"] for e in logs if e["event"] == "silences_read_failed"]
    assert retries == [0.01, 0.02, 0.02]
