"""Incident-risk alerts as an on-call team would count them, strategy by strategy.

For each seed, simulates what ``vigil simulate --incidents --services 12 --interval-s 30
--count 103680 --sim-seed SEED --jsonl F`` writes (12 services, 3 days, incidents mostly
preceded by precursors, labels minutes late) and replays it as ``vigil evaluate F`` does,
once per configuration: the default (``episode_budget``), the other strategies, and the
default without each of its mechanisms (ablations). Prints, per configuration and seed,
firing risk alerts per service-day, precision (alerts followed by an incident opening within
the horizon), the share of incidents with precursors warned ahead, the median lead, and the
prequential PR-AUC (see ``models/incident/alert_quality.py``).

Seeds 11 and 12 were used to choose the mechanisms and the default budget; 21, 22 and 23
were not (report on those).

``--score DATA ALERTS`` scores an Alert JSONL (``vigil replay DATA --out ALERTS``, from any
version of Vigil: an alert without an ``episode_id`` is a point episode) against DATA's
incidents instead: how the "before" figures were measured.

Run: ``.venv/bin/python benchmarks/risk_alerts.py [--seeds 21 22 23] [--only default,...]``
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from models.incident import RiskConfig
from models.incident.alert_quality import IncidentTruth, RiskEpisodeSpan, risk_alert_quality
from stream.core.incident_risk import IncidentRiskPipeline
from stream.dev.incident_sim import IncidentSimulator
from stream.offline.evaluate_risk import evaluate_risk
from stream.settings import Settings

SERVICES = 12
INTERVAL_S = 30.0
DAYS = 3.0


def _config(**changes: Any) -> Callable[[RiskConfig], RiskConfig]:
    return lambda config: dataclasses.replace(config, **changes)


CONFIGS: dict[str, tuple[Callable[[RiskConfig], RiskConfig], dict[str, Any]]] = {
    "default": (_config(), {}),
    "recall_at_least": (_config(strategy="recall_at_least"), {}),
    "max_f1": (_config(strategy="max_f1"), {}),
    "alert_budget": (_config(strategy="alert_budget"), {}),
    "no_in_progress_gate": (_config(in_progress_gate=False), {}),
    "open_steps_1": (_config(open_steps=1), {}),
    "resolve_steps_1": (_config(resolve_steps=1), {}),
    "no_smoothed_z": (_config(), {"smooth_s": 0.0}),
}
"""Name → (how it changes the default RiskConfig, IncidentRiskPipeline arguments)."""


def simulated_lines(seed: int) -> list[bytes]:
    """The lines ``vigil simulate --incidents ... --jsonl`` writes for this seed."""
    sim = IncidentSimulator(services=SERVICES, interval_s=INTERVAL_S, seed=seed)
    return [item.to_bytes() for item in sim.stream(DAYS * 86_400.0)]


def run(name: str, seed: int) -> dict[str, Any]:
    """One configuration on one seed: the risk-alert figures and the prequential PR-AUC."""
    settings = Settings()
    change, pipeline_args = CONFIGS[name]
    pipeline = IncidentRiskPipeline(
        change(settings.risk_config()),
        step_s=settings.incident_step_s,
        group_pattern=settings.incident_group_pattern,
        **pipeline_args,
    )
    evaluation = evaluate_risk(simulated_lines(seed), settings, pipeline)
    figures = evaluation.trace.quality(pipeline.config.horizon_s).as_dict()
    figures["pr_auc"] = pipeline.summaries()["all"]["pr_auc"]
    return {"config": name, "seed": seed, **figures}


def score(data: Path, alerts: Path, horizon_s: float = 900.0) -> dict[str, Any]:
    """An Alert JSONL's risk alerts against the incidents of the data file they came from."""
    opened: dict[str, tuple[str, float, bool | None]] = {}
    resolved: dict[str, float] = {}
    spans: dict[str, list[float]] = {}
    with data.open("rb") as lines:
        for line in lines:
            item = orjson.loads(line)
            if "incident_id" in item:
                at = event_seconds(item["ts"])
                if item["status"] == "opened":
                    precursor = item["precursor"] is not None if "precursor" in item else None
                    opened[item["incident_id"]] = (item["service"], at, precursor)
                else:
                    resolved[item["incident_id"]] = at
            elif "metrics" in item:
                at = event_seconds(item["ts"])
                first_last = spans.setdefault(item["service"], [at, at])
                first_last[0], first_last[1] = min(first_last[0], at), max(first_last[1], at)
    episodes: dict[str, list[Any]] = {}
    points: list[RiskEpisodeSpan] = []
    with alerts.open("rb") as lines:
        for line in lines:
            alert = orjson.loads(line)
            if alert["kind"] != "incident_risk":
                continue
            at = event_seconds(alert["event_ts"])
            episode_id = alert.get("episode_id")
            if episode_id is None:  # before episodes: every alert is one
                points.append(RiskEpisodeSpan(alert["service"], at, at))
            elif alert.get("status", "firing") == "firing":
                episodes[episode_id] = [alert["service"], at, None]
            elif episode_id in episodes:
                episodes[episode_id][2] = at
    service_days = sum(last - first for first, last in spans.values()) / 86_400.0
    quality = risk_alert_quality(
        points + [RiskEpisodeSpan(*fields) for fields in episodes.values()],
        [
            IncidentTruth(service, incident_id, at, resolved.get(incident_id), precursor)
            for incident_id, (service, at, precursor) in opened.items()
        ],
        horizon_s=horizon_s,
        service_days=service_days,
    )
    return quality.as_dict()


def event_seconds(ts: str | float) -> float:
    if isinstance(ts, int | float):
        return float(ts) / 1000.0
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _table(rows: list[dict[str, Any]]) -> Iterator[str]:
    yield (
        "| configuration | seed | alerts per service-day | precision | "
        "precursor incidents warned ahead | median lead | PR-AUC |"
    )
    yield "|---|---|---|---|---|---|---|"
    for row in rows:
        yield f"| {row['config']} | {row['seed']} | {quality_cells(row)} | {row['pr_auc']:.3f} |"


def quality_cells(figures: dict[str, Any]) -> str:
    """A run's alerts per service-day, precision, warned ahead and median lead, as table
    cells."""
    lead = figures["median_lead_s"]
    return (
        f"{figures['alerts_per_service_day']:.2f} "
        f"| {figures['precision'] or 0.0:.2f} ({figures['true_alerts']}/{figures['alerts']}) "
        f"| {figures['warned_share'] or 0.0:.2f} "
        f"({figures['warned_ahead']}/{figures['incidents_with_precursors']}) "
        f"| {'-' if lead is None else f'{lead / 60:.1f} min'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[21, 22, 23])
    parser.add_argument("--only", help=f"comma-separated among: {', '.join(CONFIGS)}")
    parser.add_argument("--jobs", type=int, default=2, help="Replays run at once.")
    parser.add_argument("--json", action="store_true", help="One JSON object per run.")
    parser.add_argument("--score", nargs=2, type=Path, metavar=("DATA", "ALERTS"))
    args = parser.parse_args(argv)
    if args.score is not None:
        print(orjson.dumps(score(*args.score), option=orjson.OPT_INDENT_2).decode())
        return 0
    names = args.only.split(",") if args.only else list(CONFIGS)
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configurations: {', '.join(unknown)}")
    jobs = [(name, seed) for name in names for seed in args.seeds]
    print_runs(run, jobs, workers=args.jobs, as_json=args.json, table=_table)
    return 0


def print_runs(
    run: Callable[..., dict[str, Any]],
    jobs: list[tuple[Any, ...]],
    *,
    workers: int,
    as_json: bool,
    table: Callable[[list[dict[str, Any]]], Iterator[str]],
) -> None:
    """``run(*job)`` for every job, ``workers`` at once; one JSON object per run, or a
    table of them."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(run, *zip(*jobs, strict=True)))
    if as_json:
        for row in rows:
            print(orjson.dumps(row).decode())
    else:
        print("\n".join(table(rows)))


if __name__ == "__main__":
    sys.exit(main())
