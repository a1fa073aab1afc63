"""``vigil correlate``: the correlator process, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiokafka.errors import KafkaError

from stream.correlate.service import Correlate
from stream.detector.lifelines import exit_with_parent
from stream.detector.shutdown import StopRequest
from stream.kafka.retries import start_with_retries
from stream.settings import Settings

__all__ = ["run_correlate"]

log = structlog.get_logger(__name__)


async def run_correlate(settings: Settings) -> int:
    """Run the correlator until SIGTERM/SIGINT; 0 once it stopped cleanly, 1 when the cluster
    stayed away for ``connect_timeout_s`` at start (retried with backoff meanwhile)."""
    service = Correlate(settings)
    loop = asyncio.get_running_loop()
    stop = StopRequest(
        settings.shutdown_timeout_s,
        "vigil correlate",
        service.request_stop,
        event="correlate_stopping",
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
        log.error("correlate_failed", error=str(exc))
        code = 1
    finally:
        await service.stop()
    return code
