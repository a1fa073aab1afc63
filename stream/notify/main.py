"""``vigil notify``: the notifier process, from a cluster that may not be up yet to a
bounded stop."""

from __future__ import annotations

import asyncio

import structlog
from aiokafka.errors import KafkaError

from stream.detector.lifelines import exit_with_parent
from stream.detector.shutdown import StopRequest
from stream.kafka.retries import start_with_retries
from stream.notify.service import Notifier
from stream.settings import Settings

__all__ = ["run_notify"]

log = structlog.get_logger(__name__)


async def run_notify(settings: Settings) -> int:
    """``vigil notify``: run until SIGTERM/SIGINT, then stop cleanly. Returns the exit code."""
    import signal

    notifier = Notifier(settings)
    loop = asyncio.get_running_loop()
    stop = StopRequest(
        settings.shutdown_timeout_s, "vigil notify", notifier.request_stop, event="notify_stopping"
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.request)

    async def work() -> None:
        await start_with_retries(
            notifier.start, settings.connect_timeout_s, lambda: stop.deadline is not None
        )
        await notifier.run()

    exit_with_parent(settings.exit_with_parent)
    code = 0
    try:
        await stop.run(work())
    except (KafkaError, OSError) as exc:
        log.error("notify_failed", error=str(exc))
        code = 1
    finally:
        if not await notifier.stop(stop.deadline_or_now()):
            code = 1
    return code
