"""The scoped alerts partitions this correlator owns: restored, read, snapshotted.

Getting a partition: its newest snapshot (if any checks out) gives the state up to an offset;
the records from there up to the group's committed offset are read again with a separate
consumer, and what they cause is dropped (it was published before that commit). From the
committed offset on, the group consumer's records are live. Losing one: a snapshot at the
committed offset, so the next owner reads little again. Without any snapshot the partition is
read from its beginning (the topic keeps two weeks of alerts: a few thousand records).
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from models.snapshot import SCHEMA_VERSION, SnapshotError, SnapshotMeta, library_versions
from models.state_codec import ClassRegistry
from stream.core.problems.correlator import CorrelationConfig
from stream.core.problems.scoped_log import ScopedLog
from stream.core.problems.topology import Topology
from stream.correlate.metrics import CorrelateMetrics
from stream.detector.snapshots import SnapshotStore
from stream.kafka.kafka_options import kafka_options
from stream.settings import Settings

__all__ = ["ScopedPartitions", "config_id"]

log = structlog.get_logger(__name__)


def config_id(config: CorrelationConfig, topology: Topology) -> str:
    """What a snapshot's state depends on: another grouping or topology refuses it."""
    data = {
        "config": [
            config.window_s,
            config.hold_s,
            config.quiet_s,
            config.scope_label,
            list(config.group_labels),
        ],
        "topology": {k: sorted(v) for k, v in sorted(topology.depends_on.items())},
    }
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class ScopedPartitions:
    """The owned partitions of the scoped alerts topic and their correlators.

    Args:
        settings: Kafka, topic and snapshot settings.
        config: How alerts are grouped.
        topology: The dependency graph.
        metrics: Where restores and snapshots are counted.
    """

    def __init__(
        self,
        settings: Settings,
        config: CorrelationConfig,
        topology: Topology,
        metrics: CorrelateMetrics,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic_scoped_alerts
        self.config, self.topology, self.metrics = config, topology, metrics
        self.logs: dict[int, ScopedLog] = {}
        self._config_ids = {"correlate": config_id(config, topology)}
        root = Path(settings.snapshot_dir) / f"correlate-{settings.correlate_group_id}"
        self.store = (
            SnapshotStore(root, keep=settings.snapshot_keep, classes=ClassRegistry([]))
            if settings.snapshots
            else None
        )
        self._snapshotted_at: dict[int, float] = {}

    @property
    def open_problems(self) -> int:
        return sum(log.correlator.open_problems for log in self.logs.values())

    async def restore(self, partition: int, committed: int | None) -> None:
        """Take ``partition`` on: its snapshot, then its records up to ``committed``."""
        scoped = self._load(partition) or ScopedLog(self.config, self.topology)
        end = committed or 0
        replayed = 0
        if scoped.next_offset < end:
            replayed = await self._replay(scoped, partition, end)
        scoped.next_offset = max(scoped.next_offset, end)
        self.logs[partition] = scoped
        self._snapshotted_at[partition] = time.monotonic()
        self.metrics.restored.inc()
        log.info(
            "scoped_partition_restored",
            partition=partition,
            committed=committed,
            replayed=replayed,
            open_problems=scoped.correlator.open_problems,
        )

    def release(self, partition: int, committed: int | None) -> None:
        """Give ``partition`` up: a snapshot at ``committed`` when the state is there."""
        scoped = self.logs.pop(partition, None)
        self._snapshotted_at.pop(partition, None)
        if scoped is not None and committed is not None and scoped.next_offset == committed:
            self._write(partition, scoped)

    def snapshot_due(self, committed: dict[int, int]) -> None:
        """Snapshot partitions whose interval passed and whose state is all committed."""
        now = time.monotonic()
        for partition, scoped in self.logs.items():
            due = now - self._snapshotted_at.get(partition, now) >= (
                self.settings.snapshot_interval_s
            )
            if due and committed.get(partition) == scoped.next_offset:
                self._write(partition, scoped)
                self._snapshotted_at[partition] = now

    def _write(self, partition: int, scoped: ScopedLog) -> None:
        if self.store is None:
            return
        meta = SnapshotMeta(
            SCHEMA_VERSION,
            self.topic,
            partition,
            {f"{self.topic}:{partition}": scoped.next_offset},
            datetime.now(UTC).isoformat(),
            self._config_ids,
            library_versions(),
        )
        try:
            self.store.write(meta, scoped.state())
            self.metrics.snapshots.labels(outcome="written").inc()
        except OSError:
            self.metrics.snapshots.labels(outcome="failed").inc()
            log.exception("correlate_snapshot_failed", partition=partition)

    def _load(self, partition: int) -> ScopedLog | None:
        if self.store is None:
            return None

        def rejected(path: Path, error: SnapshotError) -> None:
            self.metrics.snapshots.labels(outcome="rejected").inc()
            log.warning("correlate_snapshot_rejected", path=str(path), reason=str(error))

        loaded = self.store.load(
            self.topic, partition, config_ids=self._config_ids, on_reject=rejected
        )
        if loaded is None:
            return None
        state: dict[str, Any] = loaded.state
        return ScopedLog.from_state(state, self.config, self.topology)

    async def _replay(self, scoped: ScopedLog, partition: int, end: int) -> int:
        """Read ``partition`` from the state's offset up to ``end`` into it, outputs dropped."""
        tp = TopicPartition(self.topic, partition)
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            enable_auto_commit=False,
            isolation_level="read_committed",
            client_id=f"{self.settings.client_id}-correlate-restore",
            **kafka_options(self.settings),
        )
        await reader.start()
        read = 0
        try:
            reader.assign([tp])
            first = (await reader.beginning_offsets([tp]))[tp]
            start = max(scoped.next_offset, first)
            if start >= end:
                return 0
            reader.seek(tp, start)
            while scoped.next_offset < end:
                batch = await reader.getmany(tp, timeout_ms=1000, max_records=5000)
                for record in batch.get(tp, []):
                    if record.offset < end:
                        scoped.take(record.offset, record.value)
                        read += 1
                if await reader.position(tp) >= end:
                    break
        finally:
            await reader.stop()
        return read
