"""``vigil demo``: a local Kafka broker, the simulated log-processor, the detector and the
sidecar, with a live view of what they do.

The broker runs on a fresh data dir (deleted at the end) unless ``--bootstrap`` names a Kafka,
where the run gets topics and groups of its own. The detector and the sidecar are ``vigil
detect`` and ``vigil sidecar`` child processes, started as an operator would start them
(their logs, snapshots and artifacts under ``.vigil/demo/<run>/``). The log-processor runs
here, so the demo knows each incident it injects; the verdicts come from the alerts read back
from the alerts topic, as an alerting system sees them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from rich.console import Console, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from stream.detector.detector import topic_specs
from stream.dev.broker import BrokerError, LocalBroker, free_port
from stream.dev.demo.guard import ForeignMember, check_groups
from stream.dev.demo.output import Output
from stream.dev.demo.processes import ChildFailed, new_broker_dir, start_vigil
from stream.dev.demo.run_settings import demo_settings
from stream.dev.demo.scenario import Scenario, demo_scenario
from stream.dev.demo.scoreboard import Scoreboard
from stream.dev.demo.startup import StartUp, Stopped
from stream.dev.demo.traffic import alerts_read, demo_clients, publish_scenario
from stream.dev.demo.view import (
    LiveStats,
    alert_text,
    dashboard,
    progress_line,
    summary_line,
    summary_table,
    verdict_text,
)
from stream.dev.demo.watch import ChildWatch
from stream.kafka.kafka_options import kafka_options
from stream.kafka.topics import ensure_topics
from stream.settings import Settings, settings_env
from stream.telemetry import configure_logging

__all__ = ["run_demo"]

_PLAIN_PROGRESS_EVERY_S = 5.0
_POLL_S = 1.0
_GUARD_EVERY_S = 5.0


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the demo until ``--duration`` passes or Ctrl-C; print a summary. Returns the exit
    code: 0, or 1 if the detector or the sidecar died."""
    configure_logging("WARNING", settings.log_format)
    try:
        return asyncio.run(_Demo(args, settings).run())
    except BrokerError as exc:
        print(f"vigil demo: {exc}", file=sys.stderr)
        return exc.exit_code


class _Demo:
    """One run: start everything, stream, watch, stop everything, summarise."""

    def __init__(self, args: argparse.Namespace, settings: Settings) -> None:
        self.args = args
        self.settings = settings
        self.console = Console()
        self.live = self.console.is_terminal and not args.plain
        self.stop = asyncio.Event()
        self.out = Output(self.console, self.stop.set)
        self.stop_publishing = asyncio.Event()
        self.run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        self.run_dir = Path(args.run_dir) / self.run_id
        self.board = Scoreboard(
            horizon_s=settings.incident_horizon_s,
            log_window_s=settings.log_window_s,
            settle_s=settings.incident_horizon_s + settings.incident_label_grace_s,
        )
        self.stats = LiveStats()
        self.recent: deque[str] = deque(maxlen=8)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.warmup_task: TaskID | None = None
        self.scenario: Scenario | None = None
        self.watch = ChildWatch(self.stats, args.services * settings.warmup_events)
        self.failure: str | None = None
        self.header = "Vigil demo"
        self.started = time.monotonic()
        self._painter: asyncio.Task[None] | None = None
        self._printed: set[str] = set()
        self.broker: LocalBroker | None = None
        self.startup = StartUp(self.progress, self.out, self.stop, live=self.live)

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # A closed terminal (SIGHUP) stops the run like Ctrl-C; a kill -9 takes the children
        # with it (stream.detector.lifelines).
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, self.stop.set)
        live = (
            # Refreshed from the event loop (below), not rich's thread: the view reads
            # state the loop changes.
            Live(self._render(), console=self.console, auto_refresh=False)
            if self.live
            else contextlib.nullcontext()
        )
        broker_dir = new_broker_dir()
        try:
            with live as shown:
                if isinstance(shown, Live):
                    self._painter = asyncio.create_task(self._paint(shown))
                await self._start(broker_dir)
                await self._stream()
        except Stopped:
            pass
        except ChildFailed as exc:
            self.failure = str(exc)
        except KafkaError as exc:
            self.failure = f"Kafka at {self.settings.bootstrap_servers}: {exc}"
        finally:
            await self._stop_all(broker_dir)
        return self._summarise()

    async def _start(self, broker_dir: Path) -> None:
        """The broker (unless ``--bootstrap``), the topics, the group check, the children."""
        bootstrap = self.args.bootstrap
        if bootstrap is None:
            self.broker = broker = LocalBroker(port=self.args.port, data_dir=broker_dir)
            bootstrap = await self.startup.step(
                f"Kafka broker on 127.0.0.1:{self.args.port} (a first run resolves it with Maven)",
                asyncio.to_thread(broker.start, owned=True),
                interruptible=False,  # a thread: let it finish, then stop the broker
            )
        self.settings = demo_settings(
            self.settings,
            bootstrap=bootstrap,
            run_id=self.run_id,
            run_dir=self.run_dir,
            external=self.broker is None,
        )
        await self.startup.step(
            "topics",
            ensure_topics(
                bootstrap,
                topic_specs(self.settings),
                kafka_options=kafka_options(self.settings),
            ),
        )
        await self.startup.step(
            "no other member in the demo's groups", check_groups(self.settings, own=0)
        )
        await self._start_processes()

    async def _stop_all(self, broker_dir: Path) -> None:
        """Stop the painter, the children (each snapshots and commits), then the broker."""
        if self._painter is not None:
            self._painter.cancel()
        if self.watch.detector is not None or self.broker is not None:
            self.out.say(
                "stopping: the detector and the sidecar (each snapshots and commits)"
                + (", then the broker" if self.broker is not None else "")
            )
        await self.watch.stop(self.settings.shutdown_timeout_s + 5.0)
        if self.broker is not None:
            await asyncio.to_thread(self.broker.stop)
        shutil.rmtree(broker_dir, ignore_errors=True)

    def _summarise(self) -> int:
        """The summary (a table on a terminal, always the ``summary:`` line); the exit code."""
        figures = self._figures()
        if self.live:
            self.out.say(summary_table(figures))
            self.out.say(f"logs, snapshots and artifacts: {self.run_dir}")
        if self.failure is not None:
            with contextlib.suppress(OSError):
                print(f"vigil demo: {self.failure}", file=sys.stderr)
        self.out.line(summary_line(figures))
        return 1 if self.failure is not None else 0

    async def _start_processes(self) -> None:
        env, logs = settings_env(self.settings, os.environ), self.run_dir
        port = free_port()
        self.watch.detector = detector = start_vigil("detect", env, port, logs / "detector.log")
        await self.startup.step(
            f"detector (vigil detect, http://127.0.0.1:{port}/metrics)",
            detector.wait_ready("/readyz", timeout_s=120.0),
        )
        port = free_port()
        self.watch.sidecar = sidecar = start_vigil("sidecar", env, port, logs / "sidecar.log")
        await self.startup.step(
            f"sidecar (vigil sidecar, http://127.0.0.1:{port}/models)",
            sidecar.wait_ready("/healthz", timeout_s=60.0),
        )

    async def _stream(self) -> None:
        """Publish, watch and show until the duration, Ctrl-C, or a child's death."""
        scenario = self._scenario()
        async with demo_clients(self.settings) as (producer, alerts):
            self.scenario = scenario
            watchers = [
                asyncio.create_task(self._read_alerts(alerts)),
                asyncio.create_task(self._watch()),
            ]
            try:
                await self._publish(producer, scenario)
                await self._drain()
            finally:
                for watcher in watchers:
                    watcher.cancel()
                for watcher in watchers:
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher

    def _scenario(self) -> Scenario:
        """The scenario to stream at ``--rate``; the view's header and warm-up bar follow."""
        args, settings = self.args, self.settings
        scenario, speed = demo_scenario(args, self.board)
        pace = f"x{speed:,.0f} event time" if speed else "as fast as it can"
        self.header = (
            f"Vigil demo · Kafka {settings.bootstrap_servers} · {args.services} services, "
            f"{pace} · Ctrl-C stops"
        )
        self.warmup_task = self.progress.add_task(
            "anomaly models warming up", total=args.services * settings.warmup_events
        )
        return scenario

    async def _publish(self, producer: AIOKafkaProducer, scenario: Scenario) -> None:
        """Publish until ``--duration`` passes, Ctrl-C, or everything planned is sent."""
        publishers = publish_scenario(
            producer,
            self.settings,
            scenario,
            rate=self.args.rate or None,
            stop=self.stop_publishing,
        )
        stopper = asyncio.create_task(self.stop.wait())
        either: set[asyncio.Future[Any]] = {publishers, stopper}
        await asyncio.wait(either, timeout=self.args.duration, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        self.stop_publishing.set()
        try:
            await publishers
        except Exception as exc:  # a Kafka error while publishing
            self.failure = f"publishing failed: {exc!r}"

    async def _read_alerts(self, consumer: AIOKafkaConsumer) -> None:
        async for alert in alerts_read(consumer):
            self.board.add_alert(alert)
            line = alert_text(alert)
            self.recent.append(line)
            if not self.live:
                self.out.line(line)

    async def _watch(self) -> None:
        """Read the children's figures every second; a progress line every few in plain
        output."""
        printed = guarded = time.monotonic()
        while True:
            await self._refresh()
            if time.monotonic() - guarded >= _GUARD_EVERY_S:
                guarded = time.monotonic()
                await self._guard()
            if not self.live:
                self._print_settled()
            if not self.live and time.monotonic() - printed >= _PLAIN_PROGRESS_EVERY_S:
                printed = time.monotonic()
                figures = self.board.tally(self._now())
                self.out.line(progress_line(self.stats, self._sent(), figures))
            await asyncio.sleep(_POLL_S)

    async def _guard(self) -> None:
        """Stop the run if a process not its own joined one of its consumer groups."""
        try:
            await check_groups(self.settings, own=1)
        except ForeignMember as exc:
            if self.failure is None:
                self.failure = str(exc)
            self.stop.set()
        except KafkaError:
            pass  # the broker is busy or away: the next check tells

    def _print_settled(self) -> None:
        """Plain output: a line for each incident once its verdict is in."""
        for verdict in self.board.verdicts(self._now()):
            key = verdict.incident.incident_id
            if verdict.status != "open" and key not in self._printed:
                self._printed.add(key)
                self.out.line(verdict_text(verdict))

    async def _refresh(self) -> None:
        """The children's figures; a dead child stops everything."""
        self.stats.elapsed_s = time.monotonic() - self.started
        dead = self.watch.dead()
        if dead is not None and self.failure is None:
            self.failure = dead
            self.stop.set()
        await self.watch.refresh()
        if self.warmup_task is not None:
            self.progress.update(
                self.warmup_task, completed=min(self.watch.metrics_scored, self.watch.warmup_total)
            )

    async def _drain(self) -> None:
        """Until the detector's count of scored events stops moving (at most 10 s), then a
        moment for the last alerts to come back."""
        deadline = time.monotonic() + 10.0
        before = -1.0
        while time.monotonic() < deadline and self.failure is None:
            await self._refresh()
            if self.stats.scored == before:
                break
            before = self.stats.scored
            await asyncio.sleep(1.0)
        await asyncio.sleep(1.5)
        await self._refresh()
        if not self.live:
            self._print_settled()

    async def _paint(self, live: Live) -> None:
        while True:
            live.update(self._render(), refresh=True)
            await asyncio.sleep(0.25)

    # -- what is shown ------------------------------------------------------------------------

    def _sent(self) -> dict[str, int]:
        return dict(self.scenario.sent) if self.scenario is not None else {}

    def _now(self) -> datetime:
        return self.scenario.now if self.scenario is not None else datetime.now(UTC)

    def _render(self) -> RenderableType:
        if self.scenario is None:
            return self.progress
        now = self._now()
        verdicts = self.board.verdicts(now)
        return dashboard(
            header=self.header,
            stats=self.stats,
            sent=self._sent(),
            now=now,
            figures=self.board.tally(now, verdicts),
            verdicts=verdicts,
            alerts=list(self.recent),
            warmup=self.progress,
        )

    def _figures(self) -> dict[str, float]:
        sent = self._sent()
        return {
            "events_sent": sent.get("metrics", 0),
            "log_lines_sent": sent.get("logs", 0),
            "labels_sent": sent.get("labels", 0),
            "events_scored": self.stats.scored,
            "alerts": sum(self.board.alerts.values()),
            **self.board.tally(self._now()),
            "models_promoted": len(self.watch.champions),
        }
