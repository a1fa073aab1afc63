"""Problems and root causes on a service mesh with faults that spread (issue 21's targets),
offline: the detector's pipeline and one correlator over ``stream.dev.fault_sim``'s scenario,
scored by ``stream.dev.problems_eval`` (its docstring says what each figure counts).
``vigil evaluate --problems`` runs the same scenario through Kafka.

Usage: python benchmarks/problems_quality.py [--days 7] [--quiet-days 3] [--faults-per-day 6]
    [--seeds 1,2,3] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys

import orjson

from stream.dev.fault_sim import FaultScenario
from stream.dev.problems_eval import FaultResult, score, summarize
from stream.dev.problems_run import offline_problems


def run(scenario: FaultScenario) -> tuple[list[FaultResult], tuple[int, int], float]:
    """Each fault's figures, the problems opened on noise and on nothing injected (from
    ``quiet_days`` on), and the days scored: offline, the detector's pipeline and one
    correlator."""
    offline = offline_problems(scenario)
    return score(scenario, offline.alerts, offline.problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--quiet-days", type=float, default=3.0, help="Days before faults.")
    parser.add_argument("--faults-per-day", type=float, default=6.0)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--log-lines-per-s", type=float, default=0.0, help="0: metrics only.")
    parser.add_argument("--json", help="Write the figures as JSON here.")
    args = parser.parse_args(argv)
    report = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        scenario = FaultScenario(
            days=args.days,
            quiet_days=args.quiet_days,
            faults_per_day=args.faults_per_day,
            seed=seed,
            log_lines_per_s=args.log_lines_per_s,
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
