"""Each owned partition's model state: snapshotted, restored on assignment, handed over.

A detector owns the models of the services whose events arrive on its partitions of an input
topic (metrics, logs): one keeper per topic, with a
:class:`~stream.detector.partition_models.PartitionModels` adapter saying what a partition's
state is (:mod:`stream.detector.partition_models`; the log side's is in
:mod:`stream.detector.log_stage`). The keeper remembers which partition each service came on and the
next offset of each partition whose output is acknowledged, and:

- **snapshots** a partition's state (see :mod:`models.snapshot`) every ``interval_s``, one
  partition per batch so a detector with many partitions never stalls for all at once, and
  whenever the partition is revoked or the detector stops. The state is captured as plain
  data between batches (so it matches its offset exactly: :func:`models.snapshot.capture_state`)
  and serialized and written to disk off the event loop; the
  pointer to the newest snapshot is published on the compacted models topic
  (:mod:`stream.detector.snapshot_writer`);
- **restores** a newly assigned partition from its newest snapshot that checks out (one that
  is corrupt or incompatible is counted, logged and skipped:
  :mod:`stream.detector.snapshot_restore`) and tells the consumer where to
  resume: the snapshot's own offset, so the state and the input agree exactly. Records between
  that offset and the group's committed offset were processed before and their alerts
  acknowledged: they are learned again but their alerts are not sent twice (:meth:`replaying`);
- **hands over** a revoked partition: its snapshot is written (the new owner, which runs its
  assignment only after every member ran its revocation, loads it), and its models are
  dropped once the new assignment shows the partition went elsewhere. A partition that comes
  straight back (eager rebalancing revokes everything) keeps its models in memory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog

from models.snapshot import SnapshotMeta, changed_families
from models.state_codec import EncodedState, EncodeError
from stream.detector.partition_models import PartitionModels
from stream.detector.snapshot_restore import PartitionLog, load_snapshot, resume_offset
from stream.detector.snapshot_writer import PointerSender, SnapshotWriter
from stream.detector.snapshots import LoadedSnapshot, SnapshotStore
from stream.kafka.records import Record
from stream.schemas import Evidence
from stream.telemetry import SnapshotMetrics

__all__ = ["PartitionSnapshots"]

log = structlog.get_logger(__name__)


class PartitionSnapshots:
    """Snapshots and restores the state of one input topic's partitions a detector owns.

    Args:
        store: Where snapshots are kept.
        models: What a partition's state is.
        metrics: Snapshot counters and gauges.
        topic: The input topic.
        interval_s: A partition is snapshotted at least this often while it learns.
        send_pointer: Publishes the pointer to a partition's newest snapshot.
        monotonic: The clock for intervals (injected in tests).
    """

    def __init__(
        self,
        store: SnapshotStore,
        models: PartitionModels,
        metrics: SnapshotMetrics,
        *,
        topic: str,
        interval_s: float,
        send_pointer: PointerSender | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.models = models
        self.topic = topic
        self.interval_s = interval_s
        self._metrics = metrics
        self._writer = SnapshotWriter(store, metrics, send_pointer)
        self._monotonic = monotonic
        self._owner: dict[str, int] = {}
        """Service → the partition its events last came on."""
        self._positions: dict[int, int] = {}
        """Partition → next offset, every record before it processed and acknowledged."""
        self._snapshotted: dict[int, int] = {}
        """Partition → the offset of its newest snapshot."""
        self._written_at: dict[int, float] = {}
        self._created_at: dict[int, float] = {}
        self._owned: set[int] = set()
        self._parked: set[int] = set()
        """Revoked, snapshotted, models still held until the assignment says where they go."""
        self._replay_until: dict[int, int] = {}
        self._writes: dict[int, asyncio.Task[None]] = {}
        self._cluster_id: str | None = None
        """The cluster of the last assignment: written into snapshots."""
        self._anchors: dict[int, list[int]] = {}
        """Partition → its last processed record: offset, timestamp, value CRC-32."""

    @property
    def owned(self) -> list[int]:
        """The partitions of the topic this detector owns."""
        return sorted(self._owned)

    # -- processing --------------------------------------------------------------------------

    def processed(
        self, services: Sequence[str], sources: Sequence[Record], records: Sequence[Record]
    ) -> None:
        """A batch's output is acknowledged: ``services[i]`` came in ``sources[i]``; the
        positions move past every record of the batch (dead letters included)."""
        owner = self._owner
        for service, source in zip(services, sources, strict=True):
            owner[service] = source.partition
        positions = self._positions
        last: dict[int, Record] = {}
        for record in records:
            if record.offset >= positions.get(record.partition, -1):
                positions[record.partition] = record.offset + 1
                last[record.partition] = record
        for partition, record in last.items():
            self._anchors[partition] = _anchor_of(record)
        if self._replay_until:
            replayed = sum(1 for r in records if r.offset < self._replay_until.get(r.partition, -1))
            self._metrics.replayed.inc(replayed)
            for partition, until in list(self._replay_until.items()):
                if positions.get(partition, 0) >= until:
                    del self._replay_until[partition]
                    log.info("snapshot_replay_done", topic=self.topic, partition=partition)

    def replaying(self, record: Record | Evidence) -> bool:
        """Whether the partition of a record of this topic (or of the event an alert points
        at) is being replayed: its records up to the committed offset were processed before
        the restore, and every output they produce was acknowledged (or, exactly once,
        committed) then.

        The detector hands a replayed partition over in batches that end at the committed
        offset (:meth:`replay_limit`), so what a replay batch produces is suppressed as a
        whole, and what the first batch past it produces is sent, even an alert that points
        back at an earlier event (a risk step closed by the next record): its first sending
        was never acknowledged, or was aborted."""
        if record.topic != self.topic:
            return False
        until = self._replay_until.get(record.partition)
        return until is not None and self._positions.get(record.partition, 0) < until

    def replay_limit(self, partition: int) -> int | None:
        """The committed offset a restored partition is being replayed up to, if it is."""
        return self._replay_until.get(partition)

    async def snapshot_due(self) -> None:
        """Snapshot the partition whose newest snapshot is oldest, if it is due and moved."""
        now = self._monotonic()
        due = [
            p
            for p in self._owned
            if self._positions.get(p, -1) > self._snapshotted.get(p, -1)
            and now - self._written_at.get(p, -float("inf")) >= self.interval_s
            and p not in self._writes
        ]
        if due:
            oldest = min(due, key=lambda p: self._written_at.get(p, -float("inf")))
            self._start_write(oldest)
        self._refresh_age()

    async def snapshot_now(self, partitions: Iterable[int]) -> None:
        """Snapshot these partitions (if they moved) and wait until all are on disk."""
        for partition in partitions:
            if self._positions.get(partition, -1) > self._snapshotted.get(partition, -1):
                await self._wait(partition)
                self._start_write(partition)
        await self.flush()

    async def flush(self) -> None:
        """Wait for every snapshot being written."""
        while self._writes:
            await asyncio.gather(*self._writes.values(), return_exceptions=True)

    def _start_write(self, partition: int) -> None:
        services = sorted(s for s, p in self._owner.items() if p == partition)
        offset = self._positions[partition]
        key = f"{self.topic}:{partition}"
        meta = SnapshotMeta.create(
            topic=self.topic,
            partition=partition,
            offsets={key: offset},
            config_ids=self.models.config_ids(),
            services=services,
            cluster_id=self._cluster_id,
            anchor=_anchor_at(self._anchors.get(partition), offset),
        )
        started = time.perf_counter()
        # Captured here, between batches: the state is exactly that of ``offset``.
        # Serializing, checksum and the write happen in a worker thread.
        try:
            captured = self.store.capture(self.models.export(partition, services))
        except EncodeError as exc:  # a class missing from the registry: a bug, not a stop
            self._metrics.write_failures.inc()
            self._written_at[partition] = self._monotonic()  # tried again at the next turn
            log.error("snapshot_failed", topic=self.topic, partition=partition, error=str(exc))
            return
        encode_s = time.perf_counter() - started
        self._snapshotted[partition] = offset
        self._written_at[partition] = self._monotonic()
        task = asyncio.create_task(self._write(meta, captured, encode_s))
        self._writes[partition] = task
        task.add_done_callback(lambda _: self._writes.pop(partition, None))

    async def _write(self, meta: SnapshotMeta, captured: EncodedState, encode_s: float) -> None:
        if await self._writer.write(meta, captured, encode_s):
            self._created_at[meta.partition] = time.time()
        else:
            self._snapshotted.pop(meta.partition, None)  # try again at the next turn

    async def _wait(self, partition: int) -> None:
        task = self._writes.get(partition)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    def _refresh_age(self) -> None:
        if not self._owned:
            return
        now = time.time()
        ages = [now - self._created_at[p] for p in self._owned if p in self._created_at]
        if ages:
            self._metrics.age.set(max(ages))

    # -- rebalancing -------------------------------------------------------------------------

    async def revoked(self, partitions: Iterable[int]) -> None:
        """Partitions taken away: snapshot them now; their models wait for the assignment."""
        mine = [p for p in partitions if p in self._owned]
        await self.snapshot_now(mine)
        self._owned.difference_update(mine)
        self._parked.update(mine)

    async def assigned(self, partitions: Iterable[int], source: PartitionLog) -> dict[int, int]:
        """Partitions given to this detector; returns where each restored one resumes.

        A snapshot resumes only the partition it was taken from: one from another cluster, or
        whose offset lies past the partition's end (the topic was re-created, or the broker is
        a fresh one under the same cluster id), is rejected, and the partition starts fresh
        from the group's committed offset or the reset policy. One whose offset the log no
        longer holds (retention deleted what followed it) resumes at the log's start.

        Args:
            partitions: The partitions of this topic now assigned (old ones included).
            source: The cluster's view of the partitions.
        """
        self._cluster_id = source.cluster_id
        assigned = set(partitions)
        gone = self._parked - assigned
        self.forget(gone)
        resume: dict[int, int] = {}
        for partition in sorted(assigned):
            if partition in self._parked or partition in self._owned:
                if partition in self._positions:  # kept in memory: resume where it stands
                    resume[partition] = self._positions[partition]
                continue
            offset = await self._restore(partition, source)
            if offset is not None:
                resume[partition] = offset
        self._parked.clear()
        self._owned = assigned
        self._refresh_age()
        return resume

    async def _restore(self, partition: int, source: PartitionLog) -> int | None:
        """Restore a newly assigned partition from its newest snapshot that checks out;
        returns where it resumes (None: no snapshot, it starts fresh)."""
        bounds = await source.bounds(partition)
        loaded = await load_snapshot(
            self.store, self.models, self._metrics, self.topic, partition, source, bounds
        )
        if loaded is None:
            return None
        offset = resume_offset(loaded, self.topic, partition, bounds)
        if offset is None:
            return None
        models = self._install(partition, loaded)
        self._positions[partition] = self._snapshotted[partition] = offset
        self._created_at[partition] = dt.datetime.fromisoformat(loaded.meta.created_at).timestamp()
        self._written_at[partition] = self._monotonic()
        done = await source.committed(partition)
        if done is not None and done > offset:
            self._replay_until[partition] = done
        self._metrics.restored.inc()
        log.info(
            "snapshot_restored",
            topic=self.topic,
            partition=partition,
            offset=offset,
            committed=done,
            services=len(models),
            path=str(loaded.path),
            created_at=loaded.meta.created_at,
        )
        return offset

    def _install(self, partition: int, loaded: LoadedSnapshot) -> list[str]:
        """Hand a restored state to the models, but for the families whose configuration
        changed since (they start fresh); returns its services."""
        stale = changed_families(loaded.meta, self.models.config_ids())
        if stale:
            log.warning(
                "snapshot_families_restarted",
                topic=self.topic,
                partition=partition,
                families=stale,
                reason="config_changed",
            )
        models = self.models.install(partition, loaded.state, frozenset(stale))
        for service in models:
            self._owner[service] = partition
        return models

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the state of partitions another detector owns now."""
        gone = set(partitions)
        if not gone:
            return
        services = [s for s, p in self._owner.items() if p in gone]
        self.models.forget(sorted(gone), services)
        for service in services:
            del self._owner[service]
        for partition in gone:
            self._anchors.pop(partition, None)
            for table in (self._positions, self._snapshotted, self._written_at, self._created_at):
                table.pop(partition, None)
            self._replay_until.pop(partition, None)
            self._owned.discard(partition)
        log.info("partition_state_dropped", topic=self.topic, partitions=sorted(gone))

    def describe_positions(self) -> dict[int, int]:
        """Owned partition → the next offset to process (every record before it done)."""
        return {p: self._positions[p] for p in sorted(self._owned) if p in self._positions}

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` shows about snapshots."""
        now = time.time()
        return {
            "directory": str(self.store.root),
            "interval_s": self.interval_s,
            "partitions": {
                str(p): {
                    "position": self._positions.get(p),
                    "snapshot_offset": self._snapshotted.get(p),
                    "snapshot_age_s": (
                        round(now - self._created_at[p], 3) if p in self._created_at else None
                    ),
                    "replaying_until": self._replay_until.get(p),
                }
                for p in sorted(self._owned)
            },
        }


def _anchor_of(record: Record) -> list[int]:
    """A record as a snapshot's anchor: offset, timestamp (ms), CRC-32 of its value."""
    return [record.offset, record.timestamp, zlib.crc32(record.value or b"")]


def _anchor_at(anchor: list[int] | None, offset: int) -> list[int] | None:
    """The anchor if it is the record just before ``offset`` (else None: not checked)."""
    return anchor if anchor is not None and anchor[0] == offset - 1 else None
