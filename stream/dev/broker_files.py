"""The files in a local broker's data dir: its configuration (``server.properties``,
``log4j2.xml``), the pid record (``broker.pid``) that lets another process find the broker, and
the last lines of its output for error messages. Each is written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from stream.dev.broker_config import SERVER_LOG, render_log4j2_config, render_server_properties
from stream.dev.broker_setup import last_lines

__all__ = [
    "LOG4J2_FILE",
    "OUT_FILE",
    "PID_FILE",
    "PROPS_FILE",
    "last_output",
    "read_pid_record",
    "write_config",
    "write_pid_record",
]

PID_FILE = "broker.pid"
OUT_FILE = "broker.out"
PROPS_FILE = "server.properties"
LOG4J2_FILE = "log4j2.xml"


def write_config(
    data_dir: Path,
    *,
    port: int,
    controller_port: int,
    sasl_port: int | None,
    sasl_users: Mapping[str, str],
) -> tuple[Path, Path]:
    """Write ``server.properties`` and ``log4j2.xml`` into ``data_dir``; return both paths."""
    props = data_dir / PROPS_FILE
    log4j2 = data_dir / LOG4J2_FILE
    _write_atomic(
        props,
        render_server_properties(
            port=port,
            controller_port=controller_port,
            data_dir=data_dir,
            sasl_port=sasl_port,
            sasl_users=sasl_users,
        ),
        private=sasl_port is not None,  # it holds the PLAIN users' passwords
    )
    _write_atomic(log4j2, render_log4j2_config(data_dir))
    return props, log4j2


def write_pid_record(
    pid_file: Path,
    *,
    pid: int,
    port: int,
    sasl_port: int | None,
    controller_port: int,
    owned: bool,
    data_dir: Path,
) -> None:
    """Record a started broker: its pid, ports, ownership and data dir (JSON)."""
    _write_atomic(
        pid_file,
        json.dumps(
            {
                "pid": pid,
                "port": port,
                "sasl_port": sasl_port,
                "controller_port": controller_port,
                "owned": owned,
                "data_dir": str(data_dir),
            }
        )
        + "\n",
    )


def read_pid_record(pid_file: Path) -> tuple[int | None, int | None, int | None]:
    """The recorded pid, port and SASL port (all None without a readable record)."""
    try:
        record = json.loads(pid_file.read_text())
        sasl_port = record.get("sasl_port")
        return (
            int(record["pid"]),
            int(record["port"]),
            None if sasl_port is None else int(sasl_port),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, None, None


def last_output(data_dir: Path) -> tuple[Path, str]:
    """The last lines the JVM wrote (``broker.out``, else ``server.log``), and their file."""
    lines = _tail(data_dir / OUT_FILE)
    source = OUT_FILE
    if not lines:
        lines, source = _tail(data_dir / SERVER_LOG), SERVER_LOG
    return data_dir / source, lines


def _tail(path: Path, count: int = 20) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            return last_lines(handle.read().decode(errors="replace"), count)
    except OSError:
        return ""


def _write_atomic(path: Path, text: str, *, private: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if private:  # readable by its owner only, before the text goes in
        tmp.touch(mode=0o600)
        tmp.chmod(0o600)  # a left-over tmp file may have had wider permissions
    tmp.write_text(text)
    tmp.replace(path)
