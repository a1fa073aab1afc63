"""A broker outage while a ``vigil detect`` works through a backlog: quiet and bounded.

The broker is killed (kill -9) with most of a backlog still to score, and stays away.
Meanwhile the detector logs the condition once and then once per backoff step (the Kafka
client's lines held back are counted), says why on ``/readyz``, and idles. SIGTERM during
the outage ends it within ``VIGIL_SHUTDOWN_TIMEOUT_S``, whatever the client still retries.
Then the broker comes back on the same port and data, a new detector finishes the backlog,
and the alerts are exactly those of one detector that never stopped, each once (exactly once:
what was in flight when the broker died is aborted, and scored again after it).

An outage of 30 s shows what 60 s would: the backoff steps (1 s doubling to 60 s) have
reached 16 s by then, so a minute adds one line per kind, and the CPU use is a steady idle.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from stream.detector.detector import topic_specs
from stream.dev.broker import free_port
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from tests.integration.fleet import (
    Progress,
    check_alerts,
    end_offsets_of,
    own_broker,
    simulated,
    take_down,
)
from tests.integration.kafka_io import produce
from tests.integration.processes import detector_process, log_events, log_tail

pytestmark = pytest.mark.integration

BACKLOG = 60_000
SERVICES = 30
PARTITIONS = 6
OUTAGE_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0


async def test_an_outage_is_quiet_and_a_sigterm_during_it_is_bounded(
    test_settings: Settings, tmp_path: Path
) -> None:
    with own_broker(tmp_path / "broker") as broker:
        settings = test_settings.model_copy(
            update={
                "bootstrap_servers": broker.bootstrap,
                "anomaly_budget_per_day": 86.4,
                "warmup_events": 300,
                "max_batch": 500,
                "topic_partitions": PARTITIONS,
                "incident_risk": False,
            }
        )
        bootstrap, group = broker.bootstrap, settings.group_id
        await ensure_topics(bootstrap, topic_specs(settings))
        produced = await produce(
            bootstrap, settings.topic_metrics, simulated(SERVICES, BACKLOG, seed=83)
        )
        ends = await end_offsets_of(bootstrap, settings.topic_metrics)
        progress = Progress(bootstrap, group, settings.topic_metrics)
        env = {
            "VIGIL_LOG_LEVEL": "INFO",
            "VIGIL_LOG_FORMAT": "json",
            "VIGIL_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
            # Transactions: the batch in flight when the broker died is aborted, not
            # published twice (at least once, 8-9 alerts of it came again after the restart).
            "VIGIL_PROCESSING_GUARANTEE": "exactly_once",
        }
        first_log = tmp_path / "detect-1.log"
        port = free_port()
        with detector_process(settings, port, extra_env=env, log_path=first_log) as proc:
            deadline = time.monotonic() + 120
            while not await progress.reached(0.15 * BACKLOG):
                assert proc.poll() is None, log_tail(first_log)
                assert time.monotonic() < deadline, "no progress in 120 s"
                await asyncio.sleep(0.2)
            await take_down(broker, "sigkill")
            committed_at_outage = sum(progress.latest.values())

            # The outage: a few lines, little CPU, /readyz says why.
            watched = psutil.Process(proc.pid)
            cpu_before, size_before = sum(watched.cpu_times()[:2]), first_log.stat().st_size
            outage_started = time.monotonic()
            await asyncio.sleep(OUTAGE_S)
            assert proc.poll() is None, log_tail(first_log)
            async with httpx.AsyncClient() as http:
                ready = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                metrics = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=5)).text
            outage_s = time.monotonic() - outage_started
            cpu_share = (sum(watched.cpu_times()[:2]) - cpu_before) / outage_s
            logged_bytes = first_log.stat().st_size - size_before
            assert proc.poll() is None, log_tail(first_log)

            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, SHUTDOWN_TIMEOUT_S + 20)
            stop_s = time.monotonic() - signalled
        held = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("vigil_kafka_client_log_lines_total") and 'outcome="held"' in line
        )

        # The broker comes back; a new detector finishes the backlog.
        await asyncio.to_thread(broker.start, owned=True)
        second_log = tmp_path / "detect-2.log"
        with detector_process(settings, free_port(), extra_env=env, log_path=second_log) as proc2:
            deadline = time.monotonic() + 180
            while await progress.poll() != ends:
                assert proc2.poll() is None, log_tail(second_log)
                assert time.monotonic() < deadline, f"not drained: {progress.latest} of {ends}"
                await asyncio.sleep(0.5)
            proc2.send_signal(signal.SIGTERM)
            code2 = await asyncio.to_thread(proc2.wait, 60)
        alerts = await check_alerts(settings, produced, "read_committed")

    print(
        f"\noutage of {outage_s:.0f} s at {committed_at_outage} of {BACKLOG} committed: log grew "
        f"{logged_bytes / 1e3:.1f} kB ({held:.0f} Kafka client lines held back), CPU "
        f"{cpu_share:.1%} of a core; SIGTERM to exit {stop_s:.1f} s (exit {code}, timeout "
        f"{SHUTDOWN_TIMEOUT_S:g} s)\n  after the restart: alerts expected {alerts.expected}, "
        f"distinct {alerts.distinct}, missing {alerts.missing}, spurious {alerts.spurious}, "
        f"duplicates {alerts.duplicates}"
    )
    assert committed_at_outage < 0.9 * BACKLOG, "the outage should come mid-backlog"
    assert logged_bytes < 1_000_000
    assert held > 0, "the client's repeated lines should have been held back"
    assert cpu_share < 0.20
    assert ready.status_code == 503
    assert ready.json() == {"status": "starting", "reason": "kafka_unreachable"}
    assert stop_s < SHUTDOWN_TIMEOUT_S + 1.0  # the interpreter's own exit on top
    assert code in (0, 1)  # 1: commits could not reach the broker in time
    first = log_events(first_log)
    assert not [e for e in first if e.get("level") == "raw"], "a traceback was printed"
    assert "detector_stopping" in [e.get("event") for e in first]
    assert code2 == 0, log_tail(second_log)
    assert (alerts.missing, alerts.spurious, alerts.duplicates) == (0, 0, 0), alerts
