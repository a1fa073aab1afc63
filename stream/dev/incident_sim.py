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

Each service is planned ahead (:mod:`stream.dev.incident_plan`), then streamed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from stream.dev.incident_plan import (
    COOLDOWN_S,
    PRECURSORS,
    Effect,
    Precursor,
    ServicePlan,
    SimulatedIncident,
    false_alarms,
    gap,
    incident_effects,
    label_records,
    routine_deploys,
    warning_sign,
)
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

_DEPLOY_RECENT_S = 600.0
_ENDLESS_CHUNK_S = 30 * 86_400.0


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """One IncidentEvent as a JSON-ready dict (a :class:`~stream.dev.simulate.Publishable`)."""

    payload: dict[str, Any]

    @property
    def service(self) -> str:
        return str(self.payload["service"])

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.payload)


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
        active: list[list[Effect]] = [[] for _ in plans]
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
                clean_start_s=self.clean_start_s if n == 0 else COOLDOWN_S,
            )
            chunk._chunk = n
            yield from chunk.stream(span_s)

    def _plan(self, s: int, name: str, duration_s: float) -> ServicePlan:
        """One service's events up to ``duration_s``, each kind from its own random stream
        so that a longer plan begins with a shorter one."""
        plan = ServicePlan()
        # Each chunk of `endless` after the first has random streams of its own.
        key = f"{self.seed}:{s}" if not self._chunk else f"{self.seed}:{s}:{self._chunk}"
        rng = random.Random(f"incidents:{key}")
        busy: list[tuple[float, float]] = []  # incident windows false alarms keep out of
        t = self.clean_start_s
        # Plan past the end so false alarms near it know about the incidents that follow.
        while (opened := float(round(t + gap(rng, self.incidents_per_day)))) < (
            duration_s + 2 * COOLDOWN_S
        ):
            resolved = opened + round(rng.uniform(600.0, 3600.0))
            severity = rng.choices(("sev1", "sev2", "sev3"), weights=(1, 3, 6))[0]
            published = opened + round(rng.uniform(*self.label_delay_s))
            resolve_published = resolved + round(rng.uniform(0.0, 60.0))
            if self._chunk is not None and resolve_published >= duration_s:
                break  # a chunk of `endless` leaves no incident open
            kind = rng.choice(PRECURSORS) if rng.random() < self.warning_share else None
            precursor_start = (
                None if kind is None else warning_sign(plan, rng, kind, opened, resolved)
            )
            incident_effects(plan, rng, opened, resolved)
            number = len(plan.incidents) + 1
            incident = SimulatedIncident(
                service=name,
                incident_id=(
                    f"INC-{name}-c{self._chunk}-{number}" if self._chunk else f"INC-{name}-{number}"
                ),
                severity=severity,
                opened=self._at(opened),
                resolved=self._at(resolved),
                precursor=kind,
                precursor_start=None if precursor_start is None else self._at(precursor_start),
                published_at=self._at(published),
            )
            plan.incidents.append((opened, incident))
            plan.records += label_records(incident, published, resolve_published)
            busy.append((min(opened, precursor_start or opened) - 1800.0, resolved + 1800.0))
            t = resolved + COOLDOWN_S
        false_alarms(
            plan, random.Random(f"false-alarms:{key}"), self.false_alarm_per_day, busy, duration_s
        )
        routine_deploys(plan, random.Random(f"deploys:{key}"), self.deploys_per_day, duration_s)
        return plan

    def _at(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)


def to_jsonl(items: Iterable[Publishable]) -> Iterator[bytes]:
    """Lines for ``vigil replay``: one JSON object per item, in the order given.

    Examples:
        >>> sim = IncidentSimulator(services=1, seed=3)
        >>> next(to_jsonl(sim.stream(60.0)))[:30]
        b'{"ts":"2026-11-23T00:00:00Z","'
    """
    for item in items:
        yield item.to_bytes() + b"\n"
