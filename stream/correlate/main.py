"""``vigil correlate``: the correlator process, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from stream.correlate.service import Correlate
from stream.detector.lifelines import exit_with_parent
from stream.detector.shutdown import StopRequest
from stream.settings import Settings

__all__ = ["run_correlate"]


async def run_correlate(settings: Settings) -> int:
    """Run the correlator until SIGTERM/SIGINT; 0 once it stopped cleanly."""
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
        await service.start()
        await service.run()

    exit_with_parent(settings.exit_with_parent)
    try:
        await stop.run(work())
    finally:
        await service.stop()
    return 0
