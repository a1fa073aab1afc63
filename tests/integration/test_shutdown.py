"""SIGTERM mid-stream: a ``vigil detect`` stops fetching, finishes its batch, snapshots each
partition at the offset it commits, commits, leaves the group, and exits 0 in bounded time."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from stream.detector.detector import topic_specs
from stream.dev.broker import free_port
from stream.dev.simulate import MetricSimulator
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from tests.integration.kafka_io import committed_offsets, eventually, group_members, produce
from tests.integration.processes import detector_process, log_events, log_tail

pytestmark = pytest.mark.integration

EVENTS = 40_000
TIMEOUT_S = 20.0


async def test_sigterm_snapshots_commits_leaves_and_exits_in_bounded_time(
    test_settings: Settings, tmp_path: Path
) -> None:
    settings = test_settings.model_copy(update={"max_batch": 500})
    bootstrap, group = settings.bootstrap_servers, settings.group_id
    await ensure_topics(bootstrap, topic_specs(settings))
    events = MetricSimulator(services=12, anomaly_rate=0.01, seed=4).events(EVENTS)
    await produce(
        bootstrap, settings.topic_metrics, ((e.service.encode(), e.to_bytes()) for e in events)
    )
    log_path = tmp_path / "detect.log"
    env = {
        "VIGIL_LOG_LEVEL": "INFO",
        "VIGIL_LOG_FORMAT": "json",
        "VIGIL_SHUTDOWN_TIMEOUT_S": str(TIMEOUT_S),
    }
    with detector_process(settings, free_port(), extra_env=env, log_path=log_path) as proc:

        async def midway() -> bool:
            return sum((await committed_offsets(bootstrap, group)).values()) >= EVENTS // 4

        await eventually(midway, timeout_s=120)
        assert len(await group_members(bootstrap, group)) == 1
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, TIMEOUT_S + 10)
        took = time.monotonic() - signalled
    print(f"\nSIGTERM to exit: {took:.2f} s")
    assert code == 0, log_tail(log_path)
    assert took < TIMEOUT_S

    committed = await committed_offsets(bootstrap, group)
    assert 0 < sum(committed.values()) < EVENTS, "the stop should land mid-stream"
    # The group is empty at once: the detector left it, its partitions are free now (no
    # wait for a session timeout).
    assert len(await group_members(bootstrap, group)) == 0

    logged = log_events(log_path)
    names = [e.get("event") for e in logged]
    assert "detector_stopping" in names
    assert "detector_stopped_in" in names
    # Each metrics partition's last snapshot is at exactly its committed offset: the next
    # owner restores it and re-reads nothing.
    last_snapshot: dict[str, int] = {}
    for event in logged:
        if event.get("event") == "snapshot_saved" and event.get("topic") == settings.topic_metrics:
            last_snapshot.update(event["offset"])
    for tp, offset in committed.items():
        if tp.topic == settings.topic_metrics:
            assert last_snapshot[f"{tp.topic}:{tp.partition}"] == offset


def test_an_unreachable_cluster_is_retried_with_backoff_then_exit_1(
    test_settings: Settings, tmp_path: Path
) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    settings = test_settings.model_copy(update={"bootstrap_servers": nobody})
    log_path = tmp_path / "detect.log"
    env = {"VIGIL_LOG_LEVEL": "INFO", "VIGIL_LOG_FORMAT": "json", "VIGIL_CONNECT_TIMEOUT_S": "3"}
    started = time.monotonic()
    with detector_process(settings, free_port(), extra_env=env, log_path=log_path) as proc:
        code = proc.wait(timeout=60)
    took = time.monotonic() - started
    assert code == 1, log_tail(log_path)
    assert took >= 3.0
    names = [e.get("event") for e in log_events(log_path)]
    assert names.count("kafka_unreachable_retrying") >= 2  # 0.5 s, 1 s, 2 s, ...
    assert "detector_failed" in names
