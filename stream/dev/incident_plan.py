"""What happens to one simulated service (pure, seeded): its incidents, their warning signs,
false alarms and routine deploys, planned ahead as metric effects and labels.

:class:`~stream.dev.incident_sim.IncidentSimulator` plans each service with these steps, then
streams the samples with the effects applied (see its module for the precursors' shapes).
Every step draws from the random stream it is given, in a fixed order: the same seed plans
the same service.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from stream.dev.simulate import format_ts

__all__ = [
    "COOLDOWN_S",
    "PRECURSORS",
    "Effect",
    "Precursor",
    "ServicePlan",
    "SimulatedIncident",
    "arrivals",
    "false_alarms",
    "gap",
    "incident_effects",
    "label_records",
    "routine_deploys",
    "warning_sign",
]

Precursor = Literal["memory_creep", "latency_drift", "error_growth", "deploy"]
"""The kinds of warning sign an incident may have."""

PRECURSORS: tuple[Precursor, ...] = ("memory_creep", "latency_drift", "error_growth", "deploy")

COOLDOWN_S = 3600.0  # after a resolve, before the next incident's precursor may begin
_DAY_S = 86_400.0
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
class Effect:
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
class ServicePlan:
    """What happens to one service: incidents, metric effects, deploy times, records."""

    incidents: list[tuple[float, SimulatedIncident]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    deploys: list[float] = field(default_factory=list)
    records: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


def warning_sign(
    plan: ServicePlan, rng: random.Random, kind: Precursor, opened: float, resolved: float
) -> float:
    """Add an incident's ``kind`` warning sign before ``opened`` (and, for some kinds, its
    spread to a second metric in the last minutes); returns when the sign began."""
    # A deploy comes 15-30 minutes before; other signs ramp in over 10-40.
    ramp = rng.uniform(900.0, 1800.0) if kind == "deploy" else rng.uniform(600.0, 2400.0)
    fall = resolved + rng.uniform(30.0, 180.0)
    begin = precursor(plan, rng, kind, 1.0, opened - ramp, opened, resolved, fall)
    if kind in _KNOCK_ON:  # in the last minutes the trouble starts to spread
        metric, low, high = _KNOCK_ON[kind]
        spread = opened - rng.uniform(300.0, 600.0)
        amp = rng.uniform(low, high)
        plan.effects.append(Effect(metric, amp, spread, opened, resolved, fall))
    return begin


def precursor(
    plan: ServicePlan,
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
        plan.effects.append(Effect(metric, amp * strength, rise, peak, hold, gone))
    return begin


def incident_effects(plan: ServicePlan, rng: random.Random, opened: float, resolved: float) -> None:
    """The incident itself: errors, latency and cpu up, traffic down, from ``opened``."""
    peak = opened + rng.uniform(30.0, 180.0)
    for metric, low, high in (
        ("err_5xx", 4.0, 15.0),
        ("latency_p95", 0.8, 3.0),
        ("cpu_p95", 0.1, 0.4),
        ("req_rate", -0.5, -0.1),
    ):
        gone = resolved + rng.uniform(30.0, 300.0)
        plan.effects.append(Effect(metric, rng.uniform(low, high), opened, peak, resolved, gone))


def false_alarms(
    plan: ServicePlan,
    rng: random.Random,
    per_day: float,
    busy: list[tuple[float, float]],
    duration_s: float,
) -> None:
    """Precursor-like episodes, usually milder or shorter, that fade with no incident."""
    for t in arrivals(rng, per_day, duration_s):
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
            precursor(plan, rng, kind, strength, t, peak, hold, gone)


def routine_deploys(
    plan: ServicePlan, rng: random.Random, per_day: float, duration_s: float
) -> None:
    """Deploys that go fine: the flag, and now and then a short latency blip."""
    for t in arrivals(rng, per_day, duration_s):
        plan.deploys.append(t)
        if rng.random() < 0.3:
            rise = t + rng.uniform(0.0, 120.0)
            peak = rise + rng.uniform(60.0, 180.0)
            gone = peak + rng.uniform(60.0, 300.0)
            plan.effects.append(
                Effect("latency_p95", rng.uniform(0.05, 0.2), rise, peak, peak, gone)
            )


def label_records(
    incident: SimulatedIncident, published: float, resolve_published: float
) -> list[tuple[float, dict[str, Any]]]:
    """The incident's ``opened`` and ``resolved`` IncidentEvents, with their publish times."""
    records = []
    for at, status, when in (
        (published, "opened", incident.opened),
        (resolve_published, "resolved", incident.resolved),
    ):
        record: dict[str, Any] = {
            "ts": format_ts(when),
            "incident_id": incident.incident_id,
            "service": incident.service,
            "status": status,
            "severity": incident.severity,
        }
        if status == "opened":
            # Ground truth for evaluation (an unknown field to IncidentEvent, which
            # ignores it): which incidents could have been warned of ahead.
            record["precursor"] = incident.precursor
        records.append((at, record))
    return records


def gap(rng: random.Random, per_day: float) -> float:
    """Seconds to the next arrival of a Poisson process of ``per_day`` (never, if 0)."""
    return rng.expovariate(per_day / _DAY_S) if per_day > 0 else math.inf


def arrivals(rng: random.Random, per_day: float, end_s: float) -> Iterator[float]:
    """Arrival times before ``end_s`` of a Poisson process of ``per_day``."""
    t = 0.0
    while (t := t + gap(rng, per_day)) < end_s:
        yield t
