"""``vigil bench --only kafka``: figures through a real broker (a local one unless
``--bootstrap``): throughput of one detector over a pre-loaded topic, with incident risk on and
off, log lines, then event→alert latency at each of ``--latency-rates`` events/s. The
measuring is :mod:`stream.dev.bench_kafka`'s."""

from __future__ import annotations

import argparse
import asyncio
import statistics
from dataclasses import dataclass

from stream.dev.bench_figures import Figure, Progress
from stream.dev.bench_kafka import LatencyRun, kafka_latency, kafka_log_throughput, kafka_throughput
from stream.dev.broker import LocalBroker, free_port
from stream.kafka.kafka_options import PLAINTEXT_SETTINGS
from stream.settings import Settings

__all__ = ["kafka_figures"]


@dataclass(frozen=True, slots=True)
class _KafkaRuns:
    """What one kafka section measured: throughput pairs (risk on, off), logs, latencies."""

    with_risk: list[float]
    without_risk: list[float]
    log_throughput: float
    latencies: list[LatencyRun]


async def kafka_figures(
    args: argparse.Namespace, settings: Settings, say: Progress
) -> list[Figure]:
    """Throughput over a pre-loaded topic, then latency at each rate (a local broker if none)."""
    broker: LocalBroker | None = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        say("kafka: starting a local broker")
        broker = LocalBroker(port=free_port())
        bootstrap = await asyncio.to_thread(broker.start, owned=True)
    update: dict[str, object] = {"bootstrap_servers": bootstrap}
    if broker is not None:
        update.update(PLAINTEXT_SETTINGS)  # the local broker speaks PLAINTEXT
    settings = settings.model_copy(update=update)
    try:
        runs = await _measure(args, settings, say)
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
    figures = _throughput_figures(args, settings, runs)
    for run in runs.latencies:
        figures += _latency_figures(run, args.latency_seconds)
    return figures


async def _measure(args: argparse.Namespace, settings: Settings, say: Progress) -> _KafkaRuns:
    """Throughput pairs, log throughput, then latency at each of ``args.latency_rates``."""
    # Interleaved pairs, medians quoted: on this shared machine one pair's ratio can be
    # off by ±15 points.
    with_risk, without_risk = [], []
    for i in range(args.kafka_pairs):
        say(f"kafka: throughput over {args.kafka_events} events, pair {i + 1}, risk on")
        with_risk.append(await kafka_throughput(settings, args.kafka_events))
        say(f"kafka: throughput over {args.kafka_events} events, pair {i + 1}, risk off")
        without_risk.append(
            await kafka_throughput(
                settings.model_copy(update={"incident_risk": False}), args.kafka_events
            )
        )
    say(f"kafka: log throughput over {args.kafka_events} log lines")
    log_throughput = await kafka_log_throughput(settings, args.kafka_events)
    latencies = []
    for rate in args.latency_rates:
        say(f"kafka: latency at {rate:g} events/s for {args.latency_seconds:g} s")
        latencies.append(await kafka_latency(settings, rate, args.latency_seconds))
    return _KafkaRuns(with_risk, without_risk, log_throughput, latencies)


def _throughput_figures(
    args: argparse.Namespace, settings: Settings, runs: _KafkaRuns
) -> list[Figure]:
    """Medians of the throughput pairs, incident risk's cost, and the log lines' throughput."""
    with_risk, without_risk = runs.with_risk, runs.without_risk
    throughput = statistics.median(with_risk)
    anomaly_only = statistics.median(without_risk)
    pair_costs = sorted(
        100.0 * (1.0 - on / off) for on, off in zip(with_risk, without_risk, strict=True)
    )
    return [
        Figure(
            "kafka_throughput",
            "kafka end-to-end",
            throughput,
            "events/s",
            f"{args.kafka_events} pre-loaded events of 20 services (one per service every "
            f"10 s of event time), one detector, incident risk "
            f"{'on' if settings.incident_risk else 'off'}; median of {len(with_risk)}; "
            "target ≥ 50,000",
        ),
        Figure(
            "kafka_throughput_anomaly_only",
            "kafka end-to-end, incident risk off",
            anomaly_only,
            "events/s",
            f"the same events: anomaly scoring alone; median of {len(without_risk)}",
        ),
        Figure(
            "kafka_risk_cost",
            "incident risk's cost through Kafka",
            100.0 * (1.0 - throughput / anomaly_only),
            "% slower",
            f"medians' ratio; pairs {' / '.join(f'{c:.0f}' for c in pair_costs)} %; "
            f"a risk vector per {settings.incident_step_s / 10.0:g} events; target < 30%",
        ),
        Figure(
            "kafka_log_throughput",
            "kafka log lines end-to-end",
            runs.log_throughput,
            "lines/s",
            f"{args.kafka_events} pre-loaded LogEvents of 20 services: templates, windows, alerts",
        ),
    ]


def _latency_figures(run: LatencyRun, seconds: float) -> list[Figure]:
    rate = f"{run.rate:g}"
    note = f"{len(run.latencies_ms)} alerts over {seconds:g} s"
    target = "; target < 50 ms at 10,000 events/s" if run.rate == 10_000 else ""
    broker_note = "broker clock: event appended → alert appended"
    return [
        Figure(
            f"latency_{rate}_achieved_rate",
            f"achieved rate (asked {rate}/s)",
            run.achieved_rate,
            "events/s",
            f"{run.produced} events produced, {run.detector.get('scored', 0):.0f} scored",
        ),
        Figure(
            f"latency_{rate}_mean_batch",
            f"detector mean batch @ {rate}/s",
            run.mean_batch,
            "events",
            "records per fetch (from its /metrics)",
        ),
        Figure(
            f"latency_{rate}_p50", f"event→alert p50 @ {rate}/s", run.percentile(50), "ms", note
        ),
        Figure(
            f"latency_{rate}_p99",
            f"event→alert p99 @ {rate}/s",
            run.percentile(99),
            "ms",
            note + target,
        ),
        Figure(f"latency_{rate}_max", f"event→alert max @ {rate}/s", max(run.latencies_ms), "ms"),
        Figure(
            f"latency_{rate}_broker_p50",
            f"event→alert p50 @ {rate}/s, broker",
            run.percentile(50, broker=True),
            "ms",
            broker_note,
        ),
        Figure(
            f"latency_{rate}_broker_p99",
            f"event→alert p99 @ {rate}/s, broker",
            run.percentile(99, broker=True),
            "ms",
            broker_note + target,
        ),
        Figure(
            f"latency_{rate}_broker_max",
            f"event→alert max @ {rate}/s, broker",
            max(run.broker_latencies_ms, default=float("nan")),
            "ms",
        ),
    ]
