"""``vigil evaluate --problems``: problems and root causes on a fault scenario, through Kafka.

Prints, per seed, the figures issue 21 sets targets for (notifications per fault against raw
alerts, AC@1, AC@3, median time from fault to notification, the share of faults in a
maintenance window whose problems were silenced, and problems silenced outside one), and
writes them as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

import orjson

from stream.dev.broker import LocalBroker, free_port
from stream.dev.fault_sim import FaultScenario
from stream.dev.problems_eval import FaultResult, score, summarize
from stream.dev.problems_run import ScenarioRun, maintenance_silences, run_scenario
from stream.kafka.kafka_options import PLAINTEXT_SETTINGS
from stream.schemas import Problem, Silence
from stream.settings import Settings

__all__ = ["run_problems_evaluation", "silencing"]


def silencing(
    results: list[FaultResult], run: ScenarioRun, silences: list[Silence]
) -> dict[str, float]:
    """How the maintenance windows did: the share of faults in one (and detected) whose every
    problem was silenced when it opened, the problems of other faults silenced (wrongly), and
    the notifications (problems opened, not silenced) per fault outside the windows."""
    planned = {s.silence_id.removeprefix("maintenance-") for s in silences}
    opened: dict[str, Problem] = {p.problem_id: p for p in run.problems if p.status == "opened"}
    right = wrong = notified = 0
    for result in results:
        ids = [i for i in result.problem_ids if i in opened]
        if result.fault.fault_id in planned:
            right += bool(ids) and all(opened[i].silenced for i in ids)
        else:
            wrong += sum(opened[i].silenced for i in ids)
            notified += sum(not opened[i].silenced for i in ids)
    in_windows = sum(r.fault.fault_id in planned and bool(r.problem_ids) for r in results)
    outside = len(results) - sum(r.fault.fault_id in planned for r in results)
    return {
        "maintenance_faults": float(len(planned)),
        "maintenance_faults_detected": float(in_windows),
        "silenced_correctly": right / in_windows if in_windows else float("nan"),
        "silenced_wrongly": float(wrong),
        "notified_per_fault_outside_windows": notified / outside if outside else float("nan"),
    }


async def _evaluate(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    broker: LocalBroker | None = None
    if args.bootstrap is None:
        broker = LocalBroker(port=free_port())
        bootstrap = await asyncio.to_thread(broker.start, owned=True)
        settings = settings.model_copy(
            update={"bootstrap_servers": bootstrap, **PLAINTEXT_SETTINGS}
        )
    else:
        settings = settings.model_copy(update={"bootstrap_servers": args.bootstrap})
    report: dict[str, Any] = {}
    try:
        for seed in args.seeds:
            scenario = FaultScenario(
                days=args.days,
                quiet_days=args.quiet_days,
                faults_per_day=args.faults_per_day,
                seed=seed,
                log_lines_per_s=args.log_lines_per_s,
            )
            silences = maintenance_silences(scenario)
            run = await run_scenario(settings, scenario, silences)
            results, stray, days = score(scenario, run.alerts, run.problems, settings.log_window_s)
            figures = summarize(results, stray, days) | silencing(results, run, silences)
            figures["events"] = float(run.events)
            figures["seconds"] = run.seconds
            report[str(seed)] = figures
            if not args.json:
                print(f"seed {seed}: " + _line(figures), flush=True)
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
    if len(report) > 1:
        report["median"] = {
            key: statistics.median(r[key] for r in report.values())
            for key in next(iter(report.values()))
        }
        if not args.json:
            print("median: " + _line(report["median"]), flush=True)
    return report


def _line(figures: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in figures.items())


def run_problems_evaluation(args: argparse.Namespace, settings: Settings) -> int:
    """``vigil evaluate --problems``: run and print a line per seed (``--json``: the report
    as JSON); ``--out-dir``: also write it as ``problems.json`` there."""
    report = asyncio.run(_evaluate(args, settings))
    text = orjson.dumps(report, option=orjson.OPT_INDENT_2)
    if args.json:
        print(text.decode())
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "problems.json").write_bytes(text)
    return 0
