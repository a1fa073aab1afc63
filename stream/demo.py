"""``vigil demo``: a local Kafka broker, the simulated log-processor and the detector, live.

The simulated log-processor publishes metric samples and log lines of the same services, in
event time that runs faster than the wall clock (``--rate`` metric events/s at one sample per
service every 10 s of event time; log lines keep pace). Metric anomalies are injected at
random; log incidents (error bursts, new stack traces, a service going quiet) one every 30
minutes of event time after the log models' warm-up.

Alerts are read back from the alerts topic, as an alerting system would see them, and matched
against what the simulator injected, so the summary says what was caught and missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.broker import BrokerError, LocalBroker
from stream.consumer import Detector, topic_specs
from stream.kafka_options import PLAINTEXT_SETTINGS, kafka_options
from stream.logs.simulate import LogIncident, LogSimulator, rotating_incidents
from stream.schemas import Alert
from stream.settings import Settings
from stream.simulate import (
    InjectedAnomaly,
    LogLine,
    MetricSimulator,
    Publishable,
    SimulatedEvent,
    publish,
)
from stream.telemetry import configure_logging
from stream.topics import ensure_topics

__all__ = ["DemoSummary", "run_demo"]

log = structlog.get_logger(__name__)

_PROGRESS_EVERY_S = 5.0
_LOG_FIRST_INCIDENT_S = 3600.0  # after the log window models' warm-up (100 windows of 30 s)
_LOG_INCIDENT_EVERY_S = 1800.0


@dataclass
class DemoSummary:
    """What the demo saw, for the closing summary."""

    events_sent: int = 0
    events_scored: int = 0
    alerts: int = 0
    injected: dict[tuple[str, datetime], InjectedAnomaly] = field(default_factory=dict)
    caught: set[tuple[str, datetime]] = field(default_factory=set)
    log_lines_sent: int = 0
    log_alerts: int = 0
    log_incidents: list[LogIncident] = field(default_factory=list)
    """Log incidents under way or over in the lines sent so far."""
    log_caught: set[LogIncident] = field(default_factory=set)

    def render(self) -> str:
        metric_alerts = self.alerts - self.log_alerts
        missed = len(self.injected) - len(self.caught)
        precision = len(self.caught) / metric_alerts if metric_alerts else 0.0
        return (
            f"summary: events_sent={self.events_sent} events_scored={self.events_scored} "
            f"alerts={self.alerts} injected_anomalies={len(self.injected)} "
            f"caught={len(self.caught)} missed={missed} precision={precision:.2f} "
            f"log_lines_sent={self.log_lines_sent} log_alerts={self.log_alerts} "
            f"log_incidents={len(self.log_incidents)} log_caught={len(self.log_caught)}"
        )


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the demo until ``--duration`` passes or Ctrl-C; print a summary. Returns exit code."""
    configure_logging("WARNING", settings.log_format)
    try:
        return asyncio.run(_demo(args, settings))
    except BrokerError as exc:
        print(f"vigil demo: {exc}", file=sys.stderr)
        return exc.exit_code


async def _demo(args: argparse.Namespace, settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker: LocalBroker | None = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalBroker(port=args.port)
        _say(f"starting a local Kafka broker on 127.0.0.1:{args.port} (first run downloads it)")
        bootstrap = await asyncio.to_thread(broker.start, owned=True)
    _say(f"Kafka at {bootstrap}")
    update: dict[str, object] = {"bootstrap_servers": bootstrap}
    if broker is not None:
        update.update(PLAINTEXT_SETTINGS)
    if args.anomaly_target_rate is None and "VIGIL_ANOMALY_TARGET_RATE" not in os.environ:
        # The demo knows how often it injects anomalies: budget alerts for that many.
        update["anomaly_target_rate"] = args.anomaly_rate
    settings = settings.model_copy(update=update)
    summary = DemoSummary()
    try:
        await ensure_topics(bootstrap, topic_specs(settings), kafka_options=kafka_options(settings))
        await _run_parts(args, settings, summary, stop)
    finally:
        if broker is not None:
            await asyncio.to_thread(broker.stop)
    print(summary.render(), flush=True)
    return 0


async def _run_parts(
    args: argparse.Namespace, settings: Settings, summary: DemoSummary, stop: asyncio.Event
) -> None:
    detector = Detector(settings)
    await detector.start()
    _say(f"detector consuming {settings.topic_metrics}; HTTP on port {detector.http_port}")
    alerts = AIOKafkaConsumer(
        settings.topic_alerts,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="latest",
        enable_auto_commit=False,
        **kafka_options(settings),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, linger_ms=5, **kafka_options(settings)
    )
    await alerts.start()
    await producer.start()
    sim = MetricSimulator(
        services=args.services,
        anomaly_rate=args.anomaly_rate,
        seed=args.sim_seed,
        start=datetime.now(UTC).replace(microsecond=0),
    )

    def tracked(events: Iterator[SimulatedEvent]) -> Iterator[SimulatedEvent]:
        for event in events:
            if event.anomaly is not None:
                summary.injected[(event.anomaly.service, event.anomaly.ts)] = event.anomaly
            summary.events_sent += 1
            yield event

    count = args.count if args.count is not None else 2**62
    log_sim = _log_simulator(args, sim.start, [f"svc-{i:02d}" for i in range(args.services)])
    # Log event time keeps pace with the metric samples' (one per service every 10 s).
    log_rate = args.rate * sim.interval_s * args.log_lines_per_s if args.rate else None
    tasks = [
        asyncio.create_task(detector.run(), name="detector"),
        asyncio.create_task(
            publish(
                producer,
                settings.topic_metrics,
                tracked(sim.events(count)),
                rate=args.rate or None,
                stop=stop,
            ),
            name="simulator",
        ),
        asyncio.create_task(
            publish(
                producer,
                settings.topic_logs,
                _tracked_logs(log_sim, summary),
                rate=log_rate,
                stop=stop,
            ),
            name="log-simulator",
        ),
        asyncio.create_task(
            _print_alerts(alerts, summary, log_sim, settings.log_window_s), name="alerts"
        ),
        asyncio.create_task(_progress(detector, summary), name="progress"),
    ]
    try:
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait(
            [waiter, tasks[0]], timeout=args.duration, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        stop.set()
        await asyncio.sleep(1.0)  # let the last alerts arrive
    finally:
        detector.request_stop()
        for task in tasks[1:]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        summary.events_scored = detector.counts["scored"]
        await detector.stop()
        await alerts.stop()
        await producer.stop()


def _log_simulator(args: argparse.Namespace, start: datetime, services: list[str]) -> LogSimulator:
    per_s = args.log_lines_per_s
    # Enough incidents for the whole run (one every 30 min of event time; a few hundred bytes
    # each), or for a day of event time when it runs until stopped.
    horizon_s = (
        args.duration * args.rate * 10.0 / max(1, args.services)
        if args.duration and args.rate
        else 86_400.0 * 30
    )
    count = max(1, int((horizon_s - _LOG_FIRST_INCIDENT_S) // _LOG_INCIDENT_EVERY_S) + 1)
    incidents = rotating_incidents(
        services, first_s=_LOG_FIRST_INCIDENT_S, every_s=_LOG_INCIDENT_EVERY_S, count=count
    )
    return LogSimulator(
        services,
        lines_per_s=per_s,
        incidents=incidents,
        seed=args.sim_seed,
        start=start,
        disorder_s=2.0,
    )


def _tracked_logs(sim: LogSimulator, summary: DemoSummary) -> Iterator[Publishable]:
    if sim.lines_per_s <= 0:
        return
    upcoming = sorted(sim.incidents, key=lambda i: i.start_s, reverse=True)
    for event in sim.events(10**9):
        offset_s = (event.ts - sim.start).total_seconds()
        while upcoming and upcoming[-1].start_s <= offset_s:
            summary.log_incidents.append(upcoming.pop())
        summary.log_lines_sent += 1
        yield LogLine(event)


def _log_incident_caught(
    alert: Alert, summary: DemoSummary, sim: LogSimulator, window_s: float
) -> bool:
    """Whether ``alert`` is on a log incident's service within two windows of its start."""
    window_start_s = alert.event_ts.timestamp()
    for incident in summary.log_incidents:
        # Windows are aligned on the epoch, not on the simulation's start.
        started_s = sim.start.timestamp() + incident.start_s
        first_window = started_s // window_s * window_s
        if incident.service == alert.service and 0 <= window_start_s - first_window <= window_s:
            summary.log_caught.add(incident)
            return True
    return False


async def _print_alerts(
    alerts: AIOKafkaConsumer, summary: DemoSummary, log_sim: LogSimulator, window_s: float
) -> None:
    async for record in alerts:
        alert = Alert.model_validate(orjson.loads(record.value))
        summary.alerts += 1
        if alert.source == "logs":
            summary.log_alerts += 1
            incident = _log_incident_caught(alert, summary, log_sim, window_s)
            _say(
                f"LOG ALERT {alert.severity:<8} {alert.service} {alert.model.name} "
                f"window={alert.event_ts:%H:%M:%S} [{'incident' if incident else 'no incident'}] "
                + "; ".join(
                    f"{t.count}x {t.template[:80]}" for t in alert.explanation.top_templates
                )
            )
            continue
        key = (alert.service, alert.event_ts)
        verdict = "injected" if key in summary.injected else "not injected"
        if key in summary.injected:
            summary.caught.add(key)
        top = ", ".join(
            f"{f.name}={f.value:g} (baseline {f.baseline:g}, {f.contribution:.0%})"
            for f in alert.explanation.top_features
        )
        _say(
            f"ALERT {alert.severity:<8} {alert.service} score={alert.score:.3f} "
            f"threshold={alert.threshold:.3f} [{verdict}] {top}"
        )


async def _progress(detector: Detector, summary: DemoSummary) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(_PROGRESS_EVERY_S)
        scored = detector.counts["scored"]
        elapsed = time.monotonic() - started
        _say(
            f"progress: {elapsed:.0f}s sent={summary.events_sent} "
            f"log_lines={summary.log_lines_sent} scored={scored} "
            f"({scored / elapsed:.0f}/s) alerts={summary.alerts} "
            f"caught={len(summary.caught)}/{len(summary.injected)} "
            f"log_caught={len(summary.log_caught)}/{len(summary.log_incidents)}"
        )


def _say(line: str) -> None:
    print(line, flush=True)
