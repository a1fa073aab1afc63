"""``vigil detect`` as a subprocess in tests, and what one detector that never died alerts on."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from stream.codec import decode
from stream.core.pipeline import MetricPipeline
from stream.schemas import Evidence, MetricEvent
from stream.settings import Settings, settings_env
from tests.integration.kafka_io import Produced


def detector_env(
    settings: Settings, port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a ``vigil detect`` with this test's settings (topics, group,
    snapshot directory, ...), serving HTTP on 127.0.0.1:``port``, logging warnings;
    ``extra`` adds or overrides settings."""
    return {
        **settings_env(settings, os.environ),
        "VIGIL_HTTP_PORT": str(port),
        "VIGIL_HTTP_HOST": "127.0.0.1",
        "VIGIL_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }


@contextmanager
def detector_process(
    settings: Settings,
    port: int,
    *,
    extra_env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    command: str = "detect",
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``vigil detect`` (or another ``command``'s) subprocess (see :func:`detector_env`),
    killed on exit if still running. Its stdout and stderr go to ``log_path`` when given,
    else to the test's own."""
    out: IO[bytes] | None = log_path.open("ab") if log_path is not None else None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", command],
            env=detector_env(settings, port, extra_env),
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    finally:
        if out is not None:
            out.close()


async def scraped_counter(port: int, line_prefix: str) -> float:
    """The value of the first ``/metrics`` line starting with ``line_prefix``."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    for line in text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not exported")


async def scraped_total(port: int, name: str) -> float:
    """The sum of every series of metric ``name`` on ``/metrics`` (0 if none is exported)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics", timeout=10)).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith((f"{name} ", f"{name}{{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines a detector wrote to ``path`` (anything else, e.g. a traceback
    printed by the interpreter, becomes ``{"event": "<text>", "level": "raw"}``)."""
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            events.append(parsed)
        else:
            events.append({"event": line.decode(errors="replace"), "level": "raw"})
    return events


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines a process wrote to ``path``."""
    if not path.exists():
        return "(no output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def reference_alerts(
    settings: Settings, produced: Sequence[Produced], *, chunk: int = 1
) -> dict[str, Produced]:
    """What one detector that never died alerts on: alert id → the event that raised it.

    The same pipeline over each partition's events in offset order (a service lives on one
    partition, so each service sees its events in order). ``chunk`` events of a partition
    are scored together: 1 is one at a time; larger chunks give the same verdicts, faster
    (``tests/unit/models/anomaly/test_batch_equivalence.py``).
    """
    pipeline = MetricPipeline(settings.anomaly_config())
    ordered = sorted(produced, key=lambda p: (p.partition, p.offset))
    alerts: dict[str, Produced] = {}
    start = 0
    while start < len(ordered):
        partition = ordered[start].partition
        end = start
        while end < len(ordered) and end - start < chunk and ordered[end].partition == partition:
            end += 1
        positions = ordered[start:end]
        events = []
        for position in positions:
            event = decode(position.value, MetricEvent)
            assert isinstance(event, MetricEvent), event
            events.append(event)
        evidence = [
            Evidence(topic=settings.topic_metrics, partition=p.partition, offset=p.offset)
            for p in positions
        ]
        outcome = pipeline.process_batch(events, evidence.__getitem__)
        for index, alert in outcome.alerts:
            alerts[alert.alert_id] = positions[index]
        start = end
    return alerts
