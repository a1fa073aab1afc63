"""``vigil bench``: throughput and latency, offline and through a real Kafka broker.

* offline: parse → features → score → learn → decide over simulated events (the replay path),
  median of three runs;
* Kafka throughput: a pre-loaded topic consumed by one in-process detector, timed from its
  first to its last batch (alerts acknowledged and offsets committed);
* Kafka latency: a ``vigil detect`` subprocess fed at a steady rate, latency measured from an
  event's produce timestamp to its alert arriving at a consumer of the alerts topic, as an
  alerting system sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.broker import BrokerError, LocalBroker, free_port
from stream.consumer import Detector
from stream.pipeline import MetricPipeline
from stream.replay import replay
from stream.settings import Settings
from stream.simulate import MetricSimulator
from stream.telemetry import configure_logging

__all__ = ["offline_throughput", "run_bench"]


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure."""

    name: str
    value: float
    unit: str
    note: str = ""


def offline_throughput(settings: Settings, events: int, repeats: int = 3) -> float:
    """Median events/s of the replay path (decode → features → score → learn → decide)."""
    payloads = [e.to_bytes() for e in MetricSimulator(services=5, seed=11).events(events)]
    rates = []
    for _ in range(repeats):
        pipeline = MetricPipeline(settings.anomaly_config())
        started = time.perf_counter()
        for alert in replay(payloads, pipeline, batch_size=settings.max_batch):
            del alert
        rates.append(events / (time.perf_counter() - started))
    return statistics.median(rates)


def memory_per_1000_services(
    settings: Settings, services: int = 1000, events_per_service: int = 300
) -> tuple[float, float]:
    """(RSS growth, model array bytes) in MiB per 1,000 services, each past its first window."""
    import gc

    import psutil

    sim = MetricSimulator(services=services, seed=9, clean_start=10**9)
    payloads = [e.to_bytes() for e in sim.events(services * events_per_service)]
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    pipeline = MetricPipeline(settings.anomaly_config())
    for alert in replay(payloads, pipeline, batch_size=settings.max_batch):
        del alert
    del payloads
    gc.collect()
    grown = process.memory_info().rss - before
    scale = 1000 / services / 2**20
    return grown * scale, pipeline.nbytes() * scale


async def _preload(bootstrap: str, topic: str, events: int, anomaly_rate: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1_048_576)
    await producer.start()
    try:
        sim = MetricSimulator(services=20, anomaly_rate=anomaly_rate, seed=3, clean_start=100)
        pending = []
        for event in sim.events(events):
            pending.append(await producer.send(topic, event.to_bytes(), key=event.service.encode()))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def kafka_throughput(settings: Settings, events: int) -> float:
    """Events/s of one in-process detector over a pre-loaded topic."""
    run = uuid.uuid4().hex[:8]
    settings = settings.model_copy(
        update={
            "topic_metrics": f"bench.metrics.{run}",
            "topic_alerts": f"bench.alerts.{run}",
            "topic_dlq": f"bench.dlq.{run}",
            "group_id": f"bench-{run}",
            "http_port": 0,
        }
    )
    await _preload_with_topics(settings, events, anomaly_rate=0.005)
    detector = Detector(settings, serve_http=False)
    await detector.start()
    try:
        first: float | None = None
        deadline = time.monotonic() + 600
        while detector.counts["scored"] < events and time.monotonic() < deadline:
            processed = await detector.step()
            if processed and first is None:
                first = time.perf_counter()
        if first is None:
            raise RuntimeError("the detector consumed nothing")
        return detector.counts["scored"] / (time.perf_counter() - first)
    finally:
        await detector.stop()


async def _preload_with_topics(settings: Settings, events: int, anomaly_rate: float) -> None:
    from stream.consumer import topic_specs
    from stream.topics import ensure_topics

    await ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    await _preload(settings.bootstrap_servers, settings.topic_metrics, events, anomaly_rate)


async def kafka_latency(settings: Settings, rate: float, seconds: float) -> dict[str, float]:
    """p50/p99 event→alert latency (ms) with a ``vigil detect`` subprocess at ``rate`` events/s."""
    from stream.consumer import topic_specs
    from stream.topics import ensure_topics

    run = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "VIGIL_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "VIGIL_TOPIC_METRICS": f"bench.lat.metrics.{run}",
        "VIGIL_TOPIC_ALERTS": f"bench.lat.alerts.{run}",
        "VIGIL_TOPIC_DLQ": f"bench.lat.dlq.{run}",
        "VIGIL_GROUP_ID": f"bench-lat-{run}",
        "VIGIL_HTTP_PORT": str(free_port()),
        # A short warm-up so alerts (the latency samples) start within the first second.
        "VIGIL_WARMUP_EVENTS": "100",
        "VIGIL_HST_WINDOW": "100",
        "VIGIL_ANOMALY_TARGET_RATE": "0.02",
        "VIGIL_COOLDOWN_S": "0",
        "VIGIL_LOG_LEVEL": "WARNING",
        "VIGIL_LOG_FORMAT": "json",
    }
    lat_settings = settings.model_copy(
        update={
            "topic_metrics": env["VIGIL_TOPIC_METRICS"],
            "topic_alerts": env["VIGIL_TOPIC_ALERTS"],
            "topic_dlq": env["VIGIL_TOPIC_DLQ"],
        }
    )
    await ensure_topics(settings.bootstrap_servers, topic_specs(lat_settings))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream.cli",
        "detect",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    produced_at: dict[tuple[int, int], float] = {}
    latencies_ms: list[float] = []
    alerts = AIOKafkaConsumer(
        lat_settings.topic_alerts,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0)
    await alerts.start()
    await producer.start()

    async def read_alerts() -> None:
        async for record in alerts:
            evidence = orjson.loads(record.value)["evidence"]
            sent = produced_at.get((evidence["partition"], evidence["offset"]))
            if sent is not None:
                latencies_ms.append((time.time() - sent) * 1000.0)
                if os.environ.get("VIGIL_BENCH_TRACE"):
                    print(f"trace {sent:.3f} {latencies_ms[-1]:.1f}", file=sys.stderr)

    reader = asyncio.create_task(read_alerts())
    try:
        await _wait_ready(int(env["VIGIL_HTTP_PORT"]), proc)
        sim = MetricSimulator(services=10, anomaly_rate=0.02, seed=5, clean_start=30, min_gap=3)
        total = int(rate * seconds)
        started = time.perf_counter()
        for i, event in enumerate(sim.events(total)):
            sent_at = time.time()
            fut = await producer.send(
                lat_settings.topic_metrics, event.to_bytes(), key=event.service.encode()
            )
            fut.add_done_callback(_recorder(produced_at, sent_at))
            ahead = (i + 1) / rate - (time.perf_counter() - started)
            if ahead > 0.0005:
                await asyncio.sleep(ahead)
        await asyncio.sleep(2.0)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await alerts.stop()
        await producer.stop()
    if not latencies_ms:
        raise RuntimeError("no alerts arrived during the latency run")
    values = np.array(latencies_ms)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "alerts": float(values.size),
    }


def _recorder(
    produced_at: dict[tuple[int, int], float], sent_at: float
) -> Callable[[asyncio.Future[Any]], None]:
    def record(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            meta = fut.result()
            produced_at[(meta.partition, meta.offset)] = sent_at

    return record


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a GET of ``url`` answers 200 (blocking: call it in a thread from async code)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


async def _wait_ready(port: int, proc: asyncio.subprocess.Process, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"vigil detect exited with {proc.returncode}")
        if await asyncio.to_thread(http_ok, f"http://127.0.0.1:{port}/readyz"):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("vigil detect did not become ready")


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run the benchmarks and print a table (or JSON with ``--json``)."""
    configure_logging("WARNING", "json")
    figures = [
        Figure(
            "offline parse→decide",
            offline_throughput(settings, args.events),
            "events/s",
            f"median of 3 runs of {args.events}",
        )
    ]
    rss, arrays = memory_per_1000_services(settings, services=args.memory_services)
    figures += [
        Figure(
            "memory per 1,000 services (RSS)",
            rss,
            "MiB",
            f"{args.memory_services} services, 300 events each",
        ),
        Figure("model arrays per 1,000 services", arrays, "MiB", "scaler, HST, threshold"),
    ]
    if not args.skip_kafka:
        try:
            figures += asyncio.run(_kafka_figures(args, settings))
        except BrokerError as exc:
            print(f"vigil bench: {exc}", file=sys.stderr)
            return exc.exit_code
    if args.json:
        print(orjson.dumps([asdict(f) for f in figures], option=orjson.OPT_INDENT_2).decode())
    else:
        width = max(len(f.name) for f in figures)
        for f in figures:
            print(f"{f.name:<{width}}  {f.value:>12,.1f} {f.unit:<9} {f.note}")
    return 0


async def _kafka_figures(args: argparse.Namespace, settings: Settings) -> list[Figure]:
    broker: LocalBroker | None = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalBroker(port=free_port())
        bootstrap = await asyncio.to_thread(broker.start, owned=True)
    settings = settings.model_copy(update={"bootstrap_servers": bootstrap})
    try:
        throughput = await kafka_throughput(settings, args.kafka_events)
        latency = await kafka_latency(settings, args.latency_rate, args.latency_seconds)
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
    note = f"{args.latency_rate:g} events/s for {args.latency_seconds:g}s, "
    note += f"{latency['alerts']:.0f} alerts"
    return [
        Figure(
            "kafka end-to-end",
            throughput,
            "events/s",
            f"{args.kafka_events} pre-loaded events, one detector",
        ),
        Figure("event→alert latency p50", latency["p50_ms"], "ms", note),
        Figure("event→alert latency p99", latency["p99_ms"], "ms", note),
    ]
