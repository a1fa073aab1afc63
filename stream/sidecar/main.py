"""``vigil sidecar``: the sidecar process, until SIGTERM/SIGINT or, with ``--once``, one
retrain of what the features topic holds."""

from __future__ import annotations

import asyncio

import orjson

from stream.detector.lifelines import exit_with_parent
from stream.detector.shutdown import StopRequest
from stream.settings import Settings
from stream.sidecar.service import Sidecar

__all__ = ["run_sidecar"]


async def run_sidecar(settings: Settings, *, once: bool = False) -> int:
    """``vigil sidecar``: run until SIGTERM/SIGINT (or, with ``once``, read what is there,
    retrain once and exit)."""
    import signal

    sidecar = Sidecar(settings, serve_http=not once)
    loop = asyncio.get_running_loop()
    stop = StopRequest(
        settings.shutdown_timeout_s, "vigil sidecar", sidecar.request_stop, event="sidecar_stopping"
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.request)

    async def work() -> None:
        await sidecar.start()
        if once:
            while await sidecar.step(timeout_s=2.0):
                pass
            decisions = await sidecar.retrain("manual")
            print(orjson.dumps(decisions, option=orjson.OPT_INDENT_2).decode())
        else:
            await sidecar.run()

    exit_with_parent(settings.exit_with_parent)
    try:
        await stop.run(work())
    finally:
        stopped = await sidecar.stop(stop.deadline_or_now())
    return 0 if stopped else 1
