"""The demo's simulated log-processor: metric samples with incidents and their labels, and log
lines with log incidents, of the same services in the same (accelerated) event time.

Metric samples and incident labels come from :class:`~stream.dev.incident_sim.IncidentSimulator`
(most incidents are preceded by warning signs; labels arrive minutes late, as from an
incident tracker); log lines from :class:`~stream.dev.log_simulate.LogSimulator`, with an error
burst, new stack traces or a silence on one service every 30 minutes of event time once the
log models have warmed up. Each incident enters the :class:`Scoreboard` when the stream
reaches it, so the demo never knows more than the services have shown.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from stream.dev.demo.scoreboard import Incident, Scoreboard
from stream.dev.incident_sim import IncidentRecord, IncidentSimulator
from stream.dev.log_simulate import LogIncident, log_simulator, paced_log_rate
from stream.dev.simulate import LogLine, Publishable

__all__ = ["Scenario", "demo_scenario"]

_NOTE_EVERY_STEPS = 10
"""How often (in sample steps) the incidents the stream has reached are looked up."""
_UNTIL_STOPPED_S = 365 * 86_400.0
"""Event time planned when the demo runs until Ctrl-C: a year, ~6 h at the default pace."""


class Scenario:
    """The simulated services of one demo run.

    Args:
        services: How many services.
        interval_s: Event-time seconds between two metric samples of a service.
        rate: Metric samples per wall-clock second (0: as fast as they can be sent).
        log_lines_per_s: Log lines per service per event-time second (0: no logs).
        duration_s: Event-time seconds to plan incidents for.
        seed: Everything random comes from it.
        start: Event time of the first sample.
        board: Where incidents go as the stream reaches them.

    Examples:
        >>> from datetime import UTC, datetime
        >>> board = Scoreboard(horizon_s=900.0, log_window_s=30.0, settle_s=1800.0)
        >>> scenario = Scenario(services=2, interval_s=30.0, rate=100.0, log_lines_per_s=0.1,
        ...     duration_s=86_400.0, seed=3, start=datetime(2026, 11, 23, tzinfo=UTC), board=board)
        >>> scenario.log_rate  # keeps log time with metric time, 1,500 times the clock's
        300.0
        >>> items = list(scenario.metric_items())
        >>> scenario.sent["metrics"], scenario.now_metrics.isoformat()
        (5760, '2026-11-24T00:00:00+00:00')
        >>> len(board.incidents) > 0
        True
    """

    def __init__(
        self,
        *,
        services: int,
        interval_s: float,
        rate: float,
        log_lines_per_s: float,
        duration_s: float,
        seed: int,
        start: datetime,
        board: Scoreboard,
    ) -> None:
        self.services = services
        self.interval_s = interval_s
        self.rate = rate
        self.duration_s = duration_s
        self.start = start
        self.board = board
        self.metrics = IncidentSimulator(
            services=services, interval_s=interval_s, seed=seed, start=start
        )
        self.logs = log_simulator(
            self.metrics.names,
            lines_per_s=log_lines_per_s,
            seed=seed,
            start=start,
            horizon_s=duration_s,
        )
        self.sent: Counter[str] = Counter()
        """Published so far: ``metrics``, ``labels`` and ``logs``."""
        self.now_metrics = start
        self.now_logs = start
        self._known = 0

    @property
    def log_rate(self) -> float | None:
        """Log lines per wall-clock second that keep log time with metric time."""
        return paced_log_rate(
            self.rate or None, interval_s=self.interval_s, lines_per_s=self.logs.lines_per_s
        )

    @property
    def now(self) -> datetime:
        """The event time both streams have reached."""
        if self.logs.lines_per_s <= 0:
            return self.now_metrics
        return min(self.now_metrics, self.now_logs)

    def metric_items(self) -> Iterator[Publishable]:
        """Metric samples and incident labels, in event-time order."""
        step = timedelta(seconds=self.interval_s)
        for item in self.metrics.stream(self.duration_s):
            if isinstance(item, IncidentRecord):
                self.sent["labels"] += 1
            else:
                self.sent["metrics"] += 1
                if self.sent["metrics"] % self.services == 0:
                    steps = self.sent["metrics"] // self.services
                    self.now_metrics = self.start + step * steps
                    if steps % _NOTE_EVERY_STEPS == 0:
                        self._note_metric_incidents()
            yield item
        self._note_metric_incidents()

    def _note_metric_incidents(self) -> None:
        opened = self.metrics.incidents
        for incident in opened[self._known :]:
            self.board.add_incident(
                Incident(
                    "metrics",
                    incident.incident_id,
                    incident.service,
                    incident.opened,
                    incident.resolved,
                    incident.precursor or "no warning",
                )
            )
        self._known = len(opened)

    def log_items(self) -> Iterator[Publishable]:
        """Log lines, in event-time order up to the simulator's jitter."""
        if self.logs.lines_per_s <= 0:
            return
        upcoming = sorted(self.logs.incidents, key=lambda i: i.start_s, reverse=True)
        for event in self.logs.events(self.duration_s):
            offset_s = (event.ts - self.start).total_seconds()
            while upcoming and upcoming[-1].start_s <= offset_s:
                self.board.add_incident(self._log_incident(upcoming.pop()))
            self.sent["logs"] += 1
            self.now_logs = max(self.now_logs, event.ts)
            yield LogLine(event)

    def _log_incident(self, incident: LogIncident) -> Incident:
        start = self.start + timedelta(seconds=incident.start_s)
        return Incident(
            "logs",
            f"log-{incident.service}-{incident.start_s:.0f}",
            incident.service,
            start,
            start + timedelta(seconds=incident.duration_s),
            incident.kind,
        )


def demo_scenario(args: argparse.Namespace, board: Scoreboard) -> tuple[Scenario, float | None]:
    """The scenario ``vigil demo``'s flags ask for, starting now, and its pace: event-time
    seconds per wall-clock second (None: as fast as it can)."""
    speed = args.rate * args.interval_s / args.services if args.rate else None
    planned_s = (
        speed * args.duration * 1.5 + 3600.0
        if speed is not None and args.duration
        else _UNTIL_STOPPED_S
    )
    scenario = Scenario(
        services=args.services,
        interval_s=args.interval_s,
        rate=args.rate,
        log_lines_per_s=args.log_lines_per_s,
        duration_s=planned_s,
        seed=args.sim_seed,
        start=datetime.now(UTC).replace(second=0, microsecond=0),
        board=board,
    )
    return scenario, speed
