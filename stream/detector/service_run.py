"""A Kafka service's process, from a cluster that may not be up yet to a bounded stop.

``vigil correlate`` and ``vigil notify`` run alike: start (retried with backoff while the
cluster is away, for ``connect_timeout_s``), work until SIGTERM/SIGINT, then stop within
``shutdown_timeout_s`` (:class:`~stream.detector.shutdown.StopRequest`).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

import structlog
from aiokafka.errors import KafkaError

from stream.detector.lifelines import exit_with_parent
from stream.detector.shutdown import StopDeadline, StopRequest
from stream.kafka.retries import start_with_retries
from stream.settings import Settings

__all__ = ["KafkaService", "run_service"]

log = structlog.get_logger(__name__)


class KafkaService(Protocol):
    """What :func:`run_service` runs."""

    async def start(self) -> None: ...

    async def run(self) -> None: ...

    def request_stop(self) -> None: ...

    async def stop(self, deadline: StopDeadline | None = None) -> bool: ...


async def run_service(service: KafkaService, settings: Settings, name: str) -> int:
    """Run ``service`` (``vigil <name>``) until SIGTERM/SIGINT. Returns the exit code: 0 once
    it stopped cleanly, 1 when the cluster stayed away at start or the stop ran out of
    time."""
    loop = asyncio.get_running_loop()
    stop = StopRequest(
        settings.shutdown_timeout_s, f"vigil {name}", service.request_stop, event=f"{name}_stopping"
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.request)

    async def work() -> None:
        await start_with_retries(
            service.start, settings.connect_timeout_s, lambda: stop.deadline is not None
        )
        await service.run()

    exit_with_parent(settings.exit_with_parent)
    code = 0
    try:
        await stop.run(work())
    except (KafkaError, OSError) as exc:
        failed = f"{name}_failed"  # correlate_failed, notify_failed
        log.error(failed, error=str(exc))
        code = 1
    finally:
        if not await service.stop(stop.deadline_or_now()):
            code = 1
    return code
