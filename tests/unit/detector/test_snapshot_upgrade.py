"""Schema 2 in the keeper (:class:`stream.detector.rebalance.PartitionSnapshots`): a version-1
(pickle) snapshot left on disk by the previous version is refused as ``schema``, counted, and the
partition starts fresh (or falls back to an older snapshot that checks out); a state holding
a class the registry lacks is not snapshotted, and the detector goes on."""

from __future__ import annotations

import asyncio
import hashlib
import json
import pickle
import struct
from pathlib import Path

from tests.unit.detector.test_snapshot_incarnation import (
    TOPIC,
    _keeper,
    _Log,
    _Record,
    _rejected,
    _restore,
    _snapshot_at,
)


def _as_version_1(blob: bytes) -> bytes:
    """What version 1 wrote for the same header: a pickle under ``schema_version`` 1."""
    (length,) = struct.unpack_from(">I", blob, 10)
    header = {**json.loads(blob[14 : 14 + length]), "schema_version": 1}
    text = json.dumps(header).encode()
    body = blob[:10] + struct.pack(">I", len(text)) + text
    body += pickle.dumps({"services": ["api"]}, protocol=5)
    return body + hashlib.sha256(body).digest()


def _downgrade_newest(root: Path) -> Path:
    newest = sorted((root / f"{TOPIC}-0").glob("*.snap"))[-1]
    newest.write_bytes(_as_version_1(newest.read_bytes()))
    return newest


def test_a_version_1_snapshot_is_refused_as_schema_and_the_partition_starts_fresh(
    tmp_path: Path,
) -> None:
    _snapshot_at(tmp_path, 600, "cluster-a")
    left = _downgrade_newest(tmp_path)
    resume, models, registry = _restore(tmp_path, _Log("cluster-a", (0, 900)))
    assert resume == {}
    assert models.installed == {}
    assert _rejected(registry, "schema") == 1
    assert left.exists()  # left for inspection; retention removes it in time


def test_past_a_version_1_snapshot_an_older_version_2_one_is_restored(tmp_path: Path) -> None:
    _snapshot_at(tmp_path, 300, "cluster-a")
    _snapshot_at(tmp_path, 600, "cluster-a")
    _downgrade_newest(tmp_path)
    resume, models, registry = _restore(tmp_path, _Log("cluster-a", (0, 900)))
    assert resume == {0: 300}
    assert models.installed == {0: ["api"]}
    assert _rejected(registry, "schema") == 1


def test_a_state_the_registry_cannot_write_is_not_snapshotted(tmp_path: Path) -> None:
    keeper, models, registry = _keeper(tmp_path)
    models.export = lambda partition, services: {"services": services, "odd": object()}  # type: ignore[method-assign]  # a state with an unregistered class

    async def run() -> None:
        await keeper.assigned([0], _Log("cluster-a", (0, 10)))
        keeper.processed(["api"], [_Record(9)], [_Record(9)])
        await keeper.snapshot_now([0])  # does not raise

    asyncio.run(run())
    assert registry.get_sample_value("vigil_snapshot_write_failures_total") == 1
    assert not list((tmp_path / f"{TOPIC}-0").glob("*.snap"))
