"""A group of ``vigil detect`` subprocesses for the fault tests: start, kill and restart
members, watch what each owns, and follow the group's committed offsets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from stream.dev.broker import LocalBroker, free_port, port_is_free
from stream.dev.simulate import MetricSimulator
from stream.settings import Settings
from tests.integration.kafka_io import (
    Produced,
    committed_offsets,
    end_offsets,
    produce_paced,
    read_all,
)
from tests.integration.processes import (
    detector_process,
    log_events,
    log_tail,
    reference_alerts,
    scraped_total,
)

POLL_S = 0.25

# --------------------------------------------------------------------------- the fleet


@dataclass
class Member:
    """One ``vigil detect`` subprocess of the group."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    expected_dead: bool = False

    async def owned(self) -> set[int] | None:
        """The metrics partitions it holds (None while it does not answer)."""
        try:
            async with httpx.AsyncClient() as http:
                models = (await http.get(f"http://127.0.0.1:{self.port}/models", timeout=5)).json()
        except httpx.HTTPError:
            return None
        return {int(p) for p in models["snapshots"]["partitions"]}

    def events(self) -> list[dict[str, Any]]:
        return log_events(self.log_path)

    def problems(self, *, own_only: bool = False) -> list[str]:
        """Error log lines, and anything printed that is not a log line (a traceback);
        ``own_only``: not those the Kafka client logs (they name their ``logger``)."""
        return [
            str(e.get("event"))[:300]
            for e in self.events()
            if e.get("level") in ("error", "critical", "exception", "raw")
            and not (own_only and "logger" in e)
        ]


class Fleet:
    """Detector subprocesses of one consumer group, each with its own HTTP port and log file;
    whatever still runs is killed when the fleet is closed."""

    def __init__(self, settings: Settings, log_dir: Path, env: dict[str, str]) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.env = env
        self.members: list[Member] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def start(self, name: str, env: dict[str, str] | None = None) -> Member:
        """Start member ``name``; ``env`` adds to the fleet's settings for it alone."""
        port = free_port()
        log_path = self.log_dir / f"{name}.log"
        env = {**self.env, "VIGIL_CLIENT_ID": f"vigil-{name}", **(env or {})}
        proc = self._stack.enter_context(
            detector_process(self.settings, port, extra_env=env, log_path=log_path)
        )
        member = Member(name, proc, port, log_path)
        self.members.append(member)
        return member

    @property
    def alive(self) -> list[Member]:
        return [m for m in self.members if not m.expected_dead]

    def check_alive(self) -> None:
        """Fail at once, with its output, if a member that should run has exited."""
        for member in self.alive:
            code = member.proc.poll()
            if code is not None:
                pytest.fail(
                    f"detector {member.name} exited with {code}:\n{log_tail(member.log_path)}",
                    pytrace=False,
                )

    def describe(self) -> str:
        return "\n".join(
            f"--- {m.name} (exit {m.proc.poll()}):\n{log_tail(m.log_path, 8)}" for m in self.members
        )

    async def wait_until(
        self, check: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str
    ) -> float:
        """Poll ``check`` until true, failing if a member dies or ``timeout_s`` passes;
        returns the seconds it took."""
        started = time.monotonic()
        while True:
            self.check_alive()
            if await check():
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                pytest.fail(f"{what}: not within {timeout_s:g} s\n{self.describe()}", pytrace=False)
            await asyncio.sleep(POLL_S)

    async def stable(self, timeout_s: float = 60.0) -> None:
        """Wait until every live member is ready and their metrics partitions split the
        topic's between them."""

        async def split() -> bool:
            owned = [await m.owned() for m in self.alive]
            if any(o is None or not o for o in owned):
                return False
            held = [p for o in owned if o is not None for p in o]
            return sorted(held) == list(range(self.settings.topic_partitions))

        await self.wait_until(split, timeout_s=timeout_s, what="the group did not settle")

    async def total(self, metric: str) -> float:
        """A metric summed over the live members."""
        return sum([await scraped_total(m.port, metric) for m in self.alive])

    async def stop_all(self) -> None:
        """SIGTERM every live member: each must snapshot, commit and exit 0."""
        for member in self.alive:
            member.proc.send_signal(signal.SIGTERM)
        for member in self.alive:
            code = await asyncio.to_thread(member.proc.wait, 60)
            assert code == 0, f"{member.name} exited {code}:\n{log_tail(member.log_path)}"


# --------------------------------------------------------------------------- offsets


@dataclass
class Progress:
    """The group's committed offsets as last polled, and every time one went backwards."""

    bootstrap: str
    group: str
    topic: str
    latest: dict[int, int] = field(default_factory=dict)
    backwards: list[tuple[int, int, int]] = field(default_factory=list)
    """(partition, from, to) for each committed offset seen moving back."""

    async def poll(self) -> dict[int, int]:
        committed = await committed_offsets(self.bootstrap, self.group)
        now = {tp.partition: o for tp, o in committed.items() if tp.topic == self.topic}
        for partition, offset in now.items():
            before = self.latest.get(partition, 0)
            if offset < before:
                self.backwards.append((partition, before, offset))
        self.latest = now
        return now

    async def total(self) -> int:
        return sum((await self.poll()).values())

    async def reached(self, committed: float) -> bool:
        """Whether the group has committed ``committed`` records in all."""
        return await self.total() >= committed


async def end_offsets_of(bootstrap: str, topic: str) -> dict[int, int]:
    return {tp.partition: o for tp, o in (await end_offsets(bootstrap, topic)).items()}


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def own_broker(data_dir: Path) -> Iterator[LocalBroker]:
    """A broker of this test alone: a free port and its own data dir (the session's broker
    serves the other tests)."""
    broker = LocalBroker(port=free_port(), data_dir=data_dir)
    broker.start(owned=True)
    try:
        yield broker
    finally:
        broker.stop()


async def take_down(broker: LocalBroker, how: str) -> None:
    """Stop the broker gracefully (SIGTERM) or kill -9 it, and wait until it is gone."""
    if how == "sigterm":
        await asyncio.to_thread(broker.stop)
        return
    pid = broker.status().pid
    assert pid is not None, "the broker is not running"
    os.killpg(pid, signal.SIGKILL)  # the JVM leads its own process group
    deadline = time.monotonic() + 15
    while broker.status().running or not port_is_free(broker.port):
        assert time.monotonic() < deadline, "the killed broker did not go away"
        await asyncio.sleep(0.1)


def detector_settings_env(settings: Settings) -> dict[str, str]:
    """What these tests set beyond :func:`~tests.integration.processes.detector_env` (which
    passes the settings, with no incident risk: every model is one service's): JSON logs at
    INFO, the rebalances and restores are read from them."""
    assert not settings.incident_risk
    return {"VIGIL_LOG_LEVEL": "INFO", "VIGIL_LOG_FORMAT": "json"}


def parse_ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def assigned_events(member: Member) -> list[dict[str, Any]]:
    return [e for e in member.events() if e.get("event") == "partitions_assigned"]


def simulated(services: int, count: int, seed: int) -> list[tuple[bytes | None, bytes]]:
    """Simulated metric events keyed by service (a service lives on one partition)."""
    events = MetricSimulator(services=services, anomaly_rate=0.01, seed=seed).events(count)
    return [(e.service.encode(), e.to_bytes()) for e in events]


@dataclass(frozen=True)
class AlertCheck:
    """The alerts topic against the reference."""

    on_topic: int
    distinct: int
    expected: int
    missing: int
    spurious: int

    @property
    def duplicates(self) -> int:
        return self.on_topic - self.distinct


async def check_alerts(
    settings: Settings, produced: list[Produced], isolation_level: str
) -> AlertCheck:
    """Read the alerts topic and compare its alert ids with one never-died detector's."""
    records = await read_all(
        settings.bootstrap_servers, settings.topic_alerts, isolation_level=isolation_level
    )
    ids = [orjson.loads(r.value)["alert_id"] for r in records]
    expected = set(reference_alerts(settings, produced))
    assert expected, "the reference should alert: the test checks nothing otherwise"
    got = set(ids)
    return AlertCheck(len(ids), len(got), len(expected), len(expected - got), len(got - expected))


@contextlib.asynccontextmanager
async def paced_stream(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes | None, bytes]],
    *,
    rate_per_s: float,
    acknowledged: list[Produced],
) -> AsyncIterator[asyncio.Task[None]]:
    """Produce ``messages`` to ``topic`` at ``rate_per_s`` in the background (each one
    acknowledged goes to ``acknowledged``); yields the task, cancelled on exit if running."""
    task = asyncio.create_task(
        produce_paced(bootstrap, topic, messages, rate_per_s=rate_per_s, acknowledged=acknowledged)
    )
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def producer_done(task: asyncio.Task[None]) -> Callable[[], Awaitable[bool]]:
    """A check for :meth:`Fleet.wait_until`: the producer task is over (its error, if any,
    fails the test)."""

    async def done() -> bool:
        if task.done():
            task.result()
        return task.done()

    return done
