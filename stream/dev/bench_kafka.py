"""Measurements through a real Kafka broker for ``vigil bench``: throughput and latency.

* Throughput: a pre-loaded topic consumed by one in-process
  :class:`~stream.detector.detector.Detector`, timed from its first to its last batch (alerts
  acknowledged and offsets committed).
* Latency: a ``vigil detect`` subprocess is fed at a steady rate. Two views of each alert's
  latency: by the broker's clock, from the event's append to the metrics topic to the alert's
  append to the alerts topic (both topics of the run use ``LogAppendTime``): the detector's
  own part, what a subscriber can see at the earliest; and as the bench's client sees it, from
  the produce call to the alert arriving at its consumer, which also counts the bench's
  producer and reader waiting for CPU (they share one event loop and this machine's two cores
  with the broker and the detector). The run ends once the detector's ``/metrics`` shows every
  event scored.

Why latency stays low at low rates: the detector never waits for a batch to fill. Its
``getmany`` returns whatever the fetcher has buffered (up to ``max_batch`` records) at once,
and waits (at most ``batch_wait_s``) only when nothing is buffered. So at low rates batches are
small and each event is scored about as soon as it arrives; under load batches grow, which is
where the numpy engine pays off. Below the crossover batch size river would be faster per
event, but at such rates the per-batch cost is a small part of the latency. The mean batch
size the detector fetched is reported with each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.detector.detector import Detector, topic_specs
from stream.detector.detector_main import tune_garbage_collection
from stream.dev.broker import free_port
from stream.dev.log_simulate import LogSimulator, rotating_incidents
from stream.dev.simulate import LogLine, MetricSimulator, Publishable, publish
from stream.kafka.kafka_options import kafka_options
from stream.kafka.topics import ensure_topics
from stream.settings import Settings, settings_env

__all__ = ["LatencyRun", "http_get", "kafka_latency", "kafka_log_throughput", "kafka_throughput"]


_LOG_APPEND_TIME = 1
"""Kafka's timestamp type of a record stamped by the broker when it was appended."""


def _bench_topics(settings: Settings, prefix: str) -> Settings:
    run = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "topic_metrics": f"{prefix}.metrics.{run}",
            "topic_logs": f"{prefix}.logs.{run}",
            "topic_incidents": f"{prefix}.incidents.{run}",
            "topic_feedback": f"{prefix}.feedback.{run}",
            "topic_alerts": f"{prefix}.alerts.{run}",
            "topic_dlq": f"{prefix}.dlq.{run}",
            "topic_models": f"{prefix}.models.{run}",
            "group_id": f"{prefix}-{run}",
            # Simulated, historic event times: their alerts are part of what is timed.
            "max_alert_age_s": 0.0,
            # Snapshots as in production, kept out of the working directory.
            "snapshot_dir": str(Path(tempfile.gettempdir()) / "vigil-bench-snapshots"),
        }
    )


async def _preload(settings: Settings, topic: str, events: Iterator[Publishable]) -> None:
    """Create the run's topics and send ``events`` to ``topic``, all acknowledged."""
    await ensure_topics(
        settings.bootstrap_servers, topic_specs(settings), kafka_options=kafka_options(settings)
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=20,
        max_batch_size=1_048_576,
        **kafka_options(settings),
    )
    await producer.start()
    try:
        await publish(producer, topic, events)
    finally:
        await producer.stop()


def _log_lines(lines: int) -> Iterator[Publishable]:
    """``lines`` simulated log lines of 20 services, with a few incidents."""
    services = [f"svc-{i:02d}" for i in range(20)]
    per_s = 2.0
    duration_s = lines / (per_s * len(services)) * 1.1 + 1
    incidents = rotating_incidents(services, first_s=3600.0, every_s=1800.0, count=20)
    sim = LogSimulator(services, lines_per_s=per_s, incidents=incidents, seed=3, disorder_s=2.0)
    return (LogLine(event) for event in itertools.islice(sim.events(duration_s), lines))


async def kafka_log_throughput(settings: Settings, lines: int) -> float:
    """Log lines/s of one in-process detector over a pre-loaded logs topic, from its first batch."""
    settings = _bench_topics(settings, "bench-logs").model_copy(update={"http_port": 0})
    await _preload(settings, settings.topic_logs, _log_lines(lines))
    return await _drain(settings, lines)


async def kafka_throughput(settings: Settings, events: int) -> float:
    """Events/s of one in-process detector over a pre-loaded topic, from its first batch."""
    settings = _bench_topics(settings, "bench").model_copy(update={"http_port": 0})
    sim = MetricSimulator(services=20, anomaly_rate=0.005, seed=3, clean_start=100)
    await _preload(settings, settings.topic_metrics, sim.events(events))
    return await _drain(settings, events)


async def _drain(settings: Settings, events: int) -> float:
    """Run a detector until it has scored ``events``; events/s from its first batch."""
    detector = Detector(settings, serve_http=False)
    await detector.start()
    previous = tune_garbage_collection()  # as in a `vigil detect` process
    try:
        first: float | None = None
        deadline = time.monotonic() + 600
        while detector.counts["scored"] < events and time.monotonic() < deadline:
            step_started = time.perf_counter()
            processed = await detector.step()
            if processed and first is None:
                first = step_started  # the clock includes the first batch's own work
        if first is None:
            raise RuntimeError("the detector consumed nothing")
        return detector.counts["scored"] / (time.perf_counter() - first)
    finally:
        await detector.stop()
        gc.unfreeze()
        gc.set_threshold(*previous)


@dataclass(frozen=True, slots=True)
class LatencyRun:
    """One latency run at a fixed rate.

    Attributes:
        rate: Events/s asked for.
        produced: Events produced (and acknowledged).
        achieved_rate: Events/s actually produced.
        latencies_ms: Event→alert latency of each alert received, as the bench's client saw it
            (produce call to alert received), milliseconds.
        broker_latencies_ms: The same alerts by the broker's clock (event appended to alert
            appended), milliseconds.
        detector: What the detector's ``/metrics`` said at the end: ``scored``, ``batches``.
    """

    rate: float
    produced: int
    achieved_rate: float
    latencies_ms: tuple[float, ...]
    broker_latencies_ms: tuple[float, ...]
    detector: dict[str, float]

    def percentile(self, q: float, *, broker: bool = False) -> float:
        """The ``q``-th percentile of the latencies (client or broker view), milliseconds."""
        values = self.broker_latencies_ms if broker else self.latencies_ms
        return float(np.percentile(np.array(values), q)) if values else float("nan")

    @property
    def mean_batch(self) -> float:
        """Mean records per batch the detector fetched."""
        batches = self.detector.get("batches", 0.0)
        return self.detector.get("scored", 0.0) / batches if batches else 0.0


def _detect_env(settings: Settings) -> dict[str, str]:
    """The environment of the ``vigil detect`` subprocess: these settings, a short warm-up."""
    env = settings_env(settings, os.environ)
    env.update(
        {
            "VIGIL_HTTP_PORT": str(free_port()),
            # A short warm-up so alerts (the latency samples) start within the first second.
            "VIGIL_WARMUP_EVENTS": "100",
            "VIGIL_HST_WINDOW": "100",
            # About 1% of events open an episode (and as many resolve one): alerts to time.
            "VIGIL_ANOMALY_THRESHOLD": "0.99",
            "VIGIL_ANOMALY_MIN_EFFECT": "1e-9",
            "VIGIL_ANOMALY_RESOLVE_AFTER": "1",
            "VIGIL_LOG_LEVEL": "WARNING",
            "VIGIL_LOG_FORMAT": "json",
        }
    )
    return env


async def kafka_latency(settings: Settings, rate: float, seconds: float) -> LatencyRun:
    """Event→alert latency with a ``vigil detect`` subprocess fed at ``rate`` events/s."""
    settings = _bench_topics(settings, "bench.lat")
    append_time = {"message.timestamp.type": "LogAppendTime"}
    await ensure_topics(
        settings.bootstrap_servers,
        [
            dataclasses.replace(spec, configs={**spec.configs, **append_time})
            if spec.name in (settings.topic_metrics, settings.topic_alerts)
            else spec
            for spec in topic_specs(settings)
        ],
        kafka_options=kafka_options(settings),
    )
    env = _detect_env(settings)
    port = int(env["VIGIL_HTTP_PORT"])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream.cli",
        "detect",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    produced_at: dict[tuple[int, int], tuple[float, float]] = {}
    latencies_ms: list[float] = []
    broker_ms: list[float] = []
    alerts = AIOKafkaConsumer(
        settings.topic_alerts,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
        **kafka_options(settings),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, linger_ms=0, **kafka_options(settings)
    )
    await alerts.start()
    await producer.start()
    reader = asyncio.create_task(_read_alerts(alerts, produced_at, latencies_ms, broker_ms))
    try:
        await _wait_ready(port, proc)
        produced, achieved = await _produce_at(producer, settings, rate, seconds, produced_at)
        detector = await _wait_scored(port, produced)
        await asyncio.sleep(0.5)  # the last alerts' way to the reader
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await _terminate(proc)
        await alerts.stop()
        await producer.stop()
    if not latencies_ms:
        raise RuntimeError("no alerts arrived during the latency run")
    return LatencyRun(rate, produced, achieved, tuple(latencies_ms), tuple(broker_ms), detector)


async def _read_alerts(
    alerts: AIOKafkaConsumer,
    produced_at: dict[tuple[int, int], tuple[float, float]],
    latencies_ms: list[float],
    broker_ms: list[float],
) -> None:
    trace = bool(os.environ.get("VIGIL_BENCH_TRACE"))
    async for record in alerts:
        received = time.time()
        evidence = orjson.loads(record.value)["evidence"]
        produced = produced_at.get((evidence["partition"], evidence["offset"]))
        if produced is None:
            continue
        sent, appended_ms = produced
        latencies_ms.append((received - sent) * 1000.0)
        by_broker = math.nan
        if record.timestamp_type == _LOG_APPEND_TIME and appended_ms >= 0:
            by_broker = float(record.timestamp - appended_ms)
            broker_ms.append(by_broker)
        if trace:
            print(f"trace {sent:.3f} {latencies_ms[-1]:.1f} {by_broker:.1f}", file=sys.stderr)


async def _produce_at(
    producer: AIOKafkaProducer,
    settings: Settings,
    rate: float,
    seconds: float,
    produced_at: dict[tuple[int, int], tuple[float, float]],
) -> tuple[int, float]:
    """Send ``rate * seconds`` events at a steady ``rate``; (acknowledged, events/s achieved)."""
    sim = MetricSimulator(services=10, anomaly_rate=0.02, seed=5, clean_start=30, min_gap=3)
    total = int(rate * seconds)
    pending = []
    started = time.perf_counter()
    for i, event in enumerate(sim.events(total)):
        sent_at = time.time()
        fut = await producer.send(
            settings.topic_metrics, event.to_bytes(), key=event.service.encode()
        )
        fut.add_done_callback(_recorder(produced_at, sent_at))
        pending.append(fut)
        ahead = (i + 1) / rate - (time.perf_counter() - started)
        if ahead > 0.0005:
            await asyncio.sleep(ahead)
    elapsed = time.perf_counter() - started
    await asyncio.gather(*pending)
    return total, total / elapsed


def _recorder(
    produced_at: dict[tuple[int, int], tuple[float, float]], sent_at: float
) -> Callable[[asyncio.Future[Any]], None]:
    def record(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            meta = fut.result()
            appended_ms = meta.timestamp if meta.timestamp_type == _LOG_APPEND_TIME else -1
            produced_at[(meta.partition, meta.offset)] = (sent_at, float(appended_ms))

    return record


def http_get(url: str, timeout_s: float = 1.0) -> bytes | None:
    """The body of a GET of ``url`` if it answers 200 (blocking: call it in a thread)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return bytes(resp.read()) if resp.status == 200 else None
    except OSError:
        return None


def _detector_stats(metrics_text: str) -> dict[str, float]:
    """Events scored and batches fetched, from a detector's Prometheus text.

    Examples:
        >>> _detector_stats('vigil_events_scored_total{source="metrics"} 30.0\\n'
        ...                 'vigil_batch_size_events_count 3.0\\n')
        {'scored': 30.0, 'batches': 3.0}
    """
    from prometheus_client.parser import text_string_to_metric_families

    stats = {"scored": 0.0, "batches": 0.0}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "vigil_events_scored_total":
                stats["scored"] += sample.value
            elif sample.name == "vigil_batch_size_events_count":
                stats["batches"] += sample.value
    return stats


async def _wait_ready(port: int, proc: asyncio.subprocess.Process, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"vigil detect exited with {proc.returncode}")
        if await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/readyz") is not None:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("vigil detect did not become ready")


async def _wait_scored(port: int, produced: int, timeout_s: float = 30) -> dict[str, float]:
    """Poll the detector's ``/metrics`` until it has scored ``produced`` events."""
    deadline = time.monotonic() + timeout_s
    stats = {"scored": 0.0, "batches": 0.0}
    while time.monotonic() < deadline:
        body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/metrics")
        if body is not None:
            stats = _detector_stats(body.decode())
            if stats["scored"] >= produced:
                break
        await asyncio.sleep(0.2)
    return stats


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout=30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
