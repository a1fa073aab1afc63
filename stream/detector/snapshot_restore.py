"""Restoring a newly assigned partition: its newest snapshot that checks out, and where the
partition resumes.

A snapshot resumes only the partition it was taken from: one from another cluster, or whose
offset lies past the partition's end, is rejected (:func:`models.snapshot.check_incarnation`),
and so is one whose last processed record is no longer the record at that offset
(:func:`models.snapshot.check_anchor`: an earlier incarnation of the topic). Each rejection
is counted and logged with why.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Protocol

import structlog

from models.snapshot import SnapshotError, SnapshotMeta, check_anchor, check_incarnation
from stream.detector.partition_models import PartitionModels
from stream.detector.snapshots import LoadedSnapshot, SnapshotStore
from stream.telemetry import SnapshotMetrics

__all__ = ["PartitionLog", "load_snapshot", "resume_offset"]

log = structlog.get_logger(__name__)


class PartitionLog(Protocol):
    """What the cluster says about the partitions of a keeper's topic (the consumer's view)."""

    @property
    def cluster_id(self) -> str | None:
        """The cluster's id (None when it could not be read)."""
        ...

    async def committed(self, partition: int) -> int | None:
        """The group's committed offset of a partition."""
        ...

    async def bounds(self, partition: int) -> tuple[int, int] | None:
        """The partition's log start and end offsets (None when they could not be read)."""
        ...

    async def record_at(self, partition: int, offset: int) -> tuple[int, int] | None:
        """The timestamp (ms) and value CRC-32 of the record at ``offset`` (None when it
        could not be read)."""
        ...


async def load_snapshot(
    store: SnapshotStore,
    models: PartitionModels,
    metrics: SnapshotMetrics,
    topic: str,
    partition: int,
    source: PartitionLog,
    bounds: tuple[int, int] | None,
) -> LoadedSnapshot | None:
    """The newest snapshot of ``topic``'s ``partition`` that checks out, None if none does.

    Args:
        store: Where snapshots are kept.
        models: What a partition's state is (its configuration ids and its check).
        metrics: Snapshot counters (rejections, restore time).
        topic: The input topic.
        partition: The partition.
        source: The cluster's view of the partitions.
        bounds: The partition's log start and end offsets, if they could be read.
    """
    started = time.perf_counter()
    end = bounds[1] if bounds is not None else None

    def belongs(meta: SnapshotMeta) -> None:
        check_incarnation(meta, source.cluster_id, end)

    def rejected(path: Path, error: SnapshotError) -> None:
        metrics.rejected.labels(reason=error.reason).inc()
        log.warning(
            "snapshot_rejected",
            topic=topic,
            partition=partition,
            path=str(path),
            reason=error.reason,
            error=error.detail[:200],
        )

    loaded = await asyncio.to_thread(
        store.load,
        topic,
        partition,
        config_ids=models.config_ids(),
        on_reject=rejected,
        validate=models.check,
        belongs=belongs,
    )
    if loaded is not None and loaded.meta.anchor is not None:
        found = await source.record_at(partition, loaded.meta.anchor[0])
        try:
            check_anchor(loaded.meta, found)
        except SnapshotError as error:  # an earlier incarnation: older ones are too
            rejected(loaded.path, error)
            loaded = None
    metrics.restore_seconds.observe(time.perf_counter() - started)
    return loaded


def resume_offset(
    loaded: LoadedSnapshot, topic: str, partition: int, bounds: tuple[int, int] | None
) -> int | None:
    """Where ``partition`` resumes from ``loaded``: the snapshot's own offset, or the log's
    start when retention deleted what followed it (None: the snapshot has no offset for it).
    """
    offset = loaded.meta.offsets.get(f"{topic}:{partition}")
    if offset is None:
        return None
    if bounds is not None and offset < bounds[0]:
        log.warning(
            "snapshot_offset_deleted",
            topic=topic,
            partition=partition,
            offset=offset,
            log_start=bounds[0],
        )
        offset = bounds[0]
    return offset
