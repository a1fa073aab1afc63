"""A snapshot resumes only the partition it was taken from (issue 19, finding 5).

The keeper (:class:`stream.detector.rebalance.PartitionSnapshots`) with a fake partition log: a
snapshot from another cluster, or one past the partition's end, is rejected and counted, and
the partition starts fresh; one whose offset the log no longer holds resumes at its start.
"""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from stream.detector.rebalance import PartitionSnapshots
from stream.detector.snapshots import SnapshotStore
from stream.telemetry import SnapshotMetrics

TOPIC = "vigil.metrics"


class _Models:
    """A partition's state: the services it holds."""

    def __init__(self) -> None:
        self.installed: dict[int, list[str]] = {}

    def config_ids(self) -> dict[str, str]:
        return {"metrics": "c1"}

    def export(self, partition: int, services: list[str]) -> dict[str, Any]:
        return {"services": services}

    def check(self, state: Any) -> None:
        pass

    def install(self, partition: int, state: dict[str, Any], stale: frozenset[str]) -> list[str]:
        services: list[str] = state["services"]
        self.installed[partition] = services
        return services

    def forget(self, partitions: list[int], services: list[str]) -> None:
        pass


class _Log:
    """The cluster's view: its id, committed offsets, log bounds and records (by default,
    those :class:`_Record` made)."""

    def __init__(
        self,
        cluster_id: str | None,
        bounds: tuple[int, int] | None,
        records: dict[int, tuple[int, int]] | None = None,
    ) -> None:
        self._cluster_id = cluster_id
        self._bounds = bounds
        self._records = records

    @property
    def cluster_id(self) -> str | None:
        return self._cluster_id

    async def committed(self, partition: int) -> int | None:
        return None

    async def bounds(self, partition: int) -> tuple[int, int] | None:
        return self._bounds

    async def record_at(self, partition: int, offset: int) -> tuple[int, int] | None:
        if self._records is not None:
            return self._records.get(offset)
        record = _Record(offset)
        return record.timestamp, zlib.crc32(record.value)


def _keeper(root: Path) -> tuple[PartitionSnapshots, _Models, CollectorRegistry]:
    registry = CollectorRegistry()
    models = _Models()
    keeper = PartitionSnapshots(
        SnapshotStore(root), models, SnapshotMetrics(registry), topic=TOPIC, interval_s=60.0
    )
    return keeper, models, registry


def _snapshot_at(root: Path, offset: int, cluster_id: str) -> None:
    """A detector on ``cluster_id`` that processed partition 0 up to ``offset``, stopped."""
    keeper, _, _ = _keeper(root)

    async def run() -> None:
        await keeper.assigned([0], _Log(cluster_id, (0, offset)))
        keeper.processed(["api"], [_Record(offset - 1)], [_Record(offset - 1)])
        await keeper.snapshot_now([0])

    asyncio.run(run())


class _Record:
    topic = TOPIC
    partition = 0

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.timestamp = 1_700_000_000_000 + offset
        self.value = b"record %d" % offset


def _restore(root: Path, log: _Log) -> tuple[dict[int, int], _Models, CollectorRegistry]:
    keeper, models, registry = _keeper(root)
    resume = asyncio.run(keeper.assigned([0], log))
    return resume, models, registry


def _rejected(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("vigil_snapshots_rejected_total", {"reason": reason})
    return value or 0.0


def test_the_partition_it_was_taken_from_resumes_at_its_offset(tmp_path: Path) -> None:
    _snapshot_at(tmp_path, 600, "cluster-a")
    resume, models, _ = _restore(tmp_path, _Log("cluster-a", (0, 900)))
    assert resume == {0: 600}
    assert models.installed == {0: ["api"]}


@pytest.mark.parametrize(
    ("log", "reason"),
    [
        (_Log("cluster-b", (0, 900)), "other_cluster"),  # a fresh broker, a new cluster id
        (_Log("cluster-a", (0, 60)), "beyond_end"),  # a re-created topic, fewer records
        (_Log(None, (0, 60)), "beyond_end"),  # the cluster id could not be read
        # A re-created topic that grew past the snapshot's offset: another record there.
        (_Log("cluster-a", (0, 900), {599: (1, 2), 49: (1, 2)}), "record_mismatch"),
    ],
)
def test_a_snapshot_of_another_incarnation_is_rejected_and_the_partition_starts_fresh(
    tmp_path: Path, log: _Log, reason: str
) -> None:
    _snapshot_at(tmp_path, 50, "cluster-a")  # older, and within the new partition's bounds
    _snapshot_at(tmp_path, 600, "cluster-a")
    resume, models, registry = _restore(tmp_path, log)
    # The older snapshot was taken from the same earlier incarnation: not tried either. The
    # group's committed offset or the reset policy decides where the partition starts.
    assert resume == {}
    assert models.installed == {}
    assert _rejected(registry, reason) == 1


def test_an_offset_the_log_no_longer_holds_resumes_at_the_log_start(tmp_path: Path) -> None:
    _snapshot_at(tmp_path, 600, "cluster-a")
    resume, models, _ = _restore(tmp_path, _Log("cluster-a", (750, 900)))
    assert resume == {0: 750}
    assert models.installed == {0: ["api"]}


def test_unknown_bounds_cluster_and_record_leave_the_snapshot_unchecked(tmp_path: Path) -> None:
    _snapshot_at(tmp_path, 600, "cluster-a")
    resume, _, registry = _restore(tmp_path, _Log(None, None, {}))
    assert resume == {0: 600}
    assert _rejected(registry, "beyond_end") == _rejected(registry, "other_cluster") == 0
