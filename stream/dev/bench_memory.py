"""``vigil bench --only memory``: what holding many service models costs one process.

A fresh process replays ``--memory-services`` services, each past its first HST window and its
warm-up; the figures are its RSS growth in total and per 1,000 services, and the bytes of the
models' arrays (allocated; RSS counts only the pages touched so far).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from models.anomaly import AnomalyConfig
from stream.core.pipeline import MetricPipeline
from stream.dev.bench_figures import MIB, Figure, Progress
from stream.dev.simulate import payloads_by_block
from stream.offline.replay import replay
from stream.settings import Settings

__all__ = ["MemoryFootprint", "memory_figures", "memory_footprint"]


@dataclass(frozen=True, slots=True)
class MemoryFootprint:
    """What holding ``services`` service models costs one process.

    Attributes:
        services: Service models held at the end.
        events_per_service: Events each service learnt.
        rss_before: Resident bytes before the pipeline was created (imports done).
        rss_after: Resident bytes after the replay, garbage collected.
        array_bytes: Bytes of the models' arrays (``MetricPipeline.nbytes``).
    """

    services: int
    events_per_service: int
    rss_before: int
    rss_after: int
    array_bytes: int

    @property
    def rss_growth(self) -> int:
        """Resident bytes the models added."""
        return self.rss_after - self.rss_before


def memory_footprint(
    config: AnomalyConfig, services: int, events_per_service: int, batch_size: int
) -> MemoryFootprint:
    """Replay ``events_per_service`` events for each of ``services`` services; measure RSS.

    Run it in a fresh process (see ``_memory_in_subprocess``) so that neither earlier
    measurements' garbage nor their freed memory blurs the growth.
    """
    import psutil

    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    pipeline = MetricPipeline(config)
    lines = payloads_by_block(services, events_per_service)
    for alert in replay(lines, pipeline, batch_size=batch_size):
        del alert
    gc.collect()
    if len(pipeline) != services:
        raise RuntimeError(f"expected {services} service models, got {len(pipeline)}")
    return MemoryFootprint(
        services=services,
        events_per_service=events_per_service,
        rss_before=before,
        rss_after=process.memory_info().rss,
        array_bytes=pipeline.nbytes(),
    )


def _memory_in_subprocess(
    config: AnomalyConfig, services: int, events_per_service: int, batch_size: int
) -> MemoryFootprint:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        job = pool.submit(memory_footprint, config, services, events_per_service, batch_size)
        return job.result()


def memory_figures(args: argparse.Namespace, settings: Settings, say: Progress) -> list[Figure]:
    """RSS growth and model arrays for ``--memory-services`` services, in a fresh process."""
    config = settings.anomaly_config()
    per_service = args.memory_events or max(config.window_size, config.warmup_events) + 50
    say(f"memory: {args.memory_services} services x {per_service} events")
    m = _memory_in_subprocess(config, args.memory_services, per_service, settings.max_batch)
    per_1000 = 1000 / m.services / MIB
    note = f"{m.services} services, {m.events_per_service} events each"
    return [
        Figure("memory_rss_total", "RSS growth, total", m.rss_growth / MIB, "MiB", note),
        Figure(
            "memory_rss_process",
            "process RSS at the end",
            m.rss_after / MIB,
            "MiB",
            "target ≤ 3 GB at 10,000 services",
        ),
        Figure(
            "memory_rss_per_1000",
            "RSS growth per 1,000 services",
            m.rss_growth * per_1000,
            "MiB",
            note,
        ),
        Figure(
            "memory_arrays_total",
            "model arrays, total",
            m.array_bytes / MIB,
            "MiB",
            "scaler, HST, threshold (allocated; RSS counts touched pages)",
        ),
        Figure(
            "memory_arrays_per_1000",
            "model arrays per 1,000 services",
            m.array_bytes * per_1000,
            "MiB",
            note,
        ),
    ]
