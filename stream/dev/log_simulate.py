"""Simulated service logs with labelled incidents (pure, seeded, event time only).

Normal chatter is a mix of request, cache, job and housekeeping lines with variable fields
(ids, IPs, durations, paths), a little DEBUG and WARN, about 1% ERROR lines of a few known
kinds, and an upstream timeout (WARN) about ``timeout_per_min`` times a minute. Incidents
change it for a while:

* ``error_burst``: many more ERROR lines (timeouts, refused connections, exceptions);
* ``new_stack_traces``: exceptions the service never threw before, at ERROR;
* ``quiet``: the service writes nothing;
* ``template_burst``: the upstream timeout, a template the service knows, comes
  ``burst_factor`` times as often; nothing else changes (no new template).

The timeout lines draw from a random generator of their own, so every other line is the same
whatever ``timeout_per_min`` (0 gives the stream without them).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from stream.schemas import LogEvent

__all__ = [
    "FIRST_INCIDENT_S",
    "INCIDENT_EVERY_S",
    "LogIncident",
    "LogSimulator",
    "endless_log_events",
    "log_simulator",
    "paced_log_rate",
    "rotating_incidents",
]

IncidentKind = Literal["error_burst", "new_stack_traces", "quiet", "template_burst"]

FIRST_INCIDENT_S = 3600.0
"""When :func:`log_simulator`'s first incident begins: after the window models' warm-up
(100 windows of 30 s)."""
INCIDENT_EVERY_S = 1800.0
"""Event time between two of :func:`log_simulator`'s incidents."""
_ENDLESS_CHUNK_S = 30 * 86_400.0


@dataclass(frozen=True, slots=True)
class LogIncident:
    """Ground truth: ``kind`` hits ``service`` from ``start_s`` (seconds after the stream's
    start) for ``duration_s``."""

    service: str
    kind: IncidentKind
    start_s: float
    duration_s: float

    def active(self, t_s: float) -> bool:
        """Whether the incident is under way ``t_s`` seconds after the start."""
        return self.start_s <= t_s < self.start_s + self.duration_s


_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_ROUTES = ("/api/v1/orders", "/api/v1/users", "/api/v1/cart/items", "/healthz", "/api/v1/search")
_NEW_EXCEPTIONS = (
    'java.lang.NullPointerException: Cannot invoke "Ledger.post()" because "ledger" is null'
    "\n\tat com.acme.payments.LedgerService.settle(LedgerService.java:{n})",
    "java.lang.IllegalStateException: Pool exhausted while acquiring session for shard {n}"
    "\n\tat com.acme.db.SessionPool.acquire(SessionPool.java:{n})",
    "java.util.ConcurrentModificationException in cart reconciler worker {n}"
    "\n\tat java.util.ArrayList$Itr.next(ArrayList.java:{n})",
    "com.acme.crypto.SignatureException: key rotation left no verifier for kid {hex}"
    "\n\tat com.acme.crypto.Verifier.check(Verifier.java:{n})",
)


@dataclass
class LogSimulator:
    """Log lines of ``services`` services at about ``lines_per_s`` each, in event-time order.

    Args:
        services: Names of the services.
        lines_per_s: Mean lines per second per service.
        incidents: What to inject.
        seed: Everything random comes from it.
        start: Event time of the first second.
        disorder_s: Lines leave in event-time order up to this much jitter (as a real shipper's
            would), to exercise the windows' allowed lateness.
        timeout_per_min: Mean upstream timeout lines per minute per service (a Poisson
            process of their own).
        burst_factor: A ``template_burst`` multiplies that rate by this much.

    Examples:
        >>> sim = LogSimulator(["api"], lines_per_s=2.0, seed=1)
        >>> events = list(sim.events(10.0))
        >>> 10 <= len(events) <= 30, {e.service for e in events}
        (True, {'api'})
    """

    services: Sequence[str]
    lines_per_s: float = 2.0
    incidents: Sequence[LogIncident] = ()
    seed: int = 7
    start: datetime = datetime(2026, 11, 23, tzinfo=UTC)
    disorder_s: float = 0.0
    timeout_per_min: float = 1.0
    burst_factor: float = 10.0
    _rng: random.Random = field(init=False, repr=False)
    _timeouts: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._timeouts = random.Random(f"timeouts:{self.seed}")

    def events(self, duration_s: float) -> Iterator[LogEvent]:
        """``duration_s`` seconds of lines from every service."""
        rng = self._rng
        pending: list[tuple[float, int, LogEvent]] = []
        seq = 0
        upcoming = sorted(self.incidents, key=lambda i: i.start_s, reverse=True)
        under_way: list[LogIncident] = []
        for second in range(int(duration_s)):
            while upcoming and upcoming[-1].start_s <= second:
                under_way.append(upcoming.pop())
            under_way = [i for i in under_way if i.active(second)]
            for service in self.services:
                active = {i.kind for i in under_way if i.service == service}
                if "quiet" in active:
                    continue
                for level, message in self._second(service, active):
                    t = second + rng.random()
                    event = LogEvent(
                        ts=self.start + timedelta(seconds=t),
                        service=service,
                        level=level,
                        message=message,
                        host=f"{service}-{rng.randint(1, 3)}",
                    )
                    pending.append((t + rng.random() * self.disorder_s, seq, event))
                    seq += 1
                for t, event in self._timeout_lines(service, second, "template_burst" in active):
                    pending.append((t + self._timeouts.random() * self.disorder_s, seq, event))
                    seq += 1
            pending.sort(key=lambda p: (p[0], p[1]))
            cut = next((j for j, p in enumerate(pending) if p[0] >= second + 1), len(pending))
            for _, _, event in pending[:cut]:
                yield event
            del pending[:cut]
        for _, _, event in pending:
            yield event

    def _second(self, service: str, active: set[IncidentKind]) -> list[tuple[str, str]]:
        rng = self._rng
        lines: list[tuple[str, str]] = []
        n = _poisson(rng, self.lines_per_s)
        for _ in range(n):
            lines.append(self._normal_line(service))
        if "error_burst" in active:
            for _ in range(_poisson(rng, self.lines_per_s * 0.6)):
                lines.append(("ERROR", self._burst_line()))
        if "new_stack_traces" in active:
            for _ in range(_poisson(rng, 0.3)):
                template = rng.choice(_NEW_EXCEPTIONS)
                message = template.format(n=rng.randint(10, 999), hex=f"{rng.getrandbits(40):x}")
                lines.append(("ERROR", message))
        return lines

    def _timeout_lines(
        self, service: str, second: int, burst: bool
    ) -> list[tuple[float, LogEvent]]:
        """The upstream timeouts of one second, with their offsets from the start (drawn from
        a random generator of their own)."""
        if self.timeout_per_min <= 0:
            return []
        rng = self._timeouts
        mean = self.timeout_per_min / 60.0 * (self.burst_factor if burst else 1.0)
        lines = []
        for _ in range(_poisson(rng, mean)):
            t = second + rng.random()
            message = f"upstream timeout after {rng.randint(5, 30)}s calling payments"
            event = LogEvent(
                ts=self.start + timedelta(seconds=t),
                service=service,
                level="WARN",
                message=message,
                host=f"{service}-{rng.randint(1, 3)}",
            )
            lines.append((t, event))
        return lines

    def _normal_line(self, service: str) -> tuple[str, str]:
        rng = self._rng
        r = rng.random()
        ms = rng.randint(2, 250)
        if r < 0.55:
            method, route = rng.choice(_METHODS), rng.choice(_ROUTES)
            status = rng.choice((200, 200, 200, 201, 204, 304, 404))
            return "INFO", f"{method} {route}/{rng.randint(1, 99999)} {status} {ms}ms"
        if r < 0.70:
            return "INFO", f"cache hit ratio {rng.random():.3f} for region {rng.randint(1, 8)}"
        if r < 0.80:
            user = rng.getrandbits(64)
            return (
                "INFO",
                f"user {user:016x} signed in from 10.{rng.randint(0, 9)}.1.{rng.randint(1, 254)}",
            )
        if r < 0.86:
            return "DEBUG", f"pool stats active={rng.randint(0, 20)} idle={rng.randint(0, 20)}"
        if r < 0.91:
            return "INFO", f"job {rng.randint(1, 500)} finished in {rng.uniform(0.1, 9):.2f}s"
        if r < 0.95:
            return "WARN", f"slow query on table orders took {rng.randint(500, 2000)}ms"
        if r < 0.99:
            return "INFO", f"{service} heartbeat ok"
        if r < 0.995:
            return "ERROR", f"payment declined for order {rng.randint(10**5, 10**6)}: card expired"
        return "ERROR", f"failed to publish event {rng.getrandbits(32):08x}: retrying"

    def _burst_line(self) -> str:
        rng = self._rng
        r = rng.random()
        if r < 0.4:
            return f"upstream timeout after {rng.randint(5, 30)}s calling payments"
        if r < 0.7:
            return f"connection refused to 10.0.{rng.randint(0, 9)}.{rng.randint(1, 254)}:5432"
        return (
            "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available,"
            f" request timed out after {rng.randint(1000, 30000)}ms."
        )


def rotating_incidents(
    services: Sequence[str], *, first_s: float, every_s: float, count: int
) -> list[LogIncident]:
    """``count`` incidents, one every ``every_s`` from ``first_s``, cycling through the kinds
    and the services (error bursts and new stack traces last 2 minutes, a silence 5).

    Examples:
        >>> [(i.service, i.kind, i.start_s) for i in rotating_incidents(
        ...     ["api", "db"], first_s=100.0, every_s=50.0, count=3)]
        [('api', 'error_burst', 100.0), ('db', 'new_stack_traces', 150.0), ('api', 'quiet', 200.0)]
    """
    kinds: tuple[IncidentKind, ...] = ("error_burst", "new_stack_traces", "quiet")
    durations = {"error_burst": 120.0, "new_stack_traces": 120.0, "quiet": 300.0}
    return [
        LogIncident(
            services[n % len(services)],
            kinds[n % 3],
            first_s + n * every_s,
            durations[kinds[n % 3]],
        )
        for n in range(count)
    ]


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method for small means, a rounded normal for large ones)."""
    if mean > 30.0:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def log_simulator(
    services: Sequence[str],
    *,
    lines_per_s: float,
    seed: int,
    start: datetime,
    horizon_s: float,
) -> LogSimulator:
    """The simulated log-processor's lines: an incident every :data:`INCIDENT_EVERY_S` of
    event time from :data:`FIRST_INCIDENT_S` until ``horizon_s``, through the kinds and the
    services in turn (:func:`rotating_incidents`); lines up to 2 s out of order.

    Examples:
        >>> start = datetime(2026, 11, 23, tzinfo=UTC)
        >>> sim = log_simulator(["api"], lines_per_s=1.0, seed=1, start=start, horizon_s=7200.0)
        >>> [(i.kind, i.start_s) for i in sim.incidents]
        [('error_burst', 3600.0), ('new_stack_traces', 5400.0), ('quiet', 7200.0)]
    """
    count = max(0, int((horizon_s - FIRST_INCIDENT_S) // INCIDENT_EVERY_S) + 1)
    incidents = rotating_incidents(
        services, first_s=FIRST_INCIDENT_S, every_s=INCIDENT_EVERY_S, count=count
    )
    return LogSimulator(
        services,
        lines_per_s=lines_per_s,
        incidents=incidents,
        seed=seed,
        start=start,
        disorder_s=2.0,
    )


def endless_log_events(
    services: Sequence[str],
    *,
    lines_per_s: float,
    seed: int,
    start: datetime,
    chunk_s: float = _ENDLESS_CHUNK_S,
) -> Iterator[LogEvent]:
    """:func:`log_simulator`'s lines until the caller stops, ``chunk_s`` of event time at a
    time: each chunk with a seed of its own and incidents that end within it (none at all
    if ``lines_per_s`` is not positive).

    Examples:
        >>> start = datetime(2026, 11, 23, tzinfo=UTC)
        >>> lines = endless_log_events(["api"], lines_per_s=1.0, seed=1, start=start, chunk_s=60)
        >>> sorted({e.ts.minute for e in itertools.islice(lines, 300)})  # five chunks
        [0, 1, 2, 3, 4]
    """
    if lines_per_s <= 0:
        return  # else it would run through event time for ever and never yield
    for n in itertools.count():
        # The longest incident (a silence) lasts 5 minutes: none is cut by the chunk's end.
        yield from log_simulator(
            services,
            lines_per_s=lines_per_s,
            # Not seed + n: then seed 8 would replay seed 7's second chunk.
            seed=seed if n == 0 else random.Random(f"logs:{seed}:{n}").getrandbits(63),
            start=start + timedelta(seconds=n * chunk_s),
            horizon_s=chunk_s - 600.0,
        ).events(chunk_s)


def paced_log_rate(
    metric_rate: float | None, *, interval_s: float, lines_per_s: float
) -> float | None:
    """Log lines per second that keep the log lines' event time at the pace of metric
    samples published at ``metric_rate`` events/s, one per service every ``interval_s``
    (event time then runs ``metric_rate * interval_s / services`` seconds a second, and each
    service logs ``lines_per_s`` lines a second of it). None (as fast as possible) with the
    samples.

    Examples:
        >>> paced_log_rate(200.0, interval_s=10.0, lines_per_s=0.5)
        1000.0
        >>> paced_log_rate(None, interval_s=10.0, lines_per_s=0.5) is None
        True
    """
    return metric_rate * interval_s * lines_per_s if metric_rate else None
