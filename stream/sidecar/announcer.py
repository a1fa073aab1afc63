"""The sidecar's model announcements on the models topic: sent until acknowledged, never
for a model that is not on disk, and never fatal.

A producer can be lost (stopped under the sidecar, a broker gone) or fail for good: an
idempotent producer that gets ``OutOfOrderSequenceNumber`` (its sequence numbers no longer
match what the broker holds, e.g. after a broker was replaced on the same port) refuses every
later send. That error used to end ``vigil sidecar`` (exit 1, no model promoted). Here a
failed announcement recreates the producer and is tried again with backoff (0.5 s doubling to
30 s), each retry counted, until it is acknowledged or the sidecar stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter

from stream.kafka.publisher import Publisher
from stream.sidecar.artifacts import ArtifactStore

__all__ = ["ANNOUNCE_OUTCOMES", "Announcer"]

log = structlog.get_logger(__name__)

ANNOUNCE_OUTCOMES = ("sent", "retried", "skipped_missing_artifact", "dropped_on_stop")
_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 30.0
_ACK_TIMEOUT_S = 30.0
"""An acknowledgement not in by then counts as a failure (the producer is recreated)."""
_PRODUCER_STOP_S = 5.0


class Announcer:
    """Publishes model decisions on ``topic``, recreating its producer after any failure.

    Args:
        topic: The models topic.
        store: Where the announced artifacts must be.
        new_publisher: Makes a publisher (not started); called again after each failure.
        registry: Where ``vigil_sidecar_announcements_total{outcome}`` is registered.
        stopped: Set when the sidecar stops: a retry waiting for its turn gives up.
    """

    def __init__(
        self,
        topic: str,
        store: ArtifactStore,
        new_publisher: Callable[[], Publisher],
        registry: CollectorRegistry,
        stopped: asyncio.Event,
    ) -> None:
        self.topic = topic
        self.store = store
        self._new_publisher = new_publisher
        self._stopped = stopped
        self.publisher = new_publisher()
        self.outcomes = Counter(
            "vigil_sidecar_announcements_total",
            "Model decisions for the models topic, by outcome: sent (acknowledged), retried "
            "(a producer error: the producer was recreated), skipped_missing_artifact (never "
            "sent: the artifact is not on disk), dropped_on_stop.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ANNOUNCE_OUTCOMES:
            self.outcomes.labels(outcome=outcome)

    async def start(self) -> None:
        await self.publisher.start()

    async def stop(self) -> None:
        await self.publisher.stop()

    async def announce(self, key: bytes, decision: dict[str, Any]) -> bool:
        """Send ``decision`` (about ``kind``/``group``/``version``) under ``key`` and wait
        for its acknowledgement, retrying until then; False if it was not sent (its artifact
        is missing, or the sidecar stopped first)."""
        kind, group, version = (str(decision.get(k)) for k in ("kind", "group", "version"))
        if not self.store.exists(kind, group, version):
            self.outcomes.labels(outcome="skipped_missing_artifact").inc()
            log.error(
                "announcement_skipped",
                reason="artifact_missing",
                kind=kind,
                group=group,
                version=version,
                artifact_dir=str(self.store.root),
            )
            return False
        delay_s = _FIRST_BACKOFF_S
        while True:
            try:
                await self._send(key, decision)
            except Exception as exc:  # whatever the producer raised: never fatal
                self.outcomes.labels(outcome="retried").inc()
                log.warning(
                    "announcement_failed",
                    kind=kind,
                    group=group,
                    version=version,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=delay_s,
                )
                await self._renew()
                if await self._stopped_within(delay_s):
                    self.outcomes.labels(outcome="dropped_on_stop").inc()
                    log.warning("announcement_dropped", kind=kind, group=group, version=version)
                    return False
                delay_s = min(delay_s * 2, _MAX_BACKOFF_S)
                continue
            self.outcomes.labels(outcome="sent").inc()
            return True

    async def _send(self, key: bytes, decision: dict[str, Any]) -> None:
        ack = await self.publisher.send_json(self.topic, key, decision)
        # Not wait_for: cancelling the producer's own future is not ours to do.
        done, _ = await asyncio.wait({ack}, timeout=_ACK_TIMEOUT_S)
        if not done:
            raise TimeoutError(f"no acknowledgement within {_ACK_TIMEOUT_S:g} s")
        ack.result()

    async def _renew(self) -> None:
        """Drop the producer (bounded: a broker that is away cannot hold it) and start a
        new one; a new one that cannot start is tried again at the next failure."""
        old, self.publisher = self.publisher, self._new_publisher()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(old.stop(), _PRODUCER_STOP_S)
        try:
            await self.publisher.start()
        except Exception as exc:
            log.warning("producer_not_started", error=f"{type(exc).__name__}: {exc}")

    async def _stopped_within(self, delay_s: float) -> bool:
        try:
            await asyncio.wait_for(self._stopped.wait(), delay_s)
        except TimeoutError:
            return False
        return True
