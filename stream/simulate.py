"""The simulated log-processor: realistic metric events with labelled injected anomalies.

:class:`MetricSimulator` is pure (seeded, event time only) so tests and benchmarks get the same
stream every time; :func:`publish` paces it onto Kafka at a given rate.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer

from stream.codec import encode
from stream.schemas import LogEvent
from stream.settings import Settings

__all__ = [
    "InjectedAnomaly",
    "LogLine",
    "MetricProfile",
    "MetricSimulator",
    "Publishable",
    "SimulatedEvent",
    "day_phase",
    "format_ts",
    "metric_payload",
    "normal_metrics",
    "payloads_by_block",
    "publish",
    "run_simulate",
]


@dataclass(frozen=True, slots=True)
class MetricProfile:
    """The normal behaviour of one metric: a level, a daily swing and noise."""

    name: str
    level: float
    daily_swing: float
    noise: float
    floor: float = 0.0


_BASE_PROFILES = (
    MetricProfile("cpu_p95", 55.0, 0.25, 3.0),
    MetricProfile("mem_p95", 70.0, 0.05, 1.5),
    MetricProfile("req_rate", 250.0, 0.40, 12.0),
    MetricProfile("err_5xx", 2.0, 0.30, 1.0),
    MetricProfile("latency_p95", 410.0, 0.15, 20.0),
)


def day_phase(epoch_s: float) -> float:
    """Where ``epoch_s`` falls in its UTC day, as an angle in radians (0 at midnight)."""
    return 2 * math.pi * (epoch_s % 86_400) / 86_400


def normal_metrics(rng: random.Random, scale: float, phase: float) -> dict[str, float]:
    """One normal sample of every base metric: the daily cycle at ``phase`` plus noise.

    Args:
        rng: Draws one Gaussian per metric, in :data:`_BASE_PROFILES` order.
        scale: The service's size: levels and noise are multiplied by it.
        phase: :func:`day_phase` of the sample's time.

    Examples:
        >>> sample = normal_metrics(random.Random(1), 1.0, 0.0)
        >>> list(sample)
        ['cpu_p95', 'mem_p95', 'req_rate', 'err_5xx', 'latency_p95']
        >>> 300 < sample["latency_p95"] < 500
        True
    """
    cycle = math.sin(phase)
    return {
        p.name: p.level * scale * (1 + p.daily_swing * cycle) + rng.gauss(0.0, p.noise * scale)
        for p in _BASE_PROFILES
    }


def format_ts(ts: datetime) -> str:
    """``ts`` (UTC) as RFC 3339 text with a ``Z``, as the simulators send it."""
    return ts.isoformat().replace("+00:00", "Z")


def metric_payload(service: str, ts: str, metrics: dict[str, float]) -> dict[str, Any]:
    """A MetricEvent as a JSON-ready dict: values floored at 0 and rounded to 3 decimals."""
    return {
        "ts": ts,
        "service": service,
        "region": "local",
        "host": f"{service}-1",
        "metrics": {k: round(max(0.0, v), 3) for k, v in metrics.items()},
    }


@dataclass(frozen=True, slots=True)
class InjectedAnomaly:
    """Ground truth for one injected anomaly."""

    service: str
    ts: datetime
    metrics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SimulatedEvent:
    """One MetricEvent as a JSON-ready dict, with its ground truth."""

    payload: dict[str, Any]
    anomaly: InjectedAnomaly | None = None

    @property
    def service(self) -> str:
        return str(self.payload["service"])

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.payload)


@dataclass
class MetricSimulator:
    """Metric samples for ``services`` services, one sample per service every ``interval_s``.

    Each service scales the base profiles by its own factor, follows a daily cycle, and gets
    spikes of 8-20 standard deviations in 1-3 metrics at ``anomaly_rate``. Injected anomalies
    never fall in a service's first ``clean_start`` samples (its warm-up).

    Examples:
        >>> sim = MetricSimulator(services=2, seed=1)
        >>> events = list(sim.events(4))
        >>> [e.service for e in events]
        ['svc-00', 'svc-01', 'svc-00', 'svc-01']
        >>> sorted(events[0].payload["metrics"])
        ['cpu_p95', 'err_5xx', 'latency_p95', 'mem_p95', 'req_rate']
    """

    services: int = 5
    anomaly_rate: float = 0.005
    interval_s: float = 10.0
    seed: int = 7
    start: datetime = datetime(2026, 11, 23, tzinfo=UTC)
    clean_start: int = 600
    min_gap: int = 20
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._scales = [0.5 + self._rng.random() * 2.0 for _ in range(self.services)]
        self._names = [f"svc-{i:02d}" for i in range(self.services)]

    def events(self, count: int) -> Iterator[SimulatedEvent]:
        """``count`` events, services interleaved round-robin in event-time order."""
        rng = self._rng
        last_anomaly = [-self.min_gap] * self.services
        for i in range(count):
            s, step = i % self.services, i // self.services
            ts = self.start + timedelta(seconds=step * self.interval_s)
            metrics = normal_metrics(rng, self._scales[s], day_phase(ts.timestamp()))
            anomaly = None
            if (
                step >= self.clean_start
                and step - last_anomaly[s] >= self.min_gap
                and rng.random() < self.anomaly_rate
            ):
                chosen = tuple(
                    sorted(rng.sample([p.name for p in _BASE_PROFILES], rng.randint(1, 3)))
                )
                for p in _BASE_PROFILES:
                    if p.name in chosen:
                        metrics[p.name] += rng.uniform(8.0, 20.0) * p.noise * self._scales[s]
                anomaly = InjectedAnomaly(self._names[s], ts, chosen)
                last_anomaly[s] = step
            yield SimulatedEvent(metric_payload(self._names[s], format_ts(ts), metrics), anomaly)


class Publishable(Protocol):
    """A message :func:`publish` can send: keyed by its service."""

    @property
    def service(self) -> str: ...

    def to_bytes(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class LogLine:
    """A LogEvent as :func:`publish` sends it."""

    event: LogEvent

    @property
    def service(self) -> str:
        return self.event.service

    def to_bytes(self) -> bytes:
        return encode(self.event)


async def publish(
    producer: AIOKafkaProducer,
    topic: str | Callable[[Publishable], str],
    events: Iterator[Publishable],
    *,
    rate: float | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Send events keyed by service, at ``rate`` events/s (as fast as possible if None), to
    ``topic`` (or the topic it names for each event).

    Returns how many were sent; all are acknowledged when it returns.
    """
    topic_of = topic if callable(topic) else (lambda _: topic)
    sent = 0
    started = time.perf_counter()
    pending: list[asyncio.Future[Any]] = []
    for event in events:
        if stop is not None and stop.is_set():
            break
        pending.append(
            await producer.send(topic_of(event), value=event.to_bytes(), key=event.service.encode())
        )
        sent += 1
        if rate is not None:
            ahead_s = sent / rate - (time.perf_counter() - started)
            if ahead_s > 0.001:
                await asyncio.sleep(ahead_s)
        if len(pending) >= 10_000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return sent


_JSONL_COUNT = 20_000
"""Events ``--jsonl`` writes without ``--count`` (a file needs an end)."""
_UNTIL_STOPPED = 2**62


async def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """``vigil simulate``: publish ``--count`` events at ``--rate``, or until stopped when
    ``--count`` is 0 or omitted. SIGTERM or SIGINT stops it early and cleanly: what was
    produced is flushed and acknowledged, the counts sent printed, exit status 0.

    With ``--incidents``, services whose incidents follow precursors (see
    :mod:`stream.incident_sim`), their IncidentEvents on the incidents topic, and their log
    lines on the logs topic, in event time that keeps pace with the samples'. With
    ``--jsonl``, the stream goes to a file for ``vigil replay`` / ``vigil evaluate`` instead
    of Kafka.
    """
    from stream.consumer import topic_specs
    from stream.kafka_options import kafka_options
    from stream.topics import ensure_topics

    if args.count is not None and args.count < 0:
        print("vigil simulate: --count must be 0 (until stopped) or more", file=sys.stderr)
        return 2
    if args.jsonl is not None:
        return _write_jsonl(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.create_topics:
        await ensure_topics(
            settings.bootstrap_servers,
            topic_specs(settings),
            kafka_options=kafka_options(settings),
        )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-simulator",
        linger_ms=5,
        **kafka_options(settings),
    )
    await producer.start()
    try:
        publishing = _publish_incidents if args.incidents else _publish_anomalies
        summary = await publishing(args, settings, producer, stop)
    finally:
        await producer.stop()
    print(orjson.dumps(summary).decode(), flush=True)
    return 0


async def _publish_anomalies(
    args: argparse.Namespace, settings: Settings, producer: AIOKafkaProducer, stop: asyncio.Event
) -> dict[str, Any]:
    """Metric events with injected anomalies; their labels to ``--labels``."""
    sim = MetricSimulator(
        services=args.services,
        anomaly_rate=args.anomaly_rate,
        interval_s=args.interval_s,
        seed=args.sim_seed,
        start=_live_start(args),
    )
    anomalies = 0
    # Written as they are injected: a run until stopped keeps none of them in memory.
    sink = args.labels.open("wb") if args.labels is not None else None

    def tracked(events: Iterator[SimulatedEvent]) -> Iterator[SimulatedEvent]:
        nonlocal anomalies
        for event in events:
            a = event.anomaly
            if a is not None:
                anomalies += 1
                if sink is not None:
                    sink.write(
                        orjson.dumps({"service": a.service, "ts": a.ts, "metrics": a.metrics})
                        + b"\n"
                    )
            yield event

    try:
        sent = await publish(
            producer,
            settings.topic_metrics,
            tracked(sim.events(args.count or _UNTIL_STOPPED)),
            rate=args.rate or None,
            stop=stop,
        )
    finally:
        if sink is not None:
            sink.close()
    return {"sent": sent, "anomalies": anomalies, "topic": settings.topic_metrics}


async def _publish_incidents(
    args: argparse.Namespace, settings: Settings, producer: AIOKafkaProducer, stop: asyncio.Event
) -> dict[str, Any]:
    """Samples and IncidentEvents of services whose incidents follow precursors, and the
    services' log lines, both paced so that their event times keep together."""
    from stream.incident_sim import IncidentRecord, IncidentSimulator
    from stream.logs.simulate import endless_log_events, log_simulator, paced_log_rate

    sim = IncidentSimulator(
        services=args.services,
        interval_s=args.interval_s,
        seed=args.sim_seed,
        start=_live_start(args),
    )
    per_s = args.log_lines_per_s
    items: Iterator[Publishable]
    lines: Iterator[LogEvent] = iter(())
    if args.count:
        duration_s = math.ceil(args.count / args.services) * args.interval_s
        items = sim.stream(duration_s)
        if per_s > 0:
            logs = log_simulator(
                sim.names,
                lines_per_s=per_s,
                seed=args.sim_seed,
                start=sim.start,
                horizon_s=duration_s,
            )
            lines = logs.events(duration_s)
    else:
        items = sim.endless()
        lines = endless_log_events(
            sim.names, lines_per_s=per_s, seed=args.sim_seed, start=sim.start
        )
    incidents = 0

    def topic_of(item: Publishable) -> str:
        nonlocal incidents
        if isinstance(item, IncidentRecord):
            incidents += 1
            return settings.topic_incidents
        return settings.topic_metrics

    rate = args.rate or None
    log_rate = paced_log_rate(rate, interval_s=args.interval_s, lines_per_s=per_s)
    async with asyncio.TaskGroup() as tasks:
        metrics = tasks.create_task(publish(producer, topic_of, items, rate=rate, stop=stop))
        logs_sent = tasks.create_task(
            publish(producer, settings.topic_logs, map(LogLine, lines), rate=log_rate, stop=stop)
        )
    return {
        "sent": metrics.result(),
        "incident_events": incidents,
        "log_lines": logs_sent.result(),
        "topics": [settings.topic_metrics, settings.topic_incidents, settings.topic_logs],
    }


def _live_start(args: argparse.Namespace) -> datetime:
    """The event time of the first sample sent to Kafka: ``--start``, else the current
    minute (a detector withholds the alerts of events older than ``VIGIL_MAX_ALERT_AGE_S``)."""
    start: datetime | None = getattr(args, "start", None)
    return start if start is not None else datetime.now(UTC).replace(second=0, microsecond=0)


def _write_jsonl(args: argparse.Namespace) -> int:
    """``vigil simulate --jsonl FILE``: the stream as a replay file (``--count`` events, or
    20,000; never until stopped)."""
    from stream.incident_sim import IncidentRecord, IncidentSimulator

    count = _JSONL_COUNT if args.count is None else args.count
    if count == 0:
        print("vigil simulate: --jsonl needs a --count (a file has an end)", file=sys.stderr)
        return 2
    items: Iterator[Publishable]
    given = getattr(args, "start", None)
    start = {"start": given} if given is not None else {}  # else the simulators' fixed day
    if args.incidents:
        sim = IncidentSimulator(
            services=args.services, interval_s=args.interval_s, seed=args.sim_seed, **start
        )
        items = sim.stream(math.ceil(count / args.services) * args.interval_s)
    else:
        metric_sim = MetricSimulator(
            services=args.services,
            anomaly_rate=args.anomaly_rate,
            interval_s=args.interval_s,
            seed=args.sim_seed,
            **start,
        )
        items = iter(metric_sim.events(count))
    lines = incidents = 0
    with args.jsonl.open("wb") as out:
        for item in items:
            out.write(item.to_bytes() + b"\n")
            lines += 1
            incidents += isinstance(item, IncidentRecord)
    summary = {"lines": lines, "incident_events": incidents, "file": str(args.jsonl)}
    print(orjson.dumps(summary).decode())
    return 0


def payloads_by_block(
    services: int, events_per_service: int, *, block: int = 20, seed: int = 9
) -> Iterator[bytes]:
    """Each of ``services`` services' events (named ``svc-00000``...), ``block`` services at a
    time (round-robin within a block).

    Blocks keep several events per service in each batch whatever ``services`` is, as under
    load, and keep only a block's payloads alive at a time.
    """
    for first in range(0, services, block):
        n = min(block, services - first)
        sim = MetricSimulator(services=n, seed=seed + first, clean_start=10**9)
        for i, event in enumerate(sim.events(n * events_per_service)):
            yield orjson.dumps({**event.payload, "service": f"svc-{first + i % n:05d}"})
