"""The detector's view of the sidecar's champions: read from ``vigil.models``, loaded live.

The sidecar announces each promotion on the compacted models topic (key ``model/<kind>/
<group>``, status ``champion``) after writing the artifact where detectors can read it (the
shared ``VIGIL_ARTIFACT_DIR``). A detector reads that topic from the beginning (no consumer
group: every detector sees every champion), loads each announced champion, checked (see
:mod:`stream.artifacts`), and swaps it in without a restart. A roll-back is an announcement
like any other: the older version becomes the champion again. An artifact that cannot be
loaded is logged and counted, and the previous champion stays.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from models.batch import Artifact, RiskArtifact
from stream.artifacts import ArtifactError, ArtifactStore
from stream.telemetry import ChampionMetrics

__all__ = ["ChampionWatcher"]

log = structlog.get_logger(__name__)


class ChampionWatcher:
    """Keeps the newest announced champion of each kind and model group.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        topic: The models topic.
        store: Where the sidecar writes artifacts.
        metrics: Champions loaded, failed, in use.
        client_id: Kafka client id.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        store: ArtifactStore,
        metrics: ChampionMetrics,
        client_id: str,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self.topic = topic
        self.store = store
        self._client_id = client_id
        self._consumer: AIOKafkaConsumer | None = None
        self.champions: dict[tuple[str, str], Artifact] = {}
        self._metrics = metrics

    async def start(self) -> None:
        """Read the models topic from its beginning."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-champions",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(self.topic) or set()
        consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        self._consumer = consumer

    async def stop(self) -> None:
        """Disconnect; safe to call twice."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()

    def risk(self, group: str) -> RiskArtifact | None:
        """The risk champion of ``group``, if one is loaded."""
        artifact = self.champions.get(("risk", group))
        return artifact if isinstance(artifact, RiskArtifact) else None

    async def poll(self) -> int:
        """Apply what was announced since the last call; returns champions loaded."""
        if self._consumer is None:
            return 0
        batches = await self._consumer.getmany(timeout_ms=0)
        loaded = 0
        for records in batches.values():
            for record in records:
                loaded += await self._apply(record.key, record.value)
        return loaded

    async def _apply(self, key: bytes | None, value: bytes | None) -> int:
        try:
            parts = (key or b"").decode().split("/")
            message: dict[str, Any] = orjson.loads(value or b"")
        except ValueError:
            return 0
        if len(parts) != 3 or parts[0] != "model" or message.get("status") != "champion":
            return 0  # snapshot pointers, rejections
        kind, group, version = parts[1], parts[2], str(message.get("version"))
        current = self.champions.get((kind, group))
        if current is not None and current.version == version:
            return 0
        try:
            artifact = await asyncio.to_thread(self.store.load, kind, group, version)
        except ArtifactError as exc:
            self._metrics.loads.labels(outcome="failed").inc()
            log.warning(
                "champion_not_loaded", kind=kind, group=group, version=version, error=str(exc)
            )
            return 0
        if current is not None:
            self._metrics.info.remove(kind, group, current.version)
        self.champions[(kind, group)] = artifact
        self._metrics.info.labels(kind=kind, group=group, version=version).set(1)
        self._metrics.loads.labels(outcome="loaded").inc()
        log.info("champion_loaded", kind=kind, group=group, version=version)
        return 1

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` shows."""
        return {f"{kind}:{group}": a.version for (kind, group), a in sorted(self.champions.items())}


def artifact_store(artifact_dir: str, group_id: str) -> ArtifactStore:
    """The artifact store the sidecar of detector group ``group_id`` writes."""
    return ArtifactStore(Path(artifact_dir) / group_id)
