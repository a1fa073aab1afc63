"""Problems scored against the faults of a scenario (issue 21's targets).

``stream.dev.fault_sim.FaultScenario`` injects faults that spread along a mesh's dependency
edges, and unrelated noise; its events go through detection (offline, or through Kafka with
``vigil evaluate --problems``), its alerts through the correlator, and the problems are
scored here:

- notifications per fault: problems opened that touch the fault's services while it lasts
  (from its start to 10 minutes after its end), against its raw alerts (firing alerts of
  its services in that time);
- AC@1 / AC@3: faults whose problem (the first one opened for it, as it stands at the end of
  the fault) names the root first / in its top three suspects; also at its opening;
- the median time from the fault's start to its first problem (event time; a log alert
  counts at the end of its window);
- problems per day that touch no fault: on injected noise (real anomalies, unrelated to any
  fault), and on nothing injected (the detector's false alarms, recoveries after a fault).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from stream.core.problems.correlator import CorrelationConfig
from stream.dev.fault_sim import START_S, Fault, FaultScenario
from stream.schemas import Alert, Problem

__all__ = ["FaultResult", "score", "summarize"]

SLACK_S = 600.0


@dataclass
class FaultResult:
    fault: Fault
    raw_alerts: int
    problems: int
    first_at_s: float | None
    top_at_open: list[str]
    top_at_end: list[str]
    problem_ids: list[str]


def score(
    scenario: FaultScenario,
    alerts: list[Alert],
    messages: list[Problem],
    log_window_s: float = 30.0,
) -> tuple[list[FaultResult], tuple[int, int], float]:
    """Each fault's figures, the problems opened on noise and on nothing injected (from
    ``quiet_days`` on), and the days scored, from the anomaly alerts and the problem
    messages (in publication order) of a run over ``scenario``'s events."""
    opened = {p.problem_id: p for p in messages if p.status == "opened"}
    results = []
    matched: set[str] = set()
    for fault in scenario.faults:
        lo, hi = fault.start_s, fault.end_s + SLACK_S
        touching = [
            p
            for p in opened.values()
            if lo <= p.opened_at.timestamp() <= hi and set(p.services) & set(fault.onsets)
        ]
        # A problem opened before the fault that the fault's alerts joined counts too.
        joined = {
            p.problem_id
            for p in messages
            if p.status == "updated"
            and lo <= p.updated_at.timestamp() <= hi
            and set(p.services) & set(fault.onsets)
            and p.opened_at.timestamp() >= lo - CorrelationConfig().window_s
        }
        ids = {p.problem_id for p in touching} | joined
        matched |= ids
        raw = sum(
            1
            for a in alerts
            if a.status == "firing"
            and a.service in fault.onsets
            and lo <= a.event_ts.timestamp() <= hi
        )
        first = min((opened[i] for i in ids if i in opened), key=_opened_s, default=None)
        at_end = None
        if first is not None:
            states = [
                p
                for p in messages
                if p.problem_id == first.problem_id and p.updated_at.timestamp() <= hi
            ]
            at_end = states[-1] if states else first
        results.append(
            FaultResult(
                fault,
                raw,
                len(ids),
                _notified_s(first, log_window_s) if first is not None else None,
                [s.service for s in first.suspects] if first is not None else [],
                [s.service for s in at_end.suspects] if at_end is not None else [],
                sorted(ids),
            )
        )
    scored_from = START_S + scenario.quiet_days * 86_400
    stray = [p for i, p in opened.items() if i not in matched and _opened_s(p) >= scored_from]
    noise = [p for p in stray if _on_noise(p, scenario)]
    return results, (len(noise), len(stray) - len(noise)), scenario.days - scenario.quiet_days


def _on_noise(problem: Problem, scenario: FaultScenario) -> bool:
    """Whether the problem opened on an injected noise shift (a real, unrelated anomaly)."""
    t = _opened_s(problem)
    return any(
        n.service in problem.services and n.start_s - 300 <= t <= n.end_s + 900
        for n in scenario.noise
    )


def _notified_s(problem: Problem, log_window_s: float) -> float:
    """Event time the problem could be notified: its first alert's, a log alert's at the end
    of its window (it names the window's start)."""
    opener = problem.members[0]
    late = log_window_s if opener.source == "logs" else 0.0
    return opener.started_at.timestamp() + late


def _opened_s(problem: Problem) -> float:
    return problem.opened_at.timestamp()


def summarize(results: list[FaultResult], stray: tuple[int, int], days: float) -> dict[str, float]:
    n = len(results)
    caught = [r for r in results if r.first_at_s is not None]
    delays = [r.first_at_s - r.fault.start_s for r in caught if r.first_at_s is not None]
    return {
        "faults": n,
        "caught": len(caught),
        "notifications_per_fault": sum(r.problems for r in results) / n,
        "raw_alerts_per_fault": sum(r.raw_alerts for r in results) / n,
        "ac1": sum(r.top_at_end[:1] == [r.fault.root] for r in results) / n,
        "ac3": sum(r.fault.root in r.top_at_end[:3] for r in results) / n,
        "ac1_at_open": sum(r.top_at_open[:1] == [r.fault.root] for r in results) / n,
        "median_time_to_notification_s": statistics.median(delays) if delays else float("nan"),
        "noise_problems_per_day": stray[0] / days,
        "other_problems_per_day": stray[1] / days,
    }
