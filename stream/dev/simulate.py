"""The simulated log-processor: realistic metric events with labelled injected anomalies.

:class:`MetricSimulator` is pure (seeded, event time only) so tests and benchmarks get the same
stream every time; :func:`publish` paces it onto Kafka at a given rate. The ``vigil simulate``
command is :mod:`stream.dev.simulate_run`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaProducer

from stream.codec import encode
from stream.schemas import LogEvent

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
