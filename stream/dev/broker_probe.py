"""Probes of a local broker on 127.0.0.1: free ports, a listening socket, and whether the
broker answers a metadata request (listing itself as a live broker)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

from stream.dev.broker_config import HOST

__all__ = ["accepts_connections", "answers_metadata", "free_port", "port_is_free"]


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


def accepts_connections(port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts a TCP connection on 127.0.0.1:port now."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s):
            return True
    except OSError:
        return False


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


def answers_metadata(bootstrap: str, timeout_s: float = 5.0) -> bool:
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
