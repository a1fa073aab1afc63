"""The demo's ``vigil detect`` and ``vigil sidecar``: child processes run as an operator
would run them, each with its own HTTP port and log file, watched over HTTP."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from stream.detector.lifelines import (
    can_set_parent_death_signal,
    die_with_parent_preexec,
    pid_alive,
    spawn_from_long_lived_thread,
)

__all__ = [
    "ChildFailed",
    "VigilProcess",
    "detector_figures",
    "metric_totals",
    "new_broker_dir",
    "sidecar_models",
    "start_vigil",
]


class ChildFailed(Exception):
    """A child exited, or did not get ready in time; the message says which and why."""


@dataclass
class VigilProcess:
    """One ``vigil <command>`` child, serving HTTP on 127.0.0.1:``port``."""

    command: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    _log: IO[bytes]

    @property
    def exit_code(self) -> int | None:
        """None while it runs."""
        return self.proc.poll()

    def log_tail(self, lines: int = 8) -> str:
        """The last lines it wrote."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def get(self, path: str, timeout_s: float = 2.0) -> bytes | None:
        """The body of GET ``path``, or None if it does not answer 200."""
        url = f"http://127.0.0.1:{self.port}{path}"

        def fetch() -> bytes | None:
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response:
                    return bytes(response.read())
            except (urllib.error.URLError, OSError, TimeoutError):
                return None

        return await asyncio.to_thread(fetch)

    async def get_json(self, path: str) -> dict[str, Any] | None:
        body = await self.get(path)
        if body is None:
            return None
        parsed = orjson.loads(body)
        return parsed if isinstance(parsed, dict) else None

    async def wait_ready(self, path: str, timeout_s: float) -> None:
        """Until GET ``path`` answers 200.

        Raises:
            ChildFailed: it exited, or did not answer within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while await self.get(path, timeout_s=1.0) is None:
            if self.exit_code is not None:
                raise ChildFailed(
                    f"vigil {self.command} exited with {self.exit_code}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ChildFailed(
                    f"vigil {self.command} not ready within {timeout_s:g} s (its log: "
                    f"{self.log_path})"
                )
            await asyncio.sleep(0.2)

    async def stop(self, timeout_s: float) -> int:
        """SIGTERM, and SIGKILL if it has not exited within ``timeout_s``; its exit code."""
        if self.exit_code is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait, 10)
        self._log.close()
        return int(self.proc.returncode)


def start_vigil(command: str, env: Mapping[str, str], port: int, log_path: Path) -> VigilProcess:
    """Start ``vigil <command>`` in environment ``env`` (see
    :func:`~stream.settings.settings_env`), HTTP on 127.0.0.1:``port``, JSON logs to
    ``log_path``. It runs in its own session, so a Ctrl-C on the terminal reaches the demo
    only, which stops it in order.

    It never outlives the demo: on Linux the kernel SIGKILLs it when the demo dies, however
    (``kill -9`` included), and anywhere it exits once it sees its parent gone
    (``VIGIL_EXIT_WITH_PARENT``; :mod:`stream.detector.lifelines`). Its state is the run's own, so
    nothing is lost that a later run would read.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = log_path.open("ab")
    child_env = {
        **env,
        "VIGIL_HTTP_HOST": "127.0.0.1",
        "VIGIL_HTTP_PORT": str(port),
        "VIGIL_LOG_FORMAT": "json",
        "VIGIL_EXIT_WITH_PARENT": str(os.getpid()),
    }
    preexec = die_with_parent_preexec(signal.SIGKILL) if can_set_parent_death_signal() else None

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "stream.cli", command],
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )

    try:
        proc = spawn_from_long_lived_thread(spawn)
    except BaseException:
        out.close()
        raise
    return VigilProcess(command, proc, port, log_path, out)


def metric_totals(text: str, names: Mapping[str, str | None]) -> dict[str, float]:
    """From a ``/metrics`` page: for each metric name, the sum of its samples, or with a label
    named, ``{name}:{label value}`` sums.

    Examples:
        >>> page = (
        ...     '# TYPE a_total counter\\na_total{source="metrics"} 3\\na_total{source="logs"} 2\\n'
        ...     '# TYPE b gauge\\nb 7\\n'
        ... )
        >>> metric_totals(page, {"a": "source", "b": None})
        {'a:metrics': 3.0, 'a:logs': 2.0, 'b': 7.0}
    """
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in names:
            continue
        label = names[family.name]
        for sample in family.samples:
            if sample.name not in (family.name, f"{family.name}_total"):
                continue
            key = family.name if label is None else f"{family.name}:{sample.labels.get(label)}"
            out[key] = out.get(key, 0.0) + float(sample.value)
    return out


def detector_figures(page: str) -> tuple[float, float, float]:
    """From a detector's ``/metrics`` page: events scored (all sources), metric events
    scored, and the consumer lag summed over its partitions."""
    totals = metric_totals(
        page, {"vigil_events_scored": "source", "vigil_consumer_lag_messages": None}
    )
    scored = sum(v for k, v in totals.items() if k.startswith("vigil_events_scored:"))
    return (
        scored,
        totals.get("vigil_events_scored:metrics", 0.0),
        totals.get("vigil_consumer_lag_messages", 0.0),
    )


def sidecar_models(described: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """From a sidecar's ``/models``: each group's (``kind:group``, champion version or "",
    status of its last decision or "-").

    Examples:
        >>> sidecar_models({"groups": {"risk:all": {"champion": "risk-all-3",
        ...     "last_decision": {"status": "promoted"}}, "risk:db": {"champion": None}}})
        [('risk:all', 'risk-all-3', 'promoted'), ('risk:db', '', '-')]
    """
    groups = described.get("groups")
    if not isinstance(groups, dict):
        return []
    rows = []
    for key, state in sorted(groups.items()):
        if not isinstance(state, dict):
            continue
        decision = state.get("last_decision")
        status = decision.get("status", "-") if isinstance(decision, dict) else "-"
        rows.append((str(key), str(state.get("champion") or ""), str(status)))
    return rows


_BROKER_DIR_PREFIX = "vigil-demo-broker-"
_OWNER_FILE = "demo.pid"


def new_broker_dir(root: Path | None = None) -> Path:
    """A fresh data dir for the demo's broker (under the temp dir), marked with this
    process's pid; the dirs of earlier demos that died without removing theirs (a kill -9)
    are removed on the way."""
    root = Path(root or tempfile.gettempdir())
    for stale in root.glob(f"{_BROKER_DIR_PREFIX}*"):
        try:
            owner = int((stale / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not marked (older demos): left alone
        if not pid_alive(owner):
            shutil.rmtree(stale, ignore_errors=True)
    made = Path(tempfile.mkdtemp(prefix=_BROKER_DIR_PREFIX, dir=root))
    (made / _OWNER_FILE).write_text(str(os.getpid()))
    return made
