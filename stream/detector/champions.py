"""The detector's view of the sidecar's champions: read from ``vigil.models``, loaded live.

The sidecar announces each promotion on the compacted models topic (key ``model/risk/
<group>``, status ``champion``) after writing the artifact where detectors can read it (the
shared ``VIGIL_ARTIFACT_DIR``). A detector reads that topic from the beginning (no consumer
group: every detector sees every champion), loads each announced champion, checked (see
:mod:`stream.sidecar.artifacts`), and swaps it in without a restart. A roll-back is an announcement
like any other: the older version becomes the champion again. An artifact that cannot be
loaded is logged and counted, and the previous champion stays.

A challenger is announced on ``model/risk/<group>/challenger`` (status ``challenger``); the
detector loads it too, and :meth:`ChampionWatcher.shadow` hands it with the champion to the
training feed, which scores labelled vectors with both (see :mod:`stream.detector.training_feed`):
the challenger never alerts. When the sidecar has decided, it announces the same key with
status ``decided`` and the detector drops the challenger.

Only incident-risk models are followed. Sidecars before this version also fitted and
announced an anomaly model (``model/anomaly/<group>``, an IsolationForest) that no detector
scored with; measured as one more calibrated channel of the online anomaly model, it did not
help (docs/sidecar.md), and it is no longer fitted. Those announcements stay on the
compacted topic until their keys are deleted: they are skipped, their artifacts never read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from models.batch import RiskArtifact
from stream.kafka.consumer_log import partitions_of
from stream.sidecar.artifacts import ArtifactError, ArtifactStore
from stream.telemetry import ChampionMetrics

__all__ = ["ChampionWatcher"]

log = structlog.get_logger(__name__)


FOLLOWED = ("risk",)
"""The kinds of model a detector loads (an older sidecar's ``anomaly`` ones are skipped)."""


class ChampionWatcher:
    """Keeps the newest announced risk champion (and challenger) of each model group.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        topic: The models topic.
        store: Where the sidecar writes artifacts.
        metrics: Champions loaded, failed, in use.
        client_id: Kafka client id.
        kafka_options: Security keyword arguments for the consumer
            (:func:`stream.kafka.kafka_options.kafka_options`).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        store: ArtifactStore,
        metrics: ChampionMetrics,
        client_id: str,
        *,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._kafka_options = dict(kafka_options or {})
        self.topic = topic
        self.store = store
        self._client_id = client_id
        self._consumer: AIOKafkaConsumer | None = None
        self.champions: dict[tuple[str, str], RiskArtifact] = {}
        self.challengers: dict[tuple[str, str], RiskArtifact] = {}
        self._metrics = metrics

    async def start(self) -> None:
        """Read the models topic from its beginning."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._client_id}-champions",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._kafka_options,
        )
        try:
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        partitions = await partitions_of(consumer, self.topic)
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
        return self.champions.get(("risk", group))

    def shadow(self, group: str) -> tuple[RiskArtifact, RiskArtifact] | None:
        """The risk champion and challenger of ``group`` while a challenger is in shadow."""
        champion = self.risk(group)
        challenger = self.challengers.get(("risk", group))
        if champion is None or challenger is None:
            return None
        return champion, challenger

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
        if len(parts) < 3 or parts[0] != "model":
            return 0  # snapshot pointers
        kind, group, version = parts[1], parts[2], str(message.get("version"))
        if kind not in FOLLOWED:
            return 0  # an older sidecar's anomaly model: never loaded
        if len(parts) == 4 and parts[3] == "challenger":
            if message.get("status") != "challenger":
                self.challengers.pop((kind, group), None)  # decided: out of the shadow
                return 0
            return await self._load(self.challengers, "challenger", kind, group, version)
        if len(parts) != 3 or message.get("status") != "champion":
            return 0  # rejections
        return await self._load(self.champions, "champion", kind, group, version)

    async def _load(
        self,
        into: dict[tuple[str, str], RiskArtifact],
        role: str,
        kind: str,
        group: str,
        version: str,
    ) -> int:
        current = into.get((kind, group))
        if current is not None and current.version == version:
            return 0
        try:
            artifact = await asyncio.to_thread(self.store.load, kind, group, version)
        except ArtifactError as exc:
            self._metrics.loads.labels(outcome="failed").inc()
            log.warning(
                "model_not_loaded",
                role=role,
                kind=kind,
                group=group,
                version=version,
                error=str(exc),
            )
            return 0
        if role == "champion":
            if current is not None:
                self._metrics.info.remove(kind, group, current.version)
            self._metrics.info.labels(kind=kind, group=group, version=version).set(1)
            challenger = self.challengers.get((kind, group))
            if challenger is not None and challenger.version == version:
                del self.challengers[(kind, group)]  # promoted
        into[(kind, group)] = artifact
        self._metrics.loads.labels(outcome="loaded").inc()
        log.info("model_loaded", role=role, kind=kind, group=group, version=version)
        return 1

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` shows: versions loaded by kind and group."""
        return {f"{kind}:{group}": a.version for (kind, group), a in sorted(self.champions.items())}

    def describe_challengers(self) -> dict[str, str]:
        """Challengers scored in shadow, by kind and group."""
        return {f"{k}:{g}": a.version for (k, g), a in sorted(self.challengers.items())}


def artifact_store(artifact_dir: str, group_id: str) -> ArtifactStore:
    """The artifact store the sidecar of detector group ``group_id`` writes."""
    return ArtifactStore(Path(artifact_dir) / group_id)
