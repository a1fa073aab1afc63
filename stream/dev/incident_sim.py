"""Simulated services whose incidents come with realistic warning signs (pure, seeded).

For learning to predict incidents: metric samples of several services, and IncidentEvents
(labels) published some minutes after each incident opened, all in event time. Most incidents
are preceded by a *precursor* ramping in over 10-40 minutes:

* ``memory_creep``: mem_p95 climbs steadily (13-30 %, many noise sds) and cpu_p95 a little;
* ``latency_drift``: latency_p95 drifts up by 30-80 %;
* ``error_growth``: err_5xx grows to 2-5 times its level (noisy, as error counts are);
* ``deploy``: a deploy 15-30 minutes before the open (``deploy_recent`` for 10 minutes),
  after which errors and latency start creeping.

In the last 5-10 minutes before the open the trouble spreads to a second metric (memory
pressure brings GC pauses and latency, drifting latency brings timeouts and errors, errors bring
retries and latency). The rest come without warning. During an incident metrics are plainly
bad (errors, latency and cpu up, traffic down). To keep prediction honest, *false alarms* have
the same shapes, usually milder or shorter, do not spread, and fade without an incident (a
GC frees the memory, a blip passes, a deploy settles); routine deploys have no consequence.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from stream.dev.simulate import (
    Publishable,
    SimulatedEvent,
    day_phase,
    format_ts,
    metric_payload,
    normal_metrics,
)

__all__ = [
    "PRECURSORS",
    "IncidentRecord",
    "IncidentSimulator",
    "Precursor",
    "SimulatedIncident",
    "to_jsonl",
]

Precursor = Literal["memory_creep", "latency_drift", "error_growth", "deploy"]
"""The kinds of warning sign an incident may have."""

PRECURSORS: tuple[Precursor, ...] = ("memory_creep", "latency_drift", "error_growth", "deploy")

_DEPLOY_RECENT_S = 600.0
_COOLDOWN_S = 3600.0  # after a resolve, before the next incident's precursor may begin
_DAY_S = 86_400.0
_ENDLESS_CHUNK_S = 30 * _DAY_S
_KNOCK_ON = {  # what a precursor that leads to an incident moves next: (metric, amp range)
    "memory_creep": ("latency_p95", 0.1, 0.3),  # GC pauses
    "latency_drift": ("err_5xx", 0.5, 1.5),  # timeouts
    "error_growth": ("latency_p95", 0.1, 0.3),  # retries
}


@dataclass(frozen=True, slots=True)
class SimulatedIncident:
    """Ground truth for one incident.

    Attributes:
        precursor: Its warning sign, or None if it came without warning.
        precursor_start: When the warning sign began (the deploy, for ``deploy``).
        published_at: Event time at which its ``opened`` IncidentEvent is emitted.
    """

    service: str
    incident_id: str
    severity: str
    opened: datetime
    resolved: datetime
    precursor: Precursor | None
    precursor_start: datetime | None
    published_at: datetime


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """One IncidentEvent as a JSON-ready dict (a :class:`~stream.dev.simulate.Publishable`)."""

    payload: dict[str, Any]

    @property
    def service(self) -> str:
        return str(self.payload["service"])

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.payload)


@dataclass(frozen=True, slots=True)
class _Effect:
    """Multiplies ``metric`` by ``1 + amp * shape``: the shape rises from 0 at ``t0`` to 1 at
    ``t1``, holds until ``t2`` and falls back to 0 at ``t3`` (seconds after the start)."""

    metric: str
    amp: float
    t0: float
    t1: float
    t2: float
    t3: float

    def factor(self, t: float) -> float:
        if t < self.t1:
            return 1.0 + self.amp * (t - self.t0) / (self.t1 - self.t0)
        if t < self.t2:
            return 1.0 + self.amp
        return 1.0 + self.amp * (self.t3 - t) / (self.t3 - self.t2)


@dataclass
class _Plan:
    """What happens to one service: incidents, metric effects, deploy times, records."""

    incidents: list[tuple[float, SimulatedIncident]] = field(default_factory=list)
    effects: list[_Effect] = field(default_factory=list)
    deploys: list[float] = field(default_factory=list)
    records: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


@dataclass
class IncidentSimulator:
    """Metric samples and incident labels of ``services`` services, one sample per service
    every ``interval_s``, incidents preceded by precursors (see the module's docstring).

    Args:
        services: How many services (``svc-00``, ``svc-01``, ...).
        interval_s: Seconds between two samples of a service.
        incidents_per_day: Rate of incidents per service while none is open or cooling down
            (an hour after each resolve); the default makes about 3 % of one-minute vectors
            fall within 15 minutes before an open.
        warning_share: Share of incidents preceded by a precursor.
        false_alarm_per_day: Rate per service of precursor-like episodes with no incident.
        deploys_per_day: Rate per service of routine deploys (no incident follows).
        label_delay_s: An ``opened`` event is published this long (uniform) after the open.
        clean_start_s: No incident opens in a service's first seconds (warm-up).
        seed: Everything random comes from it.
        start: Event time of the first sample.

    Examples:
        >>> sim = IncidentSimulator(services=2, clean_start_s=0.0, incidents_per_day=200.0)
        >>> items = list(sim.stream(3600.0))
        >>> sum(isinstance(i, SimulatedEvent) for i in items)
        720
        >>> records = [i.payload for i in items if isinstance(i, IncidentRecord)]
        >>> records[0]["status"], records[0]["incident_id"] == sim.incidents[0].incident_id
        ('opened', True)
    """

    services: int = 10
    interval_s: float = 10.0
    incidents_per_day: float = 3.3
    warning_share: float = 0.8
    false_alarm_per_day: float = 2.0
    deploys_per_day: float = 3.0
    label_delay_s: tuple[float, float] = (120.0, 600.0)
    clean_start_s: float = 6 * 3600
    seed: int = 7
    start: datetime = datetime(2026, 11, 23, tzinfo=UTC)
    _planned: list[SimulatedIncident] = field(default_factory=list, init=False, repr=False)
    _now_s: float = field(default=-math.inf, init=False, repr=False)
    _chunk: int | None = field(default=None, init=False, repr=False)
    """Which chunk of :meth:`endless` this is (None: not one)."""

    @property
    def names(self) -> list[str]:
        """The services' names."""
        return [f"svc-{i:02d}" for i in range(self.services)]

    @property
    def incidents(self) -> list[SimulatedIncident]:
        """Ground truth: the incidents opened so far in the latest :meth:`stream`."""
        cut = self.start + timedelta(seconds=self._now_s) if self._now_s >= 0 else None
        return [i for i in self._planned if cut is not None and i.opened <= cut]

    def stream(self, duration_s: float) -> Iterator[SimulatedEvent | IncidentRecord]:
        """``duration_s`` seconds of everything, in publish (event-time) order.

        Each step's samples go round-robin across services; an incident record comes before
        the first step at or after its publish time. Each call starts again from ``start``,
        and a longer stream begins with a shorter one.
        """
        rng = random.Random(self.seed)
        scales = [0.5 + rng.random() * 2.0 for _ in range(self.services)]
        if self._chunk:  # the same services, with noise of their own in each chunk
            rng.seed(f"noise:{self.seed}:{self._chunk}")
        names = self.names
        plans = [self._plan(s, names[s], duration_s) for s in range(self.services)]
        self._planned = sorted(
            (i for p in plans for _, i in p.incidents), key=lambda i: (i.opened, i.service)
        )
        self._now_s = -math.inf
        records = sorted(
            (t, s, n, r) for s, p in enumerate(plans) for n, (t, r) in enumerate(p.records)
        )
        pending = [sorted(p.effects, key=lambda e: e.t0, reverse=True) for p in plans]
        deploys = [sorted(p.deploys, reverse=True) for p in plans]
        active: list[list[_Effect]] = [[] for _ in plans]
        deploy_until = [-math.inf] * self.services
        start_epoch = self.start.timestamp()
        r = 0
        for step in range(math.ceil(duration_s / self.interval_s)):
            t = step * self.interval_s
            self._now_s = t
            while r < len(records) and records[r][0] <= t:
                yield IncidentRecord(records[r][3])
                r += 1
            phase = day_phase(start_epoch + t)
            ts = format_ts(self.start + timedelta(seconds=t))
            for s in range(self.services):
                metrics = normal_metrics(rng, scales[s], phase)
                todo, on = pending[s], active[s]
                while todo and todo[-1].t0 <= t:
                    on.append(todo.pop())
                if on:
                    on[:] = [e for e in on if t < e.t3]
                    for e in on:
                        metrics[e.metric] *= e.factor(t)
                while deploys[s] and deploys[s][-1] <= t:
                    deploy_until[s] = deploys[s].pop() + _DEPLOY_RECENT_S
                payload = metric_payload(names[s], ts, metrics)
                payload["deploy_recent"] = t < deploy_until[s]
                yield SimulatedEvent(payload)
        while r < len(records) and records[r][0] < duration_s:
            yield IncidentRecord(records[r][3])
            r += 1
        self._now_s = duration_s

    def endless(
        self, chunk_s: float = _ENDLESS_CHUNK_S
    ) -> Iterator[SimulatedEvent | IncidentRecord]:
        """Everything, until the caller stops: :meth:`stream` about ``chunk_s`` at a time.

        Chunk ``n`` begins ``n`` chunks after ``start`` (a whole number of sample intervals)
        and plans incidents of its own (ids ``INC-<service>-c<n>-<k>`` after the first chunk,
        whose ids are :meth:`stream`'s). A chunk plans only incidents that are over, their
        resolve published, before it ends, so none is left open across chunks; the next
        chunk's first may open an hour after its start (the usual pause after a resolve).
        The services (their sizes and daily cycle) carry on unchanged.

        Examples:
            >>> sim = IncidentSimulator(services=2, clean_start_s=0.0, incidents_per_day=50.0)
            >>> items = itertools.islice(sim.endless(chunk_s=86_400.0), 40_000)  # 2.3 days
            >>> ids = [i.payload["incident_id"] for i in items if isinstance(i, IncidentRecord)]
            >>> ids[0], next(i for i in ids if "-c1-" in i)
            ('INC-svc-00-1', 'INC-svc-00-c1-1')
        """
        span_s = math.ceil(chunk_s / self.interval_s) * self.interval_s
        for n in itertools.count():
            chunk = dataclasses.replace(
                self,
                start=self.start + timedelta(seconds=n * span_s),
                clean_start_s=self.clean_start_s if n == 0 else _COOLDOWN_S,
            )
            chunk._chunk = n
            yield from chunk.stream(span_s)

    def _plan(self, s: int, name: str, duration_s: float) -> _Plan:
        """One service's events up to ``duration_s``, each kind from its own random stream
        so that a longer plan begins with a shorter one."""
        plan = _Plan()
        # Each chunk of `endless` after the first has random streams of its own.
        key = f"{self.seed}:{s}" if not self._chunk else f"{self.seed}:{s}:{self._chunk}"
        rng = random.Random(f"incidents:{key}")
        busy: list[tuple[float, float]] = []  # incident windows false alarms keep out of
        t = self.clean_start_s
        # Plan past the end so false alarms near it know about the incidents that follow.
        while (opened := float(round(t + _gap(rng, self.incidents_per_day)))) < (
            duration_s + 2 * _COOLDOWN_S
        ):
            resolved = opened + round(rng.uniform(600.0, 3600.0))
            severity = rng.choices(("sev1", "sev2", "sev3"), weights=(1, 3, 6))[0]
            published = opened + round(rng.uniform(*self.label_delay_s))
            resolve_published = resolved + round(rng.uniform(0.0, 60.0))
            if self._chunk is not None and resolve_published >= duration_s:
                break  # a chunk of `endless` leaves no incident open
            kind = rng.choice(PRECURSORS) if rng.random() < self.warning_share else None
            precursor_start = None
            if kind is not None:
                # A deploy comes 15-30 minutes before; other signs ramp in over 10-40.
                ramp = (
                    rng.uniform(900.0, 1800.0) if kind == "deploy" else rng.uniform(600.0, 2400.0)
                )
                fall = resolved + rng.uniform(30.0, 180.0)
                precursor_start = self._precursor(
                    plan, rng, kind, 1.0, opened - ramp, opened, resolved, fall
                )
                if kind in _KNOCK_ON:  # in the last minutes the trouble starts to spread
                    metric, low, high = _KNOCK_ON[kind]
                    spread = opened - rng.uniform(300.0, 600.0)
                    amp = rng.uniform(low, high)
                    plan.effects.append(_Effect(metric, amp, spread, opened, resolved, fall))
            self._incident_effects(plan, rng, opened, resolved)
            number = len(plan.incidents) + 1
            incident_id = (
                f"INC-{name}-c{self._chunk}-{number}" if self._chunk else f"INC-{name}-{number}"
            )
            incident = SimulatedIncident(
                service=name,
                incident_id=incident_id,
                severity=severity,
                opened=self._at(opened),
                resolved=self._at(resolved),
                precursor=kind,
                precursor_start=None if precursor_start is None else self._at(precursor_start),
                published_at=self._at(published),
            )
            plan.incidents.append((opened, incident))
            for at, status, when in (
                (published, "opened", opened),
                (resolve_published, "resolved", resolved),
            ):
                record: dict[str, Any] = {
                    "ts": format_ts(self._at(when)),
                    "incident_id": incident_id,
                    "service": name,
                    "status": status,
                    "severity": severity,
                }
                if status == "opened":
                    # Ground truth for evaluation (an unknown field to IncidentEvent, which
                    # ignores it): which incidents could have been warned of ahead.
                    record["precursor"] = kind
                plan.records.append((at, record))
            busy.append((min(opened, precursor_start or opened) - 1800.0, resolved + 1800.0))
            t = resolved + _COOLDOWN_S
        self._false_alarms(plan, random.Random(f"false-alarms:{key}"), busy, duration_s)
        self._routine_deploys(plan, random.Random(f"deploys:{key}"), duration_s)
        return plan

    def _precursor(
        self,
        plan: _Plan,
        rng: random.Random,
        kind: Precursor,
        strength: float,
        begin: float,
        peak: float,
        hold: float,
        gone: float,
    ) -> float:
        """Add a ``kind`` warning sign beginning at ``begin``, at full strength from ``peak``
        to ``hold`` and gone at ``gone``; returns ``begin``."""
        rise = begin
        if kind == "deploy":  # the deploy, then errors and latency start creeping
            plan.deploys.append(begin)
            rise = begin + rng.uniform(120.0, 480.0)
            shapes = [("err_5xx", rng.uniform(0.5, 2.5)), ("latency_p95", rng.uniform(0.1, 0.4))]
        else:
            shapes = {
                "memory_creep": [
                    ("mem_p95", rng.uniform(0.13, 0.30)),
                    ("cpu_p95", rng.uniform(0.0, 0.08)),
                ],
                "latency_drift": [("latency_p95", rng.uniform(0.3, 0.8))],
                "error_growth": [("err_5xx", rng.uniform(1.0, 4.0))],
            }[kind]
        for metric, amp in shapes:
            plan.effects.append(_Effect(metric, amp * strength, rise, peak, hold, gone))
        return begin

    @staticmethod
    def _incident_effects(plan: _Plan, rng: random.Random, opened: float, resolved: float) -> None:
        peak = opened + rng.uniform(30.0, 180.0)
        for metric, low, high in (
            ("err_5xx", 4.0, 15.0),
            ("latency_p95", 0.8, 3.0),
            ("cpu_p95", 0.1, 0.4),
            ("req_rate", -0.5, -0.1),
        ):
            gone = resolved + rng.uniform(30.0, 300.0)
            plan.effects.append(
                _Effect(metric, rng.uniform(low, high), opened, peak, resolved, gone)
            )

    def _false_alarms(
        self, plan: _Plan, rng: random.Random, busy: list[tuple[float, float]], duration_s: float
    ) -> None:
        """Precursor-like episodes, usually milder or shorter, that fade with no incident."""
        for t in _arrivals(rng, self.false_alarm_per_day, duration_s):
            kind = rng.choice(PRECURSORS)
            strength = rng.uniform(0.25, 0.8)
            if kind == "deploy":  # the creep settles, or the deploy is rolled back
                peak = t + rng.uniform(900.0, 1800.0)
                hold = peak + rng.uniform(0.0, 300.0)
            else:
                peak = t + rng.uniform(300.0, 1800.0)
                hold = peak + rng.uniform(0.0, 600.0)
            # A GC frees memory at once; drifts and error bursts ebb.
            gone = hold + rng.uniform(*((0.0, 30.0) if kind == "memory_creep" else (120.0, 900.0)))
            if not any(a < gone and t < b for a, b in busy):
                self._precursor(plan, rng, kind, strength, t, peak, hold, gone)

    def _routine_deploys(self, plan: _Plan, rng: random.Random, duration_s: float) -> None:
        """Deploys that go fine: the flag, and now and then a short latency blip."""
        for t in _arrivals(rng, self.deploys_per_day, duration_s):
            plan.deploys.append(t)
            if rng.random() < 0.3:
                rise = t + rng.uniform(0.0, 120.0)
                peak = rise + rng.uniform(60.0, 180.0)
                gone = peak + rng.uniform(60.0, 300.0)
                plan.effects.append(
                    _Effect("latency_p95", rng.uniform(0.05, 0.2), rise, peak, peak, gone)
                )

    def _at(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)


def _gap(rng: random.Random, per_day: float) -> float:
    """Seconds to the next arrival of a Poisson process of ``per_day`` (never, if 0)."""
    return rng.expovariate(per_day / _DAY_S) if per_day > 0 else math.inf


def _arrivals(rng: random.Random, per_day: float, end_s: float) -> Iterator[float]:
    """Arrival times before ``end_s`` of a Poisson process of ``per_day``."""
    t = 0.0
    while (t := t + _gap(rng, per_day)) < end_s:
        yield t


def to_jsonl(items: Iterable[Publishable]) -> Iterator[bytes]:
    """Lines for ``vigil replay``: one JSON object per item, in the order given.

    Examples:
        >>> sim = IncidentSimulator(services=1, seed=3)
        >>> next(to_jsonl(sim.stream(60.0)))[:30]
        b'{"ts":"2026-11-23T00:00:00Z","'
    """
    for item in items:
        yield item.to_bytes() + b"\n"
