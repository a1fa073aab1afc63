"""Writing a captured snapshot to disk off the event loop, and announcing it.

The keeper (:class:`~stream.detector.rebalance.PartitionSnapshots`) captures a partition's
state between batches; the writer serializes it and writes it in a worker thread, counts and
logs the outcome, and publishes the pointer to the newest snapshot on the compacted models
topic (key ``snapshot/<topic>/<partition>``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from models.snapshot import SnapshotMeta
from models.state_codec import EncodedState
from stream.detector.snapshots import SnapshotStore
from stream.telemetry import SnapshotMetrics

__all__ = ["PointerSender", "SnapshotWriter"]

log = structlog.get_logger(__name__)

PointerSender = Callable[[bytes, dict[str, Any]], Awaitable[None]]
"""Publishes a snapshot pointer (key, value) on the models topic."""


class SnapshotWriter:
    """Writes captured snapshots and publishes their pointers.

    Args:
        store: Where snapshots are kept.
        metrics: Snapshot counters and gauges.
        send_pointer: Publishes the pointer to a partition's newest snapshot (None: none is).
    """

    def __init__(
        self, store: SnapshotStore, metrics: SnapshotMetrics, send_pointer: PointerSender | None
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._send_pointer = send_pointer
        self._pointers: set[asyncio.Task[None]] = set()
        """Pointer sends in flight: nobody waits for them (a stop during an outage would)."""

    async def write(self, meta: SnapshotMeta, captured: EncodedState, encode_s: float) -> bool:
        """Write a snapshot captured in ``encode_s`` seconds; returns whether it is on disk."""
        started = time.perf_counter()
        try:
            path, size = await asyncio.to_thread(self._store.write_captured, meta, captured)
        except (OSError, ValueError) as exc:  # a full disk; a value JSON refuses
            self._metrics.write_failures.inc()
            log.error("snapshot_failed", topic=meta.topic, partition=meta.partition, error=str(exc))
            return False
        elapsed_s = encode_s + time.perf_counter() - started
        self._metrics.written.inc()
        self._metrics.bytes.set(size)
        self._metrics.write_seconds.observe(elapsed_s)
        log.info(
            "snapshot_saved",
            topic=meta.topic,
            partition=meta.partition,
            offset=meta.offsets,
            services=len(meta.services),
            bytes=size,
            seconds=round(elapsed_s, 4),
        )
        if self._send_pointer is not None:
            pointer = {**_pointer_fields(meta), "path": str(path), "bytes": size}
            task = asyncio.create_task(self._point(meta.topic, meta.partition, pointer))
            self._pointers.add(task)
            task.add_done_callback(self._pointers.discard)
        return True

    async def _point(self, topic: str, partition: int, pointer: dict[str, Any]) -> None:
        """Announce a snapshot on disk; the snapshot is what counts, the pointer is a
        convenience, so it is not waited for (the producer's stop flushes it, or drops it
        when the broker is away)."""
        assert self._send_pointer is not None
        try:
            await self._send_pointer(f"snapshot/{topic}/{partition}".encode(), pointer)
        except Exception as exc:
            log.warning("snapshot_pointer_failed", partition=partition, error=str(exc))


def _pointer_fields(meta: SnapshotMeta) -> dict[str, Any]:
    return {
        "topic": meta.topic,
        "partition": meta.partition,
        "offsets": meta.offsets,
        "created_at": meta.created_at,
        "schema_version": meta.schema_version,
        "services": len(meta.services),
    }
