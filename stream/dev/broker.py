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
``await asyncio.to_thread(broker.start, owned=True)``. The JVM itself is
:mod:`stream.dev.broker_jvm`'s, the probes :mod:`stream.dev.broker_probe`'s, and the
``vigil broker`` command :mod:`stream.dev.broker_cli`'s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stream.detector.lifelines import pid_alive
from stream.dev.broker_config import (
    DEV_SASL_PASSWORD,
    DEV_SASL_USERNAME,
    HOST,
    SASL_MECHANISMS,
    check_sasl_users,
    random_cluster_id,
    render_log4j2_config,
    render_server_properties,
)
from stream.dev.broker_files import (
    OUT_FILE,
    PID_FILE,
    PROPS_FILE,
    last_output,
    read_pid_record,
    write_config,
    write_pid_record,
)
from stream.dev.broker_jvm import (
    JVM_OPTS,
    MAIN_CLASS,
    format_storage,
    is_our_broker,
    launch,
    signal_group,
)
from stream.dev.broker_probe import accepts_connections, answers_metadata, free_port, port_is_free
from stream.dev.broker_setup import (
    BrokerError,
    default_cache_root,
    find_java,
    find_pom,
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
        return self._data_dir / PID_FILE

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
            self._check_running(running)
            self._wait_ready(running.pid, timeout_s)
            return self.bootstrap
        for wanted in (self._port, self._sasl_port):
            if wanted is not None and not port_is_free(wanted):
                raise BrokerError(f"port {wanted} on {HOST} is already in use by another process")

        java = find_java()
        lib = resolve_jars(self._pom, self._cache_root)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        controller_port = self._pick_controller_port()
        props, log4j2 = write_config(
            self._data_dir,
            port=self._port,
            controller_port=controller_port,
            sasl_port=self._sasl_port,
            sasl_users=self._sasl_users,
        )
        classpath = str(lib / "*")
        log_opt = f"-Dlog4j2.configurationFile={log4j2}"
        if not (self._data_dir / "logs" / "meta.properties").exists():
            format_storage(java, classpath, log_opt, props, self._sasl_users, self._data_dir)

        cmd = [java, *JVM_OPTS, log_opt, "-cp", classpath, MAIN_CLASS, str(props)]
        with (self._data_dir / OUT_FILE).open("wb") as out:
            proc = launch(cmd, out, self._data_dir, owned=owned)
        self._proc = proc
        write_pid_record(
            self.pid_file,
            pid=proc.pid,
            port=self._port,
            sasl_port=self._sasl_port,
            controller_port=controller_port,
            owned=owned,
            data_dir=self._data_dir,
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
        pid = read_pid_record(self.pid_file)[0]
        if pid is not None and self._is_ours(pid):
            signal_group(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout_s):
                signal_group(pid, signal.SIGKILL)
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
        pid, port, sasl_port = read_pid_record(self.pid_file)
        if pid is not None and self._is_ours(pid):
            return BrokerStatus(True, pid, port or self._port, self._data_dir, sasl_port)
        return BrokerStatus(False, None, self._port, self._data_dir, self._sasl_port)

    # ------------------------------------------------------------------ helpers

    def _check_running(self, running: BrokerStatus) -> None:
        """A broker already running from this data dir must be the one asked for."""
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

    def _is_ours(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            # Our own child: whether it runs is poll()'s to say, not /proc's. Popen returns
            # once the exec has begun; the new image's arguments are in /proc a moment later,
            # and a loaded machine read them empty ("exited before it was ready", the broker
            # left running).
            return self._proc.poll() is None
        return is_our_broker(pid, self._data_dir / PROPS_FILE)

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

    def _wait_ready(self, pid: int | None, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if pid is not None and not self._is_ours(pid):
                raise BrokerError(self._failure("exited before it was ready"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerError(self._failure(f"did not answer within {timeout_s:g} s"))
            listening = all(
                accepts_connections(p) for p in (self._port, self._sasl_port) if p is not None
            )
            if listening and answers_metadata(self.bootstrap, min(5.0, max(1.0, remaining))):
                return
            time.sleep(0.25)

    def _failure(self, what: str) -> str:
        source, lines = last_output(self._data_dir)
        detail = f"\nlast lines of {source}:\n{lines}" if lines else ""
        return f"the Kafka broker on {self.bootstrap} {what}{detail}"
