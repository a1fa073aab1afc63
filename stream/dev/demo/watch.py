"""What the demo reads from its children over HTTP: the detector's throughput, lag and
warm-up, the sidecar's models; and whether either has died."""

from __future__ import annotations

import time
from typing import Any

from stream.dev.demo.processes import VigilProcess, detector_figures, sidecar_models
from stream.dev.demo.view import LiveStats

__all__ = ["ChildWatch"]


class ChildWatch:
    """The detector and the sidecar of a demo run, read into ``stats``.

    Args:
        stats: Updated by :meth:`refresh`.
        warmup_total: Metric events the anomaly models need in all before they may alert
            (services times warm-up events): ``stats.warm`` is the share scored.
    """

    def __init__(self, stats: LiveStats, warmup_total: int) -> None:
        self.stats = stats
        self.warmup_total = warmup_total
        self.detector: VigilProcess | None = None
        self.sidecar: VigilProcess | None = None
        self.metrics_scored = 0.0
        self.champions: set[tuple[str, str]] = set()
        """Every (group, champion version) the sidecar has announced."""
        self._last_scrape: tuple[float, float] | None = None

    def dead(self) -> str | None:
        """Why a child has exited, if one has."""
        for process in (self.detector, self.sidecar):
            if process is not None and process.exit_code is not None:
                return (
                    f"vigil {process.command} exited with {process.exit_code} "
                    f"(its log: {process.log_path}):\n{process.log_tail()}"
                )
        return None

    async def refresh(self) -> None:
        """Read both children's figures (what does not answer keeps its last figures)."""
        if self.detector is not None:
            page = await self.detector.get("/metrics")
            if page is not None:
                self._note_metrics(page.decode())
        if self.sidecar is not None:
            described = await self.sidecar.get_json("/models")
            if described is not None:
                self._note_models(described)

    async def stop(self, timeout_s: float) -> None:
        """Stop both (each snapshots and commits), the detector first."""
        for process in (self.detector, self.sidecar):
            if process is not None:
                await process.stop(timeout_s)

    def _note_metrics(self, page: str) -> None:
        stats = self.stats
        scored, self.metrics_scored, stats.lag = detector_figures(page)
        now = time.monotonic()
        if self._last_scrape is not None and now > self._last_scrape[0]:
            stats.scored_per_s = (scored - self._last_scrape[1]) / (now - self._last_scrape[0])
        self._last_scrape = (now, scored)
        stats.scored = scored
        total = self.warmup_total
        stats.warm = min(1.0, self.metrics_scored / total) if total else 1.0

    def _note_models(self, described: dict[str, Any]) -> None:
        self.stats.models = sidecar_models(described)
        self.champions.update((g, champion) for g, champion, _ in self.stats.models if champion)
