"""Planted-anomaly and degenerate metric streams, with ground truth (pure, seeded, event time).

:class:`PlantedStream` gives services whose metrics behave like a real service's, correlated
through one load factor: a daily cycle and a slow wander drive ``req_rate``; ``cpu_p95``
follows ``req_rate``, ``latency_p95`` rises with ``cpu_p95``, ``err_5xx`` is a small Poisson
count that grows with load and ``mem_p95`` wanders slowly. After a clean start it plants
episodes of known kinds, spaced apart per service, each with its ground truth
(:class:`PlantedEpisode`). Plants are added on top of the normal stream and drawn from their
own random generator, so ``planted=False`` gives the very same stream without them.

:func:`degenerate_events` gives the metric shapes that break naive scores (a flat gauge, a
sparse counter, a quantized gauge, a monotone counter), normal throughout: any alert on them
is a false alarm.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from stream.dev.simulate import format_ts, metric_payload

__all__ = [
    "DEGENERATE_KINDS",
    "KIND_COUNTS",
    "METRICS",
    "NEGATIVE_KINDS",
    "POSITIVE_KINDS",
    "PlantedEpisode",
    "PlantedStream",
    "degenerate_events",
    "degenerate_values",
]

FloatArray = npt.NDArray[np.float64]

METRICS = ("req_rate", "cpu_p95", "latency_p95", "err_5xx", "mem_p95")
POSITIVE_KINDS = ("level_shift", "spike", "burst", "correlation_break", "slow_creep")
NEGATIVE_KINDS = ("benign_drop",)
KIND_COUNTS = {"level_shift": 10, "spike": 10, "burst": 8, "correlation_break": 6, "slow_creep": 6}
"""The mix of the default 40 positive episodes; other totals keep these shares."""

_DAY_S = 86_400.0
_SWING = 0.35  # the daily cycle: load 0.65 at 00:00 UTC, 1.35 at 12:00 UTC
_WANDER_SD, _WANDER_TAU_S = 0.03, 7_200.0  # the load's slow wander around its cycle
_MEM_SD, _MEM_TAU_S = 2.0, 21_600.0  # memory's slower wander


@dataclass(frozen=True, slots=True)
class PlantedEpisode:
    """Ground truth for one planted episode.

    ``end`` is the episode's last moved sample, except for a ``level_shift`` (the new normal
    lasts to the end of the data), whose ``end`` is its ``start``: detection is judged near
    the start. ``size_sd`` is the largest move, in the metric's normal noise standard
    deviations (its spread around its daily cycle). A ``benign_drop`` is a negative plant: a
    good detector does not alert on it.
    """

    service: str
    kind: str
    start: datetime
    end: datetime
    metrics: tuple[str, ...]
    direction: Literal["up", "down"]
    size_sd: float

    @property
    def positive(self) -> bool:
        """Whether an alert is wanted (every kind but ``benign_drop``)."""
        return self.kind in POSITIVE_KINDS


@dataclass(frozen=True, slots=True)
class _Plant:
    """One plant on one service's arrays: sample indices and what is added to each metric."""

    kind: str
    first: int
    deltas: dict[str, FloatArray]  # metric -> added to samples first..first + len - 1
    direction: Literal["up", "down"]
    size_sd: float
    end: int  # the ground truth's last sample


@dataclass(frozen=True, slots=True)
class PlantedStream:
    """Services with correlated normal metrics and planted episodes of known kinds.

    One sample per service every ``interval_s`` for ``days``; the first ``clean_days`` are
    normal (warm-up and a first daily cycle to learn). Then ``positives`` episodes (the mix
    of :data:`KIND_COUNTS`) and ``benign`` benign drops, spread over the services, at least
    ``min_gap_s`` apart within a service.

    Examples:
        >>> stream = PlantedStream(services=2, days=3, clean_days=1, positives=4, benign=1)
        >>> events = list(stream.events())
        >>> len(events), events[0]["service"], sorted(events[0]["metrics"])
        (8640, 'planted-0', ['cpu_p95', 'err_5xx', 'latency_p95', 'mem_p95', 'req_rate'])
        >>> episodes = stream.episodes()
        >>> len(episodes), sum(e.positive for e in episodes)
        (5, 4)
        >>> all(e.start >= stream.start + timedelta(days=1) for e in episodes)
        True
    """

    services: int = 6
    interval_s: float = 60.0
    days: float = 7.0
    clean_days: float = 2.0
    positives: int = 40
    benign: int = 8
    min_gap_s: float = 6 * 3600.0
    seed: int = 18
    start: datetime = datetime(2026, 11, 23, tzinfo=UTC)

    @property
    def names(self) -> list[str]:
        """The services' names."""
        return [f"planted-{i}" for i in range(self.services)]

    @property
    def samples(self) -> int:
        """Samples per service."""
        return round(self.days * _DAY_S / self.interval_s)

    def series(self, *, planted: bool = True) -> dict[str, dict[str, FloatArray]]:
        """Each service's metrics as arrays (before the floor at 0 and rounding of events)."""
        return {name: values for name, (values, _) in self._build(planted).items()}

    def episodes(self) -> list[PlantedEpisode]:
        """Every planted episode's ground truth, by start time."""
        out = []
        step = timedelta(seconds=self.interval_s)
        for name, (_, plants) in self._build(True).items():
            out += [
                PlantedEpisode(
                    service=name,
                    kind=p.kind,
                    start=self.start + p.first * step,
                    end=self.start + p.end * step,
                    metrics=tuple(sorted(p.deltas)),
                    direction=p.direction,
                    size_sd=round(p.size_sd, 2),
                )
                for p in plants
            ]
        return sorted(out, key=lambda e: (e.start, e.service))

    def events(self, *, planted: bool = True) -> Iterator[dict[str, Any]]:
        """MetricEvent payloads, services interleaved in event-time order."""
        built = self.series(planted=planted)
        columns = {name: np.column_stack([v[m] for m in METRICS]) for name, v in built.items()}
        for k in range(self.samples):
            ts = format_ts(self.start + timedelta(seconds=k * self.interval_s))
            for name, rows in columns.items():
                yield metric_payload(name, ts, dict(zip(METRICS, rows[k].tolist(), strict=True)))

    def _build(self, planted: bool) -> dict[str, tuple[dict[str, FloatArray], list[_Plant]]]:
        n = self.samples
        t = self.start.timestamp() + np.arange(n) * self.interval_s
        daily = _SWING * np.sin(2 * np.pi * (t % _DAY_S) / _DAY_S - np.pi / 2)
        schedule = self._schedule(n) if planted else [[] for _ in range(self.services)]
        plan_rng = np.random.default_rng([self.seed, 1])
        out = {}
        for i, name in enumerate(self.names):
            values, expected = _normal(np.random.default_rng([self.seed, 0, i]), daily)
            clean = slice(0, max(2, round(self.clean_days * _DAY_S / self.interval_s)))
            sd = {m: float(np.std(values[m][clean] - expected[m][clean])) for m in METRICS}
            plants = []
            for kind, first in schedule[i]:  # in time order: a drop to 0 sees earlier shifts
                plant = _plant(kind, first, values, expected, sd, plan_rng)
                for m, delta in plant.deltas.items():
                    values[m][first : first + delta.size] += delta
                plants.append(plant)
            out[name] = (values, plants)
        return out

    def _schedule(self, n: int) -> list[list[tuple[str, int]]]:
        """Per service, (kind, first sample) of its episodes, each in a slot of its own."""
        rng = np.random.default_rng([self.seed, 2])
        kinds = [*_allocate(self.positives), *["benign_drop"] * self.benign]
        rng.shuffle(kinds)
        per_service: list[list[str]] = [kinds[i :: self.services] for i in range(self.services)]
        first = round(self.clean_days * _DAY_S / self.interval_s)
        gap = round(self.min_gap_s / self.interval_s)
        out = []
        for own in per_service:
            slot = (n - first) // max(1, len(own))
            if own and slot < gap + _LONGEST:
                raise ValueError("too many episodes for the planted period and min_gap_s")
            starts = [
                first + j * slot + gap // 2 + int(rng.integers(0, slot - gap - _LONGEST + 1))
                for j in range(len(own))
            ]
            out.append(list(zip(own, starts, strict=True)))
        return out


_LONGEST = 240  # samples: the longest episode (a slow creep)


def _allocate(total: int) -> list[str]:
    """``total`` positive kinds in the shares of :data:`KIND_COUNTS` (largest remainders)."""
    weight = sum(KIND_COUNTS.values())
    exact = {k: total * c / weight for k, c in KIND_COUNTS.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: counts[k] - exact[k])[: total - sum(counts.values())]:
        counts[k] += 1
    return [k for k in KIND_COUNTS for _ in range(counts[k])]


def _ar1(rng: np.random.Generator, n: int, sd: float, tau_samples: float) -> FloatArray:
    """A stationary AR(1) series with standard deviation ``sd`` and time constant ``tau``."""
    phi = math.exp(-1.0 / tau_samples)
    shocks = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), n)
    shocks[0] = rng.normal(0.0, sd)
    return np.asarray(lfilter([1.0], [1.0, -phi], shocks), dtype=np.float64)


def _normal(
    rng: np.random.Generator, daily: FloatArray
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """One service's normal metrics, and each metric's expected daily cycle (no noise)."""
    n = daily.size
    size = float(rng.uniform(0.5, 3.0))
    base_rate = 300.0 * size
    load = 1.0 + daily + _ar1(rng, n, _WANDER_SD, _WANDER_TAU_S / 60.0)
    req = base_rate * load + rng.normal(0.0, 0.03 * base_rate, n)
    cpu = 12.0 + 45.0 * req / base_rate + rng.normal(0.0, 1.5, n)
    mem_level = 50.0 + 10.0 * size
    expected_cpu = 12.0 + 45.0 * (1.0 + daily)
    values = {
        "req_rate": req,
        "cpu_p95": cpu,
        "latency_p95": _latency(cpu) + rng.normal(0.0, 8.0, n),
        "err_5xx": rng.poisson(0.5 + 1.5 * load.clip(0.0)).astype(np.float64),
        "mem_p95": mem_level + _ar1(rng, n, _MEM_SD, _MEM_TAU_S / 60.0) + rng.normal(0, 0.5, n),
    }
    expected = {
        "req_rate": base_rate * (1.0 + daily),
        "cpu_p95": expected_cpu,
        "latency_p95": _latency(expected_cpu),
        "err_5xx": 0.5 + 1.5 * (1.0 + daily),
        "mem_p95": np.full(n, mem_level),
    }
    return values, expected


def _latency(cpu: FloatArray) -> FloatArray:
    """p95 latency (ms) rising with CPU, faster once CPU passes 60%."""
    return np.asarray(150.0 + 3.0 * cpu + 600.0 * np.maximum(0.0, cpu / 100 - 0.6) ** 2)


def _plant(
    kind: str,
    first: int,
    values: dict[str, FloatArray],
    expected: dict[str, FloatArray],
    sd: dict[str, float],
    rng: np.random.Generator,
) -> _Plant:
    """The moves of one episode of ``kind`` starting at sample ``first``."""
    n = values["req_rate"].size
    up: Literal["up", "down"] = "up"

    def pick(options: tuple[str, ...], low: int, high: int) -> list[str]:
        return sorted(str(m) for m in rng.choice(options, int(rng.integers(low, high + 1)), False))

    def sized(metric: str, size_sd: float, length: int) -> FloatArray:
        delta = np.full(length, size_sd * sd[metric])
        return np.round(delta) if metric == "err_5xx" else delta

    if kind == "level_shift":
        m = pick(("cpu_p95", "latency_p95", "mem_p95", "err_5xx"), 1, 1)[0]
        size = float(rng.uniform(6, 12))
        return _Plant(kind, first, {m: sized(m, size, n - first)}, up, size, first)
    if kind == "spike":
        sizes = {m: float(rng.uniform(8, 20)) for m in pick(METRICS, 1, 3)}
        deltas = {m: sized(m, s, 1) for m, s in sizes.items()}
        return _Plant(kind, first, deltas, up, max(sizes.values()), first)
    if kind == "burst":
        length = int(rng.integers(3, 11))
        sizes = {m: float(rng.uniform(6, 15)) for m in pick(METRICS, 1, 2)}
        deltas = {m: sized(m, s, length) for m, s in sizes.items()}
        return _Plant(kind, first, deltas, up, max(sizes.values()), first + length - 1)
    if kind == "slow_creep":
        m = pick(("cpu_p95", "latency_p95", "mem_p95"), 1, 1)[0]
        length, size = int(rng.integers(60, 241)), float(rng.uniform(10, 20))
        ramp = np.linspace(size / length, size, length) * sd[m]
        return _Plant(kind, first, {m: ramp}, up, size, first + length - 1)
    if kind == "correlation_break":
        # Each metric stays within its own daily range; only the pair disagrees: CPU at its
        # daily peak while requests are low, or requests at their night low while CPU is high.
        length = int(rng.integers(5, 31))
        span = slice(first, first + length)
        if expected["cpu_p95"][first] < float(np.mean(expected["cpu_p95"])):
            m, direction = "cpu_p95", up
            delta = float(np.max(expected[m])) - expected[m][span]
        else:
            m, direction = "req_rate", "down"
            delta = float(np.min(expected[m])) - expected[m][span]
        size = float(np.max(np.abs(delta))) / sd[m]
        return _Plant(kind, first, {m: delta}, direction, size, first + length - 1)
    if kind == "benign_drop":
        length = int(rng.integers(5, 21))
        span = slice(first, first + length)
        m = str(rng.choice(("err_5xx", "latency_p95", "cpu_p95")))
        if m == "err_5xx":  # errors go away
            delta = -values[m][span]
            size = float(np.max(-delta)) / sd[m]
        else:
            size = float(rng.uniform(6, 10))
            delta = np.full(length, -size * sd[m])
        return _Plant(kind, first, {m: delta}, "down", size, first + length - 1)
    raise ValueError(f"unknown episode kind: {kind!r}")


DEGENERATE_KINDS = ("constant", "mostly_zero", "quantized", "monotone")
_DEGENERATE_METRIC = {
    "constant": "replicas",
    "mostly_zero": "oom_kills",
    "quantized": "pods_ready",
    "monotone": "requests_total",
}


def degenerate_values(kind: str, count: int = 10_000, *, seed: int = 0) -> FloatArray:
    """``count`` normal samples of a degenerate metric shape.

    ``constant``: a flat gauge (3.0 every sample); ``mostly_zero``: a sparse counter (Poisson,
    0.02 per sample); ``quantized``: a gauge of a handful of integers (2, 3, 4, 5 with
    probabilities 0.1, 0.6, 0.25, 0.05); ``monotone``: a cumulative counter growing by small
    Poisson increments (5 per sample on average).

    Examples:
        >>> degenerate_values("constant", 4).tolist()
        [3.0, 3.0, 3.0, 3.0]
        >>> sorted(set(degenerate_values("quantized", 1000).tolist()))
        [2.0, 3.0, 4.0, 5.0]
        >>> bool(np.all(np.diff(degenerate_values("monotone", 1000)) >= 0))
        True
    """
    rng = np.random.default_rng([seed, DEGENERATE_KINDS.index(kind)])
    if kind == "constant":
        return np.full(count, 3.0)
    if kind == "mostly_zero":
        return rng.poisson(0.02, count).astype(np.float64)
    if kind == "quantized":
        return rng.choice([2.0, 3.0, 4.0, 5.0], count, p=[0.1, 0.6, 0.25, 0.05])
    return np.cumsum(rng.poisson(5.0, count)).astype(np.float64)


def degenerate_events(
    kind: str,
    count: int = 10_000,
    *,
    interval_s: float = 60.0,
    seed: int = 0,
    start: datetime = datetime(2026, 11, 23, tzinfo=UTC),
) -> Iterator[dict[str, Any]]:
    """MetricEvent payloads of one service (``degenerate-<kind>``) with one degenerate metric.

    Examples:
        >>> events = list(degenerate_events("mostly_zero", 3))
        >>> events[0]["service"], list(events[0]["metrics"]), events[1]["ts"]
        ('degenerate-mostly_zero', ['oom_kills'], '2026-11-23T00:01:00Z')
    """
    metric = _DEGENERATE_METRIC[kind]
    for k, value in enumerate(degenerate_values(kind, count, seed=seed).tolist()):
        ts = format_ts(start + timedelta(seconds=k * interval_s))
        yield metric_payload(f"degenerate-{kind}", ts, {metric: value})
