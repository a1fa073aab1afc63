"""``vigil simulate``: the simulators' streams onto Kafka, paced, or into a JSONL file.

Metric events with injected anomalies (:class:`~stream.dev.simulate.MetricSimulator`), or with
``--incidents`` services whose incidents follow precursors
(:class:`~stream.dev.incident_sim.IncidentSimulator`) with their log lines.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream.dev.incident_sim import IncidentRecord, IncidentSimulator
from stream.dev.simulate import LogLine, MetricSimulator, Publishable, SimulatedEvent, publish
from stream.schemas import LogEvent
from stream.settings import Settings

__all__ = ["run_simulate"]


_JSONL_COUNT = 20_000
"""Events ``--jsonl`` writes without ``--count`` (a file needs an end)."""
_UNTIL_STOPPED = 2**62


async def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    """``vigil simulate``: publish ``--count`` events at ``--rate``, or until stopped when
    ``--count`` is 0 or omitted. SIGTERM or SIGINT stops it early and cleanly: what was
    produced is flushed and acknowledged, the counts sent printed, exit status 0.

    With ``--incidents``, services whose incidents follow precursors (see
    :mod:`stream.dev.incident_sim`), their IncidentEvents on the incidents topic, and their log
    lines on the logs topic, in event time that keeps pace with the samples'. With
    ``--jsonl``, the stream goes to a file for ``vigil replay`` / ``vigil evaluate`` instead
    of Kafka.
    """
    from stream.detector.detector import topic_specs
    from stream.kafka.kafka_options import kafka_options
    from stream.kafka.topics import ensure_topics

    if args.count is not None and args.count < 0:
        print("vigil simulate: --count must be 0 (until stopped) or more", file=sys.stderr)
        return 2
    if args.jsonl is not None:
        return _write_jsonl(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.create_topics:
        await ensure_topics(
            settings.bootstrap_servers,
            topic_specs(settings),
            kafka_options=kafka_options(settings),
        )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-simulator",
        linger_ms=5,
        **kafka_options(settings),
    )
    await producer.start()
    try:
        publishing = _publish_incidents if args.incidents else _publish_anomalies
        summary = await publishing(args, settings, producer, stop)
    finally:
        await producer.stop()
    print(orjson.dumps(summary).decode(), flush=True)
    return 0


async def _publish_anomalies(
    args: argparse.Namespace, settings: Settings, producer: AIOKafkaProducer, stop: asyncio.Event
) -> dict[str, Any]:
    """Metric events with injected anomalies; their labels to ``--labels``."""
    sim = MetricSimulator(
        services=args.services,
        anomaly_rate=args.anomaly_rate,
        interval_s=args.interval_s,
        seed=args.sim_seed,
        start=_live_start(args),
    )
    anomalies = 0
    # Written as they are injected: a run until stopped keeps none of them in memory.
    sink = args.labels.open("wb") if args.labels is not None else None

    def tracked(events: Iterator[SimulatedEvent]) -> Iterator[SimulatedEvent]:
        nonlocal anomalies
        for event in events:
            a = event.anomaly
            if a is not None:
                anomalies += 1
                if sink is not None:
                    sink.write(
                        orjson.dumps({"service": a.service, "ts": a.ts, "metrics": a.metrics})
                        + b"\n"
                    )
            yield event

    try:
        sent = await publish(
            producer,
            settings.topic_metrics,
            tracked(sim.events(args.count or _UNTIL_STOPPED)),
            rate=args.rate or None,
            stop=stop,
        )
    finally:
        if sink is not None:
            sink.close()
    return {"sent": sent, "anomalies": anomalies, "topic": settings.topic_metrics}


async def _publish_incidents(
    args: argparse.Namespace, settings: Settings, producer: AIOKafkaProducer, stop: asyncio.Event
) -> dict[str, Any]:
    """Samples and IncidentEvents of services whose incidents follow precursors, and the
    services' log lines, both paced so that their event times keep together."""
    from stream.dev.log_simulate import endless_log_events, log_simulator, paced_log_rate

    sim = IncidentSimulator(
        services=args.services,
        interval_s=args.interval_s,
        seed=args.sim_seed,
        start=_live_start(args),
    )
    per_s = args.log_lines_per_s
    items: Iterator[Publishable]
    lines: Iterator[LogEvent] = iter(())
    if args.count:
        duration_s = math.ceil(args.count / args.services) * args.interval_s
        items = sim.stream(duration_s)
        if per_s > 0:
            logs = log_simulator(
                sim.names,
                lines_per_s=per_s,
                seed=args.sim_seed,
                start=sim.start,
                horizon_s=duration_s,
            )
            lines = logs.events(duration_s)
    else:
        items = sim.endless()
        lines = endless_log_events(
            sim.names, lines_per_s=per_s, seed=args.sim_seed, start=sim.start
        )
    incidents = 0

    def topic_of(item: Publishable) -> str:
        nonlocal incidents
        if isinstance(item, IncidentRecord):
            incidents += 1
            return settings.topic_incidents
        return settings.topic_metrics

    rate = args.rate or None
    log_rate = paced_log_rate(rate, interval_s=args.interval_s, lines_per_s=per_s)
    async with asyncio.TaskGroup() as tasks:
        metrics = tasks.create_task(publish(producer, topic_of, items, rate=rate, stop=stop))
        logs_sent = tasks.create_task(
            publish(producer, settings.topic_logs, map(LogLine, lines), rate=log_rate, stop=stop)
        )
    return {
        "sent": metrics.result(),
        "incident_events": incidents,
        "log_lines": logs_sent.result(),
        "topics": [settings.topic_metrics, settings.topic_incidents, settings.topic_logs],
    }


def _live_start(args: argparse.Namespace) -> datetime:
    """The event time of the first sample sent to Kafka: ``--start``, else the current
    minute (a detector withholds the alerts of events older than ``VIGIL_MAX_ALERT_AGE_S``)."""
    start: datetime | None = getattr(args, "start", None)
    return start if start is not None else datetime.now(UTC).replace(second=0, microsecond=0)


def _write_jsonl(args: argparse.Namespace) -> int:
    """``vigil simulate --jsonl FILE``: the stream as a replay file (``--count`` events, or
    20,000; never until stopped)."""
    count = _JSONL_COUNT if args.count is None else args.count
    if count == 0:
        print("vigil simulate: --jsonl needs a --count (a file has an end)", file=sys.stderr)
        return 2
    items: Iterator[Publishable]
    given = getattr(args, "start", None)
    start = {"start": given} if given is not None else {}  # else the simulators' fixed day
    if args.incidents:
        sim = IncidentSimulator(
            services=args.services, interval_s=args.interval_s, seed=args.sim_seed, **start
        )
        items = sim.stream(math.ceil(count / args.services) * args.interval_s)
    else:
        metric_sim = MetricSimulator(
            services=args.services,
            anomaly_rate=args.anomaly_rate,
            interval_s=args.interval_s,
            seed=args.sim_seed,
            **start,
        )
        items = iter(metric_sim.events(count))
    lines = incidents = 0
    with args.jsonl.open("wb") as out:
        for item in items:
            out.write(item.to_bytes() + b"\n")
            lines += 1
            incidents += isinstance(item, IncidentRecord)
    summary = {"lines": lines, "incident_events": incidents, "file": str(args.jsonl)}
    print(orjson.dumps(summary).decode())
    return 0
