"""``vigil notify``: the notifier process, from a cluster that may not be up yet to a
bounded stop."""

from __future__ import annotations

from stream.detector.service_run import run_service
from stream.notify.service import Notifier
from stream.settings import Settings

__all__ = ["run_notify"]


async def run_notify(settings: Settings) -> int:
    """``vigil notify``: run until SIGTERM/SIGINT, then stop cleanly. Returns the exit code."""
    return await run_service(Notifier(settings), settings, "notify")
