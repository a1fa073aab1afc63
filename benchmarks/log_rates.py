"""Log detection quality on the log simulator: false alerts on normal streams, incidents caught.

1. ``normal``: ``--seeds`` streams of ``--services`` services at ``--rate`` lines/s for
   ``--hours`` hours of event time, no incident: alerts per detector after the warm-up, per
   service-day.
2. ``incidents``: the same streams with an incident every ``--every`` seconds from the first
   hour (they cycle through the kinds and the services, so they start at every phase of a
   window): per kind, how many were caught (an alert on the service from the incident's first
   window to two windows after its end), how many within 2 windows, by which detector first,
   their firing alerts, and for template bursts whether the first alert lists the burst
   template first; firing alerts outside incidents are false (an episode's resolved alert is
   not counted as an alert anywhere).

Every detector is counted by its model name, so any version of ``LogPipeline`` runs here: the
same streams measure before and after a change (put the older ``stream/core/logs/pipeline.py`` on
``PYTHONPATH`` with this tree's simulator).

Usage: python benchmarks/log_rates.py [--seeds 3] [--services 4] [--hours 8] [--rate 2]
    [--timeout-per-min 4] [--factor 10] [--budget B] [--json]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson

from stream.core.logs.config import LogConfig
from stream.core.logs.pipeline import LogPipeline
from stream.core.logs.templates import ServiceTemplates
from stream.dev.log_simulate import LogIncident, LogSimulator
from stream.schemas import Alert, Evidence

WINDOW_S = 30.0
WARMUP_S = 100 * WINDOW_S  # the window models' default warm-up
START = datetime(2026, 11, 23, tzinfo=UTC)
KINDS = ("error_burst", "new_stack_traces", "quiet", "template_burst")
DURATIONS = {"error_burst": 120.0, "new_stack_traces": 120.0, "quiet": 300.0}
BURST_S = 240.0
_EVIDENCE = Evidence(topic="sim", partition=0, offset=0)


def _incidents(services: list[str], hours: float, every_s: float) -> list[LogIncident]:
    out = []
    t, n = 3600.0 + 7.0, 0
    while t + 600.0 < hours * 3600.0:
        kind = KINDS[n % len(KINDS)]
        service = services[(n // len(KINDS) + n) % len(services)]
        out.append(LogIncident(service, kind, t, DURATIONS.get(kind, BURST_S)))  # type: ignore[arg-type]
        t, n = t + every_s, n + 1
    return out


def _run(args: argparse.Namespace, seed: int, incidents: list[LogIncident]) -> dict[str, Any]:
    services = [f"svc-{i}" for i in range(args.services)]
    sim = LogSimulator(
        services,
        lines_per_s=args.rate,
        incidents=incidents,
        seed=seed,
        start=START,
        disorder_s=2.0,
        timeout_per_min=args.timeout_per_min,
        burst_factor=args.factor,
    )
    events = list(sim.events(args.hours * 3600.0))
    config = None
    if args.budget is not None:  # (older pipelines have no such setting: leave it out there)
        config = LogConfig(rate_false_alerts_per_day=args.budget)
    pipeline = LogPipeline(config, clock=lambda: START)
    alerts: list[Alert] = []
    windows = 0
    for i in range(0, len(events), 2000):
        outcome = pipeline.process_batch(events[i : i + 2000], lambda _: _EVIDENCE)
        alerts += outcome.alerts
        windows += sum(1 for w in outcome.windows if not w.warming_up)
    # Template ids are a hash of the service and the first line's template: the same here.
    timeout_ids = {
        ServiceTemplates(s).add("upstream timeout after 5s calling payments")[0].template_id
        for s in services
    }
    return {"alerts": alerts, "windows": windows, "lines": len(events), "timeout": timeout_ids}


def _offset(alert: Alert) -> float:
    return (alert.event_ts - START).total_seconds()


def normal(args: argparse.Namespace) -> dict[str, Any]:
    by_model: Counter[str] = Counter()
    windows = lines = 0
    for seed in range(1, args.seeds + 1):
        run = _run(args, seed, [])
        by_model.update(
            a.model.name for a in run["alerts"] if _offset(a) >= WARMUP_S and a.status == "firing"
        )
        windows += run["windows"]
        lines += run["lines"]
    service_days = args.seeds * args.services * (args.hours * 3600.0 - WARMUP_S) / 86_400.0
    return {
        "lines": lines,
        "windows_after_warmup": windows,
        "service_days": round(service_days, 2),
        "alerts": dict(sorted(by_model.items())),
        "alerts_per_service_day": {
            m: round(c / service_days, 2) for m, c in sorted(by_model.items())
        },
    }


def incidents(args: argparse.Namespace) -> dict[str, Any]:
    services = [f"svc-{i}" for i in range(args.services)]
    per_kind: dict[str, Counter[str]] = defaultdict(Counter)
    delays: dict[str, list[int]] = defaultdict(list)
    false: Counter[str] = Counter()
    windows = 0
    for seed in range(1, args.seeds + 1):
        planned = _incidents(services, args.hours, args.every)
        run = _run(args, seed, planned)
        windows += run["windows"]
        used: set[str] = set()
        for incident in planned:
            first = incident.start_s // WINDOW_S * WINDOW_S
            last = (incident.start_s + incident.duration_s) // WINDOW_S * WINDOW_S + WINDOW_S
            mine = sorted(
                (a for a in run["alerts"] if a.service == incident.service),
                key=lambda a: (_offset(a), a.model.name),
            )
            mine = [a for a in mine if first <= _offset(a) <= last + WINDOW_S]
            used.update(a.alert_id for a in mine)
            counts = per_kind[incident.kind]
            counts["injected"] += 1
            if not mine:
                continue
            counts["caught"] += 1
            counts["firing_alerts"] += sum(a.status == "firing" for a in mine)
            delay = int((_offset(mine[0]) - first) // WINDOW_S)
            delays[incident.kind].append(delay)
            counts["within_2_windows"] += delay <= 1
            counts[f"first_by:{mine[0].model.name}"] += 1
            if incident.kind == "template_burst":
                named = mine[0].explanation.top_templates
                counts["burst_template_named_first"] += bool(
                    named and named[0].template_id in run["timeout"]
                )
        false.update(
            a.model.name
            for a in run["alerts"]
            if a.alert_id not in used
            and a.status == "firing"  # an episode's resolved alert is not another alert
            and _offset(a) >= WARMUP_S
            and not any(
                i.service == a.service
                and i.start_s - WINDOW_S < _offset(a) < i.start_s + i.duration_s + 2 * WINDOW_S
                for i in planned
            )
        )
    return {
        "kinds": {
            kind: {**dict(sorted(c.items())), "delays_windows": sorted(delays[kind])}
            for kind, c in sorted(per_kind.items())
        },
        "windows_after_warmup": windows,
        "false_alerts": dict(sorted(false.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--services", type=int, default=4)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=2.0, help="lines/s per service")
    parser.add_argument("--timeout-per-min", type=float, default=4.0)
    parser.add_argument("--factor", type=float, default=10.0, help="template burst factor")
    parser.add_argument("--every", type=float, default=907.0, help="s between incidents")
    parser.add_argument("--budget", type=float, help="rate_false_alerts_per_day (default: its)")
    parser.add_argument("--only", choices=("normal", "incidents"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report: dict[str, Any] = {"args": vars(args)}
    if args.only != "incidents":
        report["normal"] = normal(args)
    if args.only != "normal":
        report["incidents"] = incidents(args)
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for section, values in report.items():
            print(section)
            for key, value in values.items():
                print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
