"""The local broker's JVM: launching it (owned by this process, or detached in its own
session), formatting its storage, telling it from other processes, and signalling it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from stream.detector.lifelines import (
    can_set_parent_death_signal,
    die_with_parent_preexec,
    pid_alive,
    spawn_from_long_lived_thread,
)
from stream.dev.broker_config import random_cluster_id, scram_credentials
from stream.dev.broker_setup import EXIT_CONFIG, BrokerError, last_lines

__all__ = [
    "JVM_OPTS",
    "MAIN_CLASS",
    "format_storage",
    "is_our_broker",
    "launch",
    "signal_group",
]

JVM_OPTS = ("-Xms256m", "-Xmx1g", "-Djava.awt.headless=true")
MAIN_CLASS = "kafka.Kafka"


def is_our_broker(pid: int, props: Path) -> bool:
    """Whether a live pid is a Kafka JVM started with this data dir's server.properties."""
    if not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    return MAIN_CLASS.encode() in argv and str(props).encode() in argv


def format_storage(
    java: str,
    classpath: str,
    log_opt: str,
    props: Path,
    sasl_users: Mapping[str, str],
    data_dir: Path,
) -> None:
    """Format the broker's storage in ``data_dir / "logs"`` (SCRAM credentials for
    ``sasl_users`` included); an already formatted storage is left as it is."""
    cmd = [java, log_opt, "-cp", classpath, "kafka.tools.StorageTool", "format"]
    cmd += ["--cluster-id", random_cluster_id(), "--config", str(props), "--ignore-formatted"]
    cmd += scram_credentials(sasl_users)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise BrokerError(
            f"formatting the broker storage in {data_dir / 'logs'} failed "
            f"(exit {done.returncode}):\n{last_lines(done.stdout + done.stderr, 20)}"
        )


def launch(cmd: list[str], out: IO[bytes], cwd: Path, *, owned: bool) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session, its output to ``out``; an ``owned`` one gets SIGTERM
    when the thread that started it (a process-long one) exits."""

    def spawn(preexec: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,  # Ctrl-C in the terminal does not reach the broker
            preexec_fn=preexec,
        )

    try:
        if not owned:
            return spawn()
        if not can_set_parent_death_signal():
            raise BrokerError(
                "an owned broker needs Linux (prctl PR_SET_PDEATHSIG)", exit_code=EXIT_CONFIG
            )
        preexec = die_with_parent_preexec(signal.SIGTERM)
        return spawn_from_long_lived_thread(lambda: spawn(preexec))
    except OSError as exc:
        raise BrokerError(f"cannot start {cmd[0]}: {exc}") from exc


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the JVM's process group (to the pid alone if that is not allowed)."""
    try:
        os.killpg(pid, sig)  # the JVM leads its own session and process group
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
