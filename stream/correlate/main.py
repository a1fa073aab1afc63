"""``vigil correlate``: the correlator process, until SIGTERM/SIGINT."""

from __future__ import annotations

from stream.correlate.service import Correlate
from stream.detector.service_run import run_service
from stream.settings import Settings

__all__ = ["run_correlate"]


async def run_correlate(settings: Settings) -> int:
    """Run the correlator until SIGTERM/SIGINT; 0 once it stopped cleanly, 1 when the cluster
    stayed away for ``connect_timeout_s`` at start (retried with backoff meanwhile)."""
    return await run_service(Correlate(settings), settings, "correlate")
