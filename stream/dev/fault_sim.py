"""A service mesh with faults that spread: the scenario problems and root causes are judged on.

Fifteen services call each other along a dependency graph (:data:`MESH`, a
``services.toml`` topology). A fault starts at one service (its root: saturated CPU, errors
or slow responses) and reaches the services that call it, hop by hop, one to four minutes a
hop (each caller with probability 0.85), as slower responses and more errors. Unrelated noise:
short level shifts on single services, away from faults. Everything is seeded and in event
time; :meth:`FaultScenario.events` yields metric events (one per service every
``interval_s``), :meth:`FaultScenario.log_events` the services' log lines (with
``log_lines_per_s``: during a fault its root throws exceptions it never threw before and the
services it reached log bursts of timeouts and refused connections),
:attr:`FaultScenario.faults` the ground truth.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stream.dev.log_simulate import LogIncident, LogSimulator

__all__ = ["MESH", "START_S", "Fault", "FaultScenario", "Noise", "topology_toml"]

MESH: Mapping[str, tuple[str, ...]] = {
    "web": ("gateway",),
    "mobile-api": ("gateway",),
    "gateway": ("checkout", "search", "accounts"),
    "checkout": ("payments", "inventory", "cart"),
    "payments": ("payments-db", "fraud"),
    "inventory": ("inventory-db",),
    "cart": ("cache",),
    "accounts": ("accounts-db", "cache"),
    "search": ("search-index",),
    "fraud": (),
    "payments-db": (),
    "inventory-db": (),
    "accounts-db": (),
    "cache": (),
    "search-index": (),
}
"""Service -> the services it calls."""

_KINDS = ("saturation", "errors", "latency")
START_S = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
"""Event time of every scenario's first sample."""


def topology_toml(mesh: Mapping[str, tuple[str, ...]] = MESH) -> str:
    """The mesh as a ``services.toml`` (what ``vigil correlate`` reads).

    Examples:
        >>> print(topology_toml({"web": ("db",), "db": ()}))
        [services."web"]
        depends_on = ["db"]
        [services."db"]
        depends_on = []
        <BLANKLINE>
    """
    lines = []
    for service, callees in mesh.items():
        lines.append(f'[services."{service}"]')
        lines.append("depends_on = [" + ", ".join(f'"{c}"' for c in callees) + "]")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Fault:
    """One injected fault: where it started, when, and when it reached each service."""

    fault_id: str
    root: str
    kind: str
    start_s: float
    end_s: float
    onsets: dict[str, float]
    """Affected service -> event time its symptoms start (the root's is ``start_s``)."""


@dataclass(frozen=True)
class Noise:
    """A short level shift on one service, unrelated to any fault."""

    service: str
    metric: str
    start_s: float
    end_s: float
    factor: float


@dataclass
class FaultScenario:
    """``days`` of metric events for the mesh's services with faults and noise.

    Faults start after ``quiet_days`` (the models' warm-up and first day), at least an hour
    apart, ``faults_per_day`` on average; noise is ``noise_per_day`` shifts a day, never on a
    service in a fault.

    Examples:
        >>> s = FaultScenario(days=2, seed=3)
        >>> len(s.faults) > 0, all(f.root in f.onsets for f in s.faults)
        (True, True)
        >>> first = next(s.events())
        >>> sorted(first["metrics"])
        ['cpu_p95', 'err_5xx', 'latency_p95', 'req_rate']
    """

    days: float = 3.0
    interval_s: float = 30.0
    faults_per_day: float = 6.0
    noise_per_day: float = 4.0
    quiet_days: float = 1.0
    seed: int = 0
    log_lines_per_s: float = 0.0
    """Log lines per service per second of event time (0: no logs)."""
    mesh: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(MESH))
    faults: list[Fault] = field(init=False)
    noise: list[Noise] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self._scale = {s: rng.uniform(0.6, 1.6) for s in self.mesh}
        self._phase = {s: rng.uniform(0, 2 * math.pi) for s in self.mesh}
        self.faults = self._plan_faults(rng)
        self.noise = self._plan_noise(rng)

    @property
    def end_s(self) -> float:
        return START_S + self.days * 86_400

    def callers(self, service: str) -> list[str]:
        """The services that call ``service``."""
        return [s for s, callees in self.mesh.items() if service in callees]

    def _plan_faults(self, rng: random.Random) -> list[Fault]:
        faults: list[Fault] = []
        t = START_S + self.quiet_days * 86_400
        while True:
            t += max(3600.0, rng.expovariate(self.faults_per_day / 86_400))
            if t > self.end_s - 3600:
                return faults
            root = rng.choice(list(self.mesh))
            onsets = {root: t}
            frontier = [root]
            while frontier:
                service = frontier.pop(0)
                for caller in self.callers(service):
                    if caller not in onsets and rng.random() < 0.85:
                        onsets[caller] = onsets[service] + rng.uniform(60, 240)
                        frontier.append(caller)
            duration = rng.uniform(15 * 60, 40 * 60)
            fault_id = f"F{len(faults) + 1:03d}"
            faults.append(Fault(fault_id, root, rng.choice(_KINDS), t, t + duration, onsets))

    def _plan_noise(self, rng: random.Random) -> list[Noise]:
        count = round(self.noise_per_day * (self.days - self.quiet_days))
        noise: list[Noise] = []
        while len(noise) < count:
            start = rng.uniform(START_S + self.quiet_days * 86_400, self.end_s - 1800)
            service = rng.choice(list(self.mesh))
            busy = any(
                service in f.onsets and f.start_s - 1800 < start < f.end_s + 1800
                for f in self.faults
            )
            if not busy:
                metric = rng.choice(("cpu_p95", "latency_p95", "req_rate"))
                end = start + rng.uniform(120, 600)
                noise.append(Noise(service, metric, start, end, rng.uniform(1.8, 3.0)))
        return noise

    def log_events(self) -> Iterator[dict[str, Any]]:
        """LogEvent payloads in event-time order (none without ``log_lines_per_s``)."""
        if self.log_lines_per_s <= 0:
            return
        incidents = [
            LogIncident(
                service,
                "new_stack_traces" if service == fault.root else "error_burst",
                onset - START_S,
                fault.end_s - onset,
            )
            for fault in self.faults
            for service, onset in fault.onsets.items()
        ]
        simulator = LogSimulator(
            list(self.mesh),
            lines_per_s=self.log_lines_per_s,
            incidents=incidents,
            seed=self.seed + 2,
            start=datetime.fromtimestamp(START_S, UTC),
        )
        for event in simulator.events(self.days * 86_400):
            yield event.model_dump(mode="json", exclude_none=True)

    def events(self) -> Iterator[dict[str, Any]]:
        """Metric event payloads in event-time order."""
        rng = random.Random(self.seed + 1)
        steps = int(self.days * 86_400 / self.interval_s)
        for step in range(steps):
            t = START_S + step * self.interval_s
            for service in self.mesh:
                yield {
                    "ts": datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z"),
                    "service": service,
                    "metrics": self._metrics(service, t, rng),
                }

    def _metrics(self, service: str, t: float, rng: random.Random) -> dict[str, float]:
        scale = self._scale[service]
        day = 1 + 0.3 * math.sin(2 * math.pi * t / 86_400 + self._phase[service])
        cpu = 40 * scale * day + rng.gauss(0, 2)
        latency = 200 * scale * (0.9 + 0.1 * day) + rng.gauss(0, 10)
        errors = max(0.0, 1.0 * scale * day + rng.gauss(0, 0.5))
        rate = 300 * scale * day + rng.gauss(0, 12)
        for fault in self.faults:
            onset = fault.onsets.get(service)
            if onset is None or not onset <= t < fault.end_s:
                continue
            strength = min(1.0, (t - onset) / 120 + 0.5)  # symptoms build over two minutes
            if service == fault.root:
                if fault.kind == "saturation":
                    cpu *= 1 + 1.2 * strength
                    latency *= 1 + 2.0 * strength
                elif fault.kind == "errors":
                    errors += 25 * strength * scale
                else:
                    latency *= 1 + 3.0 * strength
            else:
                latency *= 1 + 1.2 * strength
                errors += 8 * strength * scale
        for shift in self.noise:
            if shift.service == service and shift.start_s <= t < shift.end_s:
                if shift.metric == "cpu_p95":
                    cpu *= shift.factor
                elif shift.metric == "latency_p95":
                    latency *= shift.factor
                else:
                    rate *= shift.factor
        return {
            "cpu_p95": round(cpu, 3),
            "err_5xx": round(errors, 3),
            "latency_p95": round(latency, 3),
            "req_rate": round(rate, 3),
        }
