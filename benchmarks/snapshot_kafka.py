"""Detector throughput through Kafka with and without snapshots, at 1,000 services.

One in-process detector (incident risk off, to isolate snapshots) drains a pre-loaded topic
of 300,000 events of 1,000 services, runs with snapshots every ``--interval-s`` and without
them interleaved, medians quoted. Every partition is snapshotted once on its first batch,
then every ``--interval-s``: short runs at short intervals overstate the default's cost.

Run with a broker: ``.venv/bin/python benchmarks/snapshot_kafka.py --bootstrap
127.0.0.1:19092 [--pairs 3] [--interval-s 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from stream.dev.bench_kafka import _bench_topics, _drain, _preload
from stream.dev.simulate import MetricSimulator
from stream.settings import Settings, load_settings
from stream.telemetry import configure_logging

EVENTS = 300_000


async def _rate(settings: Settings) -> float:
    run = _bench_topics(settings, "bench.snap").model_copy(update={"http_port": 0})
    sim = MetricSimulator(services=1000, anomaly_rate=0.005, seed=3, clean_start=100)
    await _preload(run, run.topic_metrics, sim.events(EVENTS))
    return await _drain(run, EVENTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--interval-s", type=float, default=5.0)
    args = parser.parse_args()
    configure_logging("WARNING", "json")
    base = load_settings({"bootstrap_servers": args.bootstrap, "incident_risk": False})
    with_snapshots, without = [], []
    for _ in range(args.pairs):
        update = {"snapshot_interval_s": args.interval_s}
        with_snapshots.append(asyncio.run(_rate(base.model_copy(update=update))))
        without.append(asyncio.run(_rate(base.model_copy(update={"snapshots": False}))))
    on, off = statistics.median(with_snapshots), statistics.median(without)
    print(f"with snapshots every {args.interval_s:g} s: {[round(r) for r in with_snapshots]}")
    print(f"without: {[round(r) for r in without]}")
    print(f"medians {on:,.0f} vs {off:,.0f} events/s: {100 * (1 - on / off):.1f}% slower")


if __name__ == "__main__":
    main()
