"""``vigil simulate`` as the stand-in log-processor, against the real broker: it runs until
stopped, and SIGTERM or SIGINT stops it cleanly (flushed, counts printed, exit 0)."""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.dev.incident_sim import IncidentSimulator
from stream.dev.log_simulate import log_simulator
from stream.settings import Settings
from tests.integration.kafka_io import end_offsets, eventually
from tests.integration.processes import detector_env

pytestmark = pytest.mark.integration


def _simulate(settings: Settings, *args: str) -> subprocess.Popen[bytes]:
    """``vigil simulate`` with this test's topics (its HTTP port goes unused)."""
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "simulate", *args],
        env=detector_env(settings, 0),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def _records(settings: Settings, topic: str) -> int:
    return sum((await end_offsets(settings.bootstrap_servers, topic)).values())


async def _finish(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> dict[str, Any]:
    try:
        out, err = await asyncio.to_thread(proc.communicate, timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    summary = orjson.loads(out.splitlines()[-1])
    assert isinstance(summary, dict)
    return summary


@pytest.mark.parametrize(
    ("args", "sig"),
    [
        (["--incidents", "--services", "4", "--rate", "0"], signal.SIGTERM),
        (["--services", "4", "--rate", "0"], signal.SIGINT),
    ],
    ids=["incidents-sigterm", "anomalies-sigint"],
)
async def test_runs_until_stopped_then_flushes_and_exits_0(
    test_settings: Settings, args: list[str], sig: signal.Signals, tmp_path: Path
) -> None:
    settings = test_settings
    labels = tmp_path / "labels.jsonl"
    if "--incidents" not in args:
        args = [*args, "--labels", str(labels)]
    proc = _simulate(settings, *args)  # no --count: until stopped
    try:

        async def past_the_old_default() -> bool:
            # Until this change, no --count meant 20,000 events: run well past it.
            assert proc.poll() is None, "it stopped by itself"
            return await _records(settings, settings.topic_metrics) > 25_000

        await eventually(past_the_old_default, timeout_s=120)
        proc.send_signal(sig)
        summary = await _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    metrics = await _records(settings, settings.topic_metrics)
    if "--incidents" in args:
        incidents = await _records(settings, settings.topic_incidents)
        # Everything counted was flushed and acknowledged before the exit.
        assert summary["sent"] == metrics + incidents > 0
        assert summary["incident_events"] == incidents
        assert summary["log_lines"] == await _records(settings, settings.topic_logs) > 0
    else:
        assert summary["sent"] == metrics > 25_000
        # Every injected anomaly's label was written, none kept back.
        assert len(labels.read_bytes().splitlines()) == summary["anomalies"] > 0


async def test_a_count_of_incidents_comes_with_the_log_lines_of_its_span(
    test_settings: Settings,
) -> None:
    settings = test_settings
    count, services, interval_s = 3_000, 3, 10.0
    proc = _simulate(
        settings,
        "--incidents",
        *("--services", str(services), "--interval-s", str(interval_s)),
        *("--count", str(count), "--rate", "0", "--log-lines-per-s", "0.2", "--sim-seed", "5"),
        *("--start", "2026-11-23T00:00:00Z"),  # the simulator's own day, as below
    )
    summary = await _finish(proc, timeout_s=120)
    duration_s = math.ceil(count / services) * interval_s
    sim = IncidentSimulator(services=services, interval_s=interval_s, seed=5)
    expected_lines = sum(
        1
        for _ in log_simulator(
            sim.names, lines_per_s=0.2, seed=5, start=sim.start, horizon_s=duration_s
        ).events(duration_s)
    )
    assert summary["log_lines"] == expected_lines > 0
    assert await _records(settings, settings.topic_logs) == expected_lines
    assert summary["sent"] - summary["incident_events"] == count
