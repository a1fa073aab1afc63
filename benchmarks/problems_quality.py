"""Problems and root causes on a service mesh with faults that spread (issue 21's targets).

``stream.dev.fault_sim.FaultScenario`` (15 services, faults along dependency edges, unrelated
noise) goes through the detector's pipeline (``vigil replay``'s, metric anomalies), the alerts
through ``stream.core.problems`` with the mesh's topology, and the problems are scored against
the faults:

- notifications per fault: problems opened that touch the fault's services while it lasts
  (from its start to 10 minutes after its end), against its raw alerts (firing alerts of
  its services in that time);
- AC@1 / AC@3: faults whose problem (the first one opened for it, as it stands at the end of
  the fault) names the root first / in its top three suspects; also at its opening;
- the median time from the fault's start to its first problem (event time);
- problems per day that touch no fault: on injected noise (real anomalies, unrelated to any
  fault), and on nothing injected (the detector's false alarms, recoveries after a fault).

Usage: python benchmarks/problems_quality.py [--days 7] [--quiet-days 3] [--faults-per-day 6]
    [--seeds 1,2,3] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tomllib
from dataclasses import dataclass

import orjson

from stream.core.pipeline import MetricPipeline
from stream.core.problems.correlator import CorrelationConfig, Correlator
from stream.core.problems.topology import topology_from
from stream.dev.fault_sim import START_S, Fault, FaultScenario, topology_toml
from stream.offline.replay import replay
from stream.schemas import Alert, Problem
from stream.settings import Settings

SLACK_S = 600.0


@dataclass
class FaultResult:
    fault: Fault
    raw_alerts: int
    problems: int
    first_at_s: float | None
    top_at_open: list[str]
    top_at_end: list[str]


def run(scenario: FaultScenario) -> tuple[list[FaultResult], tuple[int, int], float]:
    """Each fault's figures, the problems opened on noise and on nothing injected (from
    ``quiet_days`` on), and the days scored."""
    pipeline = MetricPipeline(Settings().anomaly_config())
    lines = (orjson.dumps(e) for e in scenario.events())
    alerts: list[Alert] = [a for a in replay(lines, pipeline) if a.kind == "anomaly"]
    topology = topology_from(tomllib.loads(topology_toml(scenario.mesh)))
    correlator = Correlator(CorrelationConfig(), topology)
    messages: list[Problem] = [p for alert in alerts for p in correlator.add(alert)]
    messages += correlator.advance_all(scenario.end_s)
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
                _opened_s(first) if first is not None else None,
                [s.service for s in first.suspects] if first is not None else [],
                [s.service for s in at_end.suspects] if at_end is not None else [],
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--quiet-days", type=float, default=3.0, help="Days before faults.")
    parser.add_argument("--faults-per-day", type=float, default=6.0)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--json", help="Write the figures as JSON here.")
    args = parser.parse_args(argv)
    report = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        scenario = FaultScenario(
            days=args.days,
            quiet_days=args.quiet_days,
            faults_per_day=args.faults_per_day,
            seed=seed,
        )
        results, stray, days = run(scenario)
        report[str(seed)] = summarize(results, stray, days)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3g}" for k, v in report[str(seed)].items()))
        for r in results:
            print(
                f"  {r.fault.fault_id} root {r.fault.root:<13} {r.fault.kind:<10} "
                f"services {len(r.fault.onsets):2d} raw {r.raw_alerts:3d} problems {r.problems} "
                f"top3 {r.top_at_end[:3]}"
            )
    if args.json:
        with open(args.json, "wb") as out:
            out.write(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
