"""Detector processes under a benchmark (``benchmarks/scale_out.py``): started, told when to
join their group, stopped or killed; their JSON logs read back; the group's committed offsets
and every process's CPU polled while they run; and each run's own topics, group and snapshot
directory.

A detector process is ``stream.cli.main(["detect"])``, what the ``vigil`` script runs, with
its settings in ``VIGIL_*`` variables. It imports Vigil first and waits for a line on its
stdin, so import time is not part of any figure and the bench decides when it joins.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from stream.dev.bench_kafka import _bench_topics, _preload, http_get
from stream.dev.broker import free_port
from stream.dev.simulate import MetricSimulator
from stream.kafka.kafka_options import kafka_options
from stream.settings import Settings, settings_env

__all__ = [
    "Detector",
    "Encoded",
    "Poller",
    "Sample",
    "at_or_after",
    "broker_process",
    "delete_topics",
    "detector_env",
    "every_process_cpu_s",
    "fresh_run",
    "log_events",
    "machine_busy_s",
    "newest_snapshots_bytes",
    "others_by_label",
    "run_dir",
    "simulated_events",
    "spawn",
    "stop",
    "wait_quiet",
    "wait_stable",
]

_LAUNCH = (
    "import sys\n"
    "import stream.cli, stream.detector.detector, stream.detector.http\n"
    "print('imported', flush=True)\n"
    "sys.stdin.readline()\n"
    "sys.exit(stream.cli.main(['detect']))\n"
)
"""A detector process: import everything, wait for the bench's go, then ``vigil detect``."""


# -- detector processes ----------------------------------------------------------------------


def detector_env(settings: Settings, port: int) -> dict[str, str]:
    """A detector's environment: ``settings`` as ``VIGIL_*`` variables, INFO logs as JSON."""
    return {
        **settings_env(settings, os.environ),
        "VIGIL_HTTP_PORT": str(port),
        "VIGIL_HTTP_HOST": "127.0.0.1",
        "VIGIL_LOG_LEVEL": "INFO",
        "VIGIL_LOG_FORMAT": "json",
    }


def _open_log(path: Path) -> TextIO:
    return path.open("w")


def log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a detector, each with ``at`` (epoch seconds) added."""
    events = []
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            event = orjson.loads(line)
            if isinstance(event, dict) and "timestamp" in event:
                event["at"] = dt.datetime.fromisoformat(event["timestamp"]).timestamp()
                events.append(event)
    return events


def _partitions_of(event: dict[str, Any], topic: str) -> list[int]:
    return sorted(
        int(p.rsplit(":", 1)[1]) for p in event["partitions"] if p.startswith(f"{topic}:")
    )


@dataclass
class Detector:
    """One detector process: its pid, HTTP port and log file."""

    proc: asyncio.subprocess.Process
    port: int
    log: Path

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in log_events(self.log) if e.get("event") == name]

    def assignment(self, topic: str) -> tuple[float, list[int]] | None:
        """(when, partitions of ``topic``) of its latest assignment, if it is not revoked."""
        events = [
            e
            for e in log_events(self.log)
            if e.get("event") in ("partitions_assigned", "partitions_revoked")
        ]
        if not events or events[-1]["event"] != "partitions_assigned":
            return None
        return events[-1]["at"], _partitions_of(events[-1], topic)

    async def go(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        return time.time()

    async def metrics(self) -> dict[str, float]:
        """Sums of the samples of its ``/metrics`` by name."""
        body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{self.port}/metrics")
        sums: dict[str, float] = {}
        for family in text_string_to_metric_families(body.decode() if body else ""):
            for sample in family.samples:
                sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
        return sums


async def spawn(settings: Settings, count: int, log_dir: Path) -> list[Detector]:
    """``count`` detector processes, imported and waiting for their go."""
    detectors = []
    for i in range(count):
        port = free_port()
        log = log_dir / f"detector-{i}.log"
        with _open_log(log) as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _LAUNCH,
                env=detector_env(settings, port),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        detectors.append(Detector(proc, port, log))
    for detector in detectors:
        assert detector.proc.stdout is not None
        line = await asyncio.wait_for(detector.proc.stdout.readline(), timeout=120)
        if line.strip() != b"imported":
            raise RuntimeError(f"a detector process failed to start: {detector.log}")
    return detectors


async def stop(detectors: Sequence[Detector]) -> None:
    """SIGTERM (a clean stop: snapshot, commit, leave), SIGKILL after 30 s."""
    alive = [d.proc for d in detectors if d.proc.returncode is None]
    for proc in alive:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
    for proc in alive:
        try:
            await asyncio.wait_for(proc.wait(), timeout=30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- the group's committed offsets and the processes' CPU ------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One poll: when, each metrics partition's committed offset, each watched process's CPU
    seconds, and the whole machine's busy CPU seconds (all cores, all processes)."""

    at: float
    offsets: tuple[int, ...]
    cpu_s: tuple[float, ...]
    machine_s: float


def _cpu_s(process: Any) -> float:
    if process is None:
        return math.nan
    try:
        times = process.cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return math.nan


def machine_busy_s() -> float:
    """CPU seconds the machine's cores ran anything (time stolen by the host not counted)."""
    times = psutil.cpu_times()
    fields = ("user", "nice", "system", "irq", "softirq")
    return float(sum(getattr(times, f, 0.0) for f in fields))


def every_process_cpu_s() -> dict[int, tuple[str, float]]:
    """pid → (a short label, CPU seconds) of every process this user can see."""
    found = {}
    for proc in psutil.process_iter(["cmdline", "name", "cpu_times"]):
        times, cmdline = proc.info["cpu_times"], proc.info["cmdline"]
        if times is not None:
            name = proc.info["name"] or "?"
            args = cmdline[-1:] if name == "java" else cmdline[1:3]  # java: its main's argument
            label = f"{name} {' '.join(args)}"[:60]
            found[proc.pid] = (label, float(times.user + times.system))
    return found


def others_by_label(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], mine: set[int]
) -> list[tuple[str, float]]:
    """CPU seconds of the processes not in ``mine`` between two snapshots, by label, most
    first (a process started in between counts from zero)."""
    used: dict[str, float] = {}
    for pid, (label, cpu_s) in after.items():
        if pid not in mine:
            used[label] = used.get(label, 0.0) + cpu_s - before.get(pid, (label, 0.0))[1]
    return sorted(used.items(), key=lambda item: -item[1])


def broker_process(port: int) -> Any:
    """The process listening on the broker's port, if this user may see it."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return psutil.Process(conn.pid)
    return None


class Poller:
    """Polls the group's committed offsets of the metrics partitions every ``every_s``."""

    def __init__(self, settings: Settings, partitions: int, every_s: float) -> None:
        self._settings = settings
        self._tps = [TopicPartition(settings.topic_metrics, p) for p in range(partitions)]
        self._every_s = every_s
        self.samples: list[Sample] = []
        self.processes: list[Any] = []
        """psutil processes whose CPU each sample records (detectors, then the broker)."""
        self.everyone: list[tuple[float, dict[int, tuple[str, float]]]] = []
        """About once a second: every process's CPU seconds (to name what else ran)."""
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Poller:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._settings.bootstrap_servers, **kafka_options(self._settings)
        )
        await admin.start()
        self._task = asyncio.create_task(self._run(admin))
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self, admin: AIOKafkaAdminClient) -> None:
        group = self._settings.group_id
        try:
            coordinator = await admin.find_coordinator(group)
            while True:
                committed = await admin.list_consumer_group_offsets(group, coordinator, self._tps)
                at = time.time()
                offsets = tuple(
                    max(0, committed[tp].offset) if tp in committed else 0 for tp in self._tps
                )
                cpu = tuple(_cpu_s(p) for p in self.processes)
                self.samples.append(Sample(at, offsets, cpu, machine_busy_s()))
                if not self.everyone or at - self.everyone[-1][0] >= 1.0:
                    self.everyone.append((at, every_process_cpu_s()))
                await asyncio.sleep(self._every_s)
        finally:
            await admin.close()

    async def wait(self, done: Any, timeout_s: float, what: str) -> Sample:
        """The first new sample for which ``done(sample)`` holds."""
        deadline = time.monotonic() + timeout_s
        seen = len(self.samples)
        while time.monotonic() < deadline:
            for sample in self.samples[seen:]:
                if done(sample):
                    return sample
            seen = len(self.samples)
            await asyncio.sleep(self._every_s / 2)
        raise TimeoutError(f"timed out waiting for {what}")


def at_or_after(samples: Sequence[Sample], at: float) -> Sample:
    return next(s for s in samples if s.at >= at)


@contextlib.contextmanager
def run_dir(keep_logs: Path | None) -> Iterator[Path]:
    """A run's directory (detector logs, snapshots), removed at the end; the logs are copied
    to ``keep_logs/<n>/`` first if it is given."""
    with tempfile.TemporaryDirectory(prefix="vigil-scale-") as tmp:
        try:
            yield Path(tmp)
        finally:
            if keep_logs is not None:
                keep = keep_logs / str(len(list(keep_logs.glob("*"))) if keep_logs.exists() else 0)
                keep.mkdir(parents=True)
                for log in Path(tmp).glob("*.log"):
                    shutil.copy(log, keep / log.name)


# -- one run's topics ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Encoded:
    """A simulated event, encoded once: every run pre-loads the same events."""

    service: str
    value: bytes

    def to_bytes(self) -> bytes:
        return self.value


def simulated_events(count: int, services: int) -> tuple[Encoded, ...]:
    sim = MetricSimulator(services=services, anomaly_rate=0.005, seed=3, clean_start=100)
    # A copy of exact size: orjson's output keeps its 4 KiB buffer's block (400 MB a 100k).
    return tuple(Encoded(e.service, bytes(memoryview(e.to_bytes()))) for e in sim.events(count))


async def fresh_run(
    base: Settings, events: Sequence[Encoded], snapshot_dir: Path
) -> tuple[Settings, list[int]]:
    """Fresh topics and group with ``events`` pre-loaded; each metrics partition's end offset."""
    run = _bench_topics(base, "bench.scale").model_copy(update={"snapshot_dir": str(snapshot_dir)})
    await _preload(run, run.topic_metrics, iter(events))
    consumer = AIOKafkaConsumer(bootstrap_servers=run.bootstrap_servers, **kafka_options(run))
    await consumer.start()
    try:
        tps = [TopicPartition(run.topic_metrics, p) for p in range(run.topic_partitions)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return run, [ends[tp] for tp in tps]


async def delete_topics(run: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=run.bootstrap_servers, **kafka_options(run))
    await admin.start()
    try:
        names = [
            getattr(run, f"topic_{n}")
            for n in ("metrics", "logs", "incidents", "feedback", "alerts", "dlq", "models")
        ]
        await admin.delete_topics(names)
    except Exception as exc:  # a leftover topic is not worth failing the bench for
        print(f"warning: could not delete the run's topics: {exc}", file=sys.stderr)
    finally:
        await admin.close()


async def wait_stable(
    detectors: Sequence[Detector], run: Settings, poller: Poller, ends: Sequence[int]
) -> tuple[float, dict[int, list[int]]]:
    """Wait until every detector holds metrics partitions, together all of them, and every
    partition not yet drained had its commit move after that; returns when the last of them
    was assigned and the assignment (detector index → partitions)."""
    topic, partitions = run.topic_metrics, run.topic_partitions
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        latest = [d.assignment(topic) for d in detectors]
        if poller.samples and all(a is not None and a[1] for a in latest):
            owned = [p for a in latest if a is not None for p in a[1]]
            if sorted(owned) == list(range(partitions)):
                stable_at = max(a[0] for a in latest if a is not None)
                base = (
                    at_or_after(poller.samples, stable_at)
                    if poller.samples[-1].at >= stable_at
                    else None
                )
                if base is not None:
                    last = poller.samples[-1]
                    moved = zip(last.offsets, base.offsets, ends, strict=True)
                    if all(n > b or b >= end for n, b, end in moved):
                        return stable_at, {i: a[1] for i, a in enumerate(latest) if a is not None}
    raise TimeoutError("the group did not settle with every detector holding partitions")


def newest_snapshots_bytes(snapshot_dir: Path, topic: str) -> int:
    """Bytes of the newest snapshot of each partition of ``topic`` (layout: group /
    ``<topic>-<partition>`` / ``<created ns>-<offset>.snap``)."""
    total = 0
    for partition_dir in snapshot_dir.glob(f"**/{topic}-*"):
        files = sorted(partition_dir.glob("*.snap"), key=lambda f: int(f.name.split("-")[0]))
        total += files[-1].stat().st_size if files else 0
    return total


async def wait_quiet(cores: float, wait_s: float) -> None:
    """Wait up to ``wait_s`` for the machine to be busy with at most ``cores`` over 2 s (a
    shared machine: other work would take the detectors' CPU)."""
    deadline = time.monotonic() + wait_s
    while True:
        before = machine_busy_s()
        await asyncio.sleep(2.0)
        busy = (machine_busy_s() - before) / 2.0
        if busy <= cores or time.monotonic() >= deadline:
            print(f"  machine busy before the run: {busy:.2f} cores", file=sys.stderr)
            return
