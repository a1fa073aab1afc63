"""What incident-risk state per partition costs in risk-alert quality: the simulated 3 days of
``benchmarks/risk_alerts.py`` replayed with the services on 6 partitions (Kafka's default
partitioner, murmur2 of the service name), pooled (``VIGIL_INCIDENT_STATE=detector``, one
model for all) and per partition (``partition``, a model per partition and group), and per
partition with everything on one partition (what ``vigil replay`` does).

Prints, per run and seed, the risk-alert figures over the 3 days and over days 2-3, when the
first risk alert could come (the first finite threshold, hours into the data) for the pooled
model and for each partition's, and how many incidents each partition's services had.

Run: ``.venv/bin/python benchmarks/risk_partitions.py [--seeds 21 22 23] [--partitions 6]``
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

from benchmarks.risk_alerts import (
    event_seconds,
    print_runs,
    quality_cells,
    score,
    simulated_lines,
)
from stream.codec import DecodeError, decode, decode_metric
from stream.core.incident_risk import IncidentRiskPipeline
from stream.core.pipeline import MetricPipeline
from stream.schemas import Alert, Evidence, IncidentEvent, MetricSample
from stream.settings import Settings

BATCH = 2000
DAY_S = 86_400.0


def partition_of(service: str, partitions: int) -> int:
    """Kafka's default partitioner for a key (Java's, aiokafka's)."""
    return int(murmur2(service.encode()) & 0x7FFFFFFF) % partitions


def run(mode: str, seed: int, partitions: int) -> dict[str, Any]:
    """One seed replayed with the services on ``partitions`` partitions."""
    settings = Settings()
    lines = simulated_lines(seed)
    state = "detector" if mode == "pooled" else "partition"
    risk = IncidentRiskPipeline(
        settings.risk_config(),
        step_s=settings.incident_step_s,
        group_pattern=settings.incident_group_pattern,
        state=state,  # type: ignore[arg-type]
    )
    metrics = MetricPipeline(settings.anomaly_config())
    count = 1 if mode == "one_partition" else partitions
    ready: dict[int, float] = {}
    start = [math.inf]

    def predicted(service: str, ts_s: float, p: float, threshold: float) -> None:
        start[0] = min(start[0], ts_s)
        lane = partition_of(service, count) if state == "partition" else -1
        if math.isfinite(threshold) and lane not in ready:
            ready[lane] = ts_s

    risk.on_predicted = predicted
    alerts: list[Alert] = []
    events: list[MetricSample] = []
    where: list[Evidence] = []
    offsets: dict[int, int] = {}
    incidents: dict[int, int] = {}

    def flush() -> None:
        if events:
            located = list(where)
            outcome = metrics.process_batch(events, located.__getitem__)
            alerts.extend(risk.on_metrics(events, outcome, located.__getitem__).alerts)
            risk.advance()
            events.clear()
            where.clear()

    for line in lines:
        event = decode_metric(line)
        if isinstance(event, DecodeError):
            label = decode(line, IncidentEvent)
            assert isinstance(label, IncidentEvent)
            flush()
            risk.on_incident(label)
            if label.status == "opened":
                lane = partition_of(label.service, count)
                incidents[lane] = incidents.get(lane, 0) + 1
            continue
        partition = partition_of(event.service, count)
        offsets[partition] = offsets.get(partition, -1) + 1
        events.append(event)
        where.append(Evidence(topic="metrics", partition=partition, offset=offsets[partition]))
        if len(events) >= BATCH:
            flush()
    flush()
    with tempfile.TemporaryDirectory() as folder:
        data, out = Path(folder) / "data.jsonl", Path(folder) / "alerts.jsonl"
        data.write_bytes(b"\n".join(lines) + b"\n")
        out.write_bytes(b"".join(a.model_dump_json().encode() + b"\n" for a in alerts))
        whole = score(data, out)
        later = start[0] + DAY_S
        data.write_bytes(b"".join(line + b"\n" for line in lines if _at(line) >= later))
        out.write_bytes(
            b"".join(
                a.model_dump_json().encode() + b"\n"
                for a in alerts
                if a.event_ts.timestamp() >= later
            )
        )
        days_2_3 = score(data, out)
    return {
        "mode": mode,
        "seed": seed,
        "whole": whole,
        "days_2_3": days_2_3,
        "ready_h": {str(k): round((t - start[0]) / 3600, 1) for k, t in sorted(ready.items())},
        "incidents": {str(k): n for k, n in sorted(incidents.items())},
    }


def _at(line: bytes) -> float:
    return event_seconds(orjson.loads(line)["ts"])


def _table(rows: list[dict[str, Any]]) -> Iterator[str]:
    yield (
        "| run | seed | alerts per service-day | precision | warned ahead | median lead "
        "| days 2-3: per service-day, precision, warned | first threshold (h) |"
    )
    yield "|---|---|---|---|---|---|---|---|"
    for row in rows:
        d = row["days_2_3"]
        yield (
            f"| {row['mode']} | {row['seed']} | {quality_cells(row['whole'])} "
            f"| {d['alerts_per_service_day']:.2f}, {d['precision'] or 0.0:.2f}, "
            f"{d['warned_share'] or 0.0:.2f} "
            f"| {' '.join(f'{v:g}' for v in row['ready_h'].values())} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[21, 22, 23])
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--modes", default="pooled,per_partition,one_partition")
    parser.add_argument("--jobs", type=int, default=2, help="Replays run at once.")
    parser.add_argument("--json", action="store_true", help="One JSON object per run.")
    args = parser.parse_args(argv)
    jobs = [(m, s, args.partitions) for m in args.modes.split(",") for s in args.seeds]
    print_runs(run, jobs, workers=args.jobs, as_json=args.json, table=_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
