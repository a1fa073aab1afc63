"""A real single-node Apache Kafka broker (KRaft) on this machine, for tests and demos.

The broker's jars come from Maven Central through ``deploy/kafka/pom.xml`` (resolved once into a
cache dir), and the broker runs as ``java ... kafka.Kafka server.properties`` in combined
broker+controller mode, listening on ``127.0.0.1`` only.

Two ways to run it:

* detached (``vigil broker start``): the JVM keeps running after the CLI exits, until
  ``vigil broker stop``;
* owned (``LocalBroker().start(owned=True)``, used by the test fixture and ``vigil demo``): the
  JVM gets SIGTERM when the Python process that started it dies, even by SIGKILL (Linux
  ``PR_SET_PDEATHSIG``).

Typical use::

    broker = LocalBroker(port=19092)
    bootstrap = broker.start(owned=True)  # "127.0.0.1:19092", once the broker answers
    ...
    broker.stop()

`LocalBroker.start` blocks while the JVM starts (a few seconds): from async code, run it with
``await asyncio.to_thread(broker.start, owned=True)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stream.detector.lifelines import (
    can_set_parent_death_signal,
    die_with_parent_preexec,
    pid_alive,
    spawn_from_long_lived_thread,
)
from stream.dev.broker_config import (
    DEV_SASL_PASSWORD,
    DEV_SASL_USERNAME,
    HOST,
    SASL_MECHANISMS,
    SERVER_LOG,
    check_sasl_users,
    random_cluster_id,
    render_log4j2_config,
    render_server_properties,
    scram_credentials,
)
from stream.dev.broker_setup import (
    EXIT_CONFIG,
    EXIT_FAILED,
    BrokerError,
    default_cache_root,
    find_java,
    find_pom,
    last_lines,
    parse_java_major,
    read_kafka_version,
    resolve_jars,
)

__all__ = [
    "DEFAULT_PORT",
    "DEV_SASL_PASSWORD",
    "DEV_SASL_USERNAME",
    "SASL_MECHANISMS",
    "BrokerError",
    "BrokerStatus",
    "LocalBroker",
    "broker_main",
    "default_cache_root",
    "find_java",
    "find_pom",
    "free_port",
    "parse_java_major",
    "port_is_free",
    "random_cluster_id",
    "read_kafka_version",
    "render_log4j2_config",
    "render_server_properties",
    "resolve_jars",
]

DEFAULT_PORT = 9092
DEFAULT_START_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 30.0

_PID_FILE = "broker.pid"
_OUT_FILE = "broker.out"
_PROPS_FILE = "server.properties"
_LOG4J2_FILE = "log4j2.xml"
_JVM_OPTS = ("-Xms256m", "-Xmx1g", "-Djava.awt.headless=true")
_MAIN_CLASS = "kafka.Kafka"


@dataclass(frozen=True)
class BrokerStatus:
    """What is known about a local broker from its data dir.

    Attributes:
        running: Whether the broker's JVM is alive.
        pid: The JVM's pid, or None when no broker was started from this data dir.
        port: The PLAINTEXT port the broker listens (or would listen) on.
        data_dir: The broker's data dir.
        sasl_port: The SASL_PLAINTEXT port, when the broker has that listener.
    """

    running: bool
    pid: int | None
    port: int
    data_dir: Path
    sasl_port: int | None = None

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap address, ``127.0.0.1:<port>``."""
        return f"{HOST}:{self.port}"

    def describe(self) -> str:
        """One line for humans: the state, address, pid and data dir."""
        if self.running:
            sasl = f", SASL_PLAINTEXT on {HOST}:{self.sasl_port}" if self.sasl_port else ""
            return f"running on {self.bootstrap}{sasl} (pid {self.pid}, data {self.data_dir})"
        return f"not running (port {self.port}, data {self.data_dir})"


# --------------------------------------------------------------------------- ports and processes


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:port now (as the JVM does, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _accepts_connections(port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _is_our_broker(pid: int, props: Path) -> bool:
    """Whether a live pid is a Kafka JVM started with this data dir's server.properties."""
    if not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    return _MAIN_CLASS.encode() in argv and str(props).encode() in argv


def _tail(path: Path, count: int = 20) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            return last_lines(handle.read().decode(errors="replace"), count)
    except OSError:
        return ""


async def _probe_metadata(bootstrap: str, timeout_s: float) -> bool:
    """Whether the broker answers a metadata request and lists itself as a live broker."""
    from aiokafka.admin import AIOKafkaAdminClient  # heavy import, only needed here

    timeout_ms = max(1000, int(timeout_s * 1000))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="vigil-broker-probe", request_timeout_ms=timeout_ms
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def _answers_metadata(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """Run `_probe_metadata` to completion, off the caller's event loop if it has one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_probe_metadata(bootstrap, timeout_s))
    result: list[bool] = [False]

    def run() -> None:
        result[0] = asyncio.run(_probe_metadata(bootstrap, timeout_s))

    worker = threading.Thread(target=run, name="vigil-broker-probe", daemon=True)
    worker.start()
    worker.join()
    return result[0]


# --------------------------------------------------------------------------- the broker


class LocalBroker:
    """One single-node Kafka broker with its own data dir on this machine.

    The data dir holds everything: ``server.properties``, ``log4j2.xml``, the Kafka logs under
    ``logs/``, ``server.log``, the JVM's stdout/stderr in ``broker.out`` and ``broker.pid``
    (JSON with pid and port) while it runs. State lives on disk, so another process (the CLI's
    ``stop``) can find and stop a broker this one started.

    With ``sasl_port`` the broker also listens for SASL_PLAINTEXT clients there (mechanisms
    `SASL_MECHANISMS`). PLAIN users are read from ``server.properties`` at each start; SCRAM
    credentials are written when the storage is formatted, so they exist only in a data dir
    first started with SASL on (a data dir formatted earlier offers PLAIN only).

    Args:
        port: The PLAINTEXT port on 127.0.0.1.
        data_dir: The data dir (default ``~/.cache/vigil/broker-<port>``).
        pom: The pom listing the broker's jars (default: `find_pom`).
        cache_root: Where resolved jars are cached (default: `default_cache_root`).
        sasl_port: A SASL_PLAINTEXT port on 127.0.0.1 (default: none).
        sasl_users: That listener's users, name → password (default: `DEV_SASL_USERNAME`
            with `DEV_SASL_PASSWORD`). Letters, digits and ``. _ @ + ~ -`` only.
    """

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        pom: Path | None = None,
        cache_root: Path | None = None,
        sasl_port: int | None = None,
        sasl_users: Mapping[str, str] | None = None,
    ) -> None:
        self._port = port
        self._data_dir = self._pick_data_dir(port, data_dir)
        self._pom = pom
        self._cache_root = cache_root
        self._sasl_port = sasl_port
        self._sasl_users = check_sasl_users(sasl_users) if sasl_port is not None else {}
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _pick_data_dir(port: int, data_dir: str | os.PathLike[str] | None) -> Path:
        if data_dir is not None:
            return Path(data_dir).expanduser().resolve()
        return Path.home() / ".cache" / "vigil" / f"broker-{port}"

    @property
    def port(self) -> int:
        """The PLAINTEXT port."""
        return self._port

    @property
    def data_dir(self) -> Path:
        """The data dir."""
        return self._data_dir

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap address, ``127.0.0.1:<port>``."""
        return f"{HOST}:{self._port}"

    @property
    def sasl_bootstrap(self) -> str | None:
        """The SASL_PLAINTEXT bootstrap address, ``127.0.0.1:<sasl_port>``, if configured."""
        return None if self._sasl_port is None else f"{HOST}:{self._sasl_port}"

    @property
    def pid_file(self) -> Path:
        """The pid file, present while a broker started from this data dir runs."""
        return self._data_dir / _PID_FILE

    def start(
        self,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        owned: bool = False,
        *,
        timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> str:
        """Start the broker, or find it already running, and wait until it serves metadata.

        Args:
            port: The PLAINTEXT port (default: the constructor's); rebinds this object.
            data_dir: The data dir (default: the constructor's, or the default for a new
                ``port``); rebinds this object.
            owned: Tie the JVM's life to this process: Linux sends it SIGTERM when the thread
                that started it exits, even when the process is SIGKILLed. Calls from threads
                other than the main one fork from a process-long helper thread, so that a short
                worker thread ending does not stop the broker. When False the broker runs on
                until `stop`, in its own session. A broker already running from this data dir
                is reported as it is, and keeps the ownership it was started with.
            timeout_s: How long to wait for the broker to answer.

        Returns:
            The bootstrap address, ``127.0.0.1:<port>``.

        Raises:
            BrokerError: Java, Maven or the pom is missing (``exit_code`` 2), the port is taken
                by something else, or the broker exited or did not answer in time (1).
        """
        if port is not None and port != self._port:
            self._port = port
            self._data_dir = self._pick_data_dir(port, data_dir)
        elif data_dir is not None:
            self._data_dir = self._pick_data_dir(self._port, data_dir)

        running = self.status()
        if running.running:
            if running.port != self._port:
                raise BrokerError(
                    f"a broker from {self._data_dir} already runs on port {running.port}, "
                    f"not {self._port}: stop it first"
                )
            if self._sasl_port is not None and running.sasl_port != self._sasl_port:
                raise BrokerError(
                    f"a broker from {self._data_dir} already runs without SASL_PLAINTEXT on "
                    f"port {self._sasl_port}: stop it first"
                )
            self._wait_ready(running.pid, timeout_s)
            return self.bootstrap
        for wanted in (self._port, self._sasl_port):
            if wanted is not None and not port_is_free(wanted):
                raise BrokerError(f"port {wanted} on {HOST} is already in use by another process")

        java = find_java()
        lib = resolve_jars(self._pom, self._cache_root)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        controller_port = self._pick_controller_port()
        props = self._data_dir / _PROPS_FILE
        log4j2 = self._data_dir / _LOG4J2_FILE
        _write_atomic(
            props,
            render_server_properties(
                port=self._port,
                controller_port=controller_port,
                data_dir=self._data_dir,
                sasl_port=self._sasl_port,
                sasl_users=self._sasl_users,
            ),
            private=self._sasl_port is not None,  # it holds the PLAIN users' passwords
        )
        _write_atomic(log4j2, render_log4j2_config(self._data_dir))
        classpath = str(lib / "*")
        log_opt = f"-Dlog4j2.configurationFile={log4j2}"
        if not (self._data_dir / "logs" / "meta.properties").exists():
            self._format_storage(java, classpath, log_opt, props)

        cmd = [java, *_JVM_OPTS, log_opt, "-cp", classpath, _MAIN_CLASS, str(props)]
        out_path = self._data_dir / _OUT_FILE
        with out_path.open("wb") as out:
            proc = self._launch(cmd, out, owned=owned)
        self._proc = proc
        _write_atomic(
            self.pid_file,
            json.dumps(
                {
                    "pid": proc.pid,
                    "port": self._port,
                    "sasl_port": self._sasl_port,
                    "controller_port": controller_port,
                    "owned": owned,
                    "data_dir": str(self._data_dir),
                }
            )
            + "\n",
        )
        try:
            self._wait_ready(proc.pid, timeout_s)
        except BrokerError:
            self.stop(timeout_s=10.0)
            raise
        return self.bootstrap

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Stop the broker: SIGTERM its process group, then SIGKILL after ``timeout_s``.

        Does nothing (but tidy the pid file) when no broker from this data dir is running.
        """
        pid = self._read_pid_record()[0]
        if pid is not None and self._is_ours(pid):
            _signal_group(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout_s):
                _signal_group(pid, signal.SIGKILL)
                self._wait_gone(pid, 10.0)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1.0)
            if self._proc.poll() is not None:
                self._proc = None
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()

    def status(self) -> BrokerStatus:
        """Report whether a broker started from this data dir is running, its pid and port."""
        pid, port, sasl_port = self._read_pid_record()
        if pid is not None and self._is_ours(pid):
            return BrokerStatus(True, pid, port or self._port, self._data_dir, sasl_port)
        return BrokerStatus(False, None, self._port, self._data_dir, self._sasl_port)

    # ------------------------------------------------------------------ helpers

    def _read_pid_record(self) -> tuple[int | None, int | None, int | None]:
        try:
            record = json.loads(self.pid_file.read_text())
            sasl_port = record.get("sasl_port")
            return (
                int(record["pid"]),
                int(record["port"]),
                None if sasl_port is None else int(sasl_port),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None, None, None

    def _is_ours(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            # Our own child: whether it runs is poll()'s to say, not /proc's. Popen returns
            # once the exec has begun; the new image's arguments are in /proc a moment later,
            # and a loaded machine read them empty ("exited before it was ready", the broker
            # left running).
            return self._proc.poll() is None
        return _is_our_broker(pid, self._data_dir / _PROPS_FILE)

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc is not None and self._proc.pid == pid:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=0.1)
            if not pid_alive(pid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _pick_controller_port(self) -> int:
        taken = (self._port, self._sasl_port)
        candidate = self._port + 1
        if candidate <= 65535 and candidate not in taken and port_is_free(candidate):
            return candidate
        while True:
            port = free_port()
            if port not in taken:
                return port

    def _format_storage(self, java: str, classpath: str, log_opt: str, props: Path) -> None:
        cmd = [java, log_opt, "-cp", classpath, "kafka.tools.StorageTool", "format"]
        cmd += ["--cluster-id", random_cluster_id(), "--config", str(props), "--ignore-formatted"]
        cmd += scram_credentials(self._sasl_users)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise BrokerError(
                f"formatting the broker storage in {self._data_dir / 'logs'} failed "
                f"(exit {done.returncode}):\n{last_lines(done.stdout + done.stderr, 20)}"
            )

    def _launch(self, cmd: list[str], out: IO[bytes], *, owned: bool) -> subprocess.Popen[bytes]:
        def spawn(preexec: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._data_dir,
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

    def _wait_ready(self, pid: int | None, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if pid is not None and not self._is_ours(pid):
                raise BrokerError(self._failure("exited before it was ready"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(self._failure(f"did not answer within {timeout_s:g} s"))
            listening = all(
                _accepts_connections(p) for p in (self._port, self._sasl_port) if p is not None
            )
            if listening and _answers_metadata(self.bootstrap, min(5.0, max(1.0, remaining))):
                return
            time.sleep(0.25)

    def _failure(self, what: str) -> str:
        lines = _tail(self._data_dir / _OUT_FILE)
        source = _OUT_FILE
        if not lines:
            lines, source = _tail(self._data_dir / SERVER_LOG), SERVER_LOG
        detail = f"\nlast lines of {self._data_dir / source}:\n{lines}" if lines else ""
        return f"the Kafka broker on {self.bootstrap} {what}{detail}"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the JVM leads its own session and process group
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _write_atomic(path: Path, text: str, *, private: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if private:  # readable by its owner only, before the text goes in
        tmp.touch(mode=0o600)
        tmp.chmod(0o600)  # a left-over tmp file may have had wider permissions
    tmp.write_text(text)
    tmp.replace(path)


# --------------------------------------------------------------------------- CLI


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vigil broker", description="Run a local single-node Kafka broker (KRaft)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--port", type=int, default=DEFAULT_PORT, help="PLAINTEXT port")
        sub.add_argument(
            "--data", type=Path, default=None, help="data dir (default ~/.cache/vigil/broker-PORT)"
        )
        return sub

    start = add("start", "start a detached broker and print its bootstrap address")
    start.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_START_TIMEOUT_S,
        metavar="S",
        help="seconds to wait for the broker to answer",
    )
    start.add_argument(
        "--sasl-port",
        type=int,
        default=None,
        metavar="PORT",
        help=f"also listen for SASL_PLAINTEXT clients here ({', '.join(SASL_MECHANISMS)}; "
        f"user {DEV_SASL_USERNAME!r}, password in docs/security.md)",
    )
    add("stop", "stop the broker (a no-op if it is not running)")
    add("status", "exit 0 if the broker runs, 1 if not")
    return parser


def broker_main(argv: list[str]) -> int:
    """Run ``vigil broker start|stop|status``; return the exit code.

    ``start`` prints the bootstrap address on stdout. Errors print ``vigil broker: <message>``
    on stderr and exit 2 (missing tools or configuration) or 1 (the broker failed to start).
    """
    args = _build_parser().parse_args(argv)
    try:
        broker = LocalBroker(
            port=args.port, data_dir=args.data, sasl_port=getattr(args, "sasl_port", None)
        )
        if args.command == "start":
            print(broker.start(timeout_s=args.timeout))
            if broker.sasl_bootstrap is not None:
                print(f"SASL_PLAINTEXT on {broker.sasl_bootstrap}", file=sys.stderr)
            return 0
        if args.command == "stop":
            broker.stop()
            print(f"stopped (port {broker.port}, data {broker.data_dir})")
            return 0
        state = broker.status()
        print(state.describe())
        return 0 if state.running else EXIT_FAILED
    except BrokerError as exc:
        print(f"vigil broker: {exc}", file=sys.stderr)
        return exc.exit_code
