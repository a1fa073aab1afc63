"""The sidecar's announcements through producer failures, against the real broker.

The first producer fails as an idempotent producer does once its sequence numbers no longer
match the broker's (``OutOfOrderSequenceNumber``, which used to end ``vigil sidecar``); later
the producer is stopped under the announcer. Each time the producer is recreated and the
announcement goes out, once; an announcement of an artifact that is not on disk never does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from prometheus_client import CollectorRegistry

from stream.kafka.publisher import Ack, Publisher
from stream.kafka.topics import TopicSpec, ensure_topics
from stream.settings import Settings
from stream.sidecar.announcer import Announcer
from stream.sidecar.artifacts import ArtifactStore
from tests.integration.kafka_io import read_all

pytestmark = pytest.mark.integration


class _BrokenSequence(Publisher):
    """A producer that has lost its sequence: every send fails."""

    async def send_json(self, topic: str, key: bytes, value: dict[str, Any]) -> Ack:
        raise OutOfOrderSequenceNumber("injected at the producer boundary")


def _stored(root: Path, version: str) -> None:
    directory = root / "risk" / "all" / version
    directory.mkdir(parents=True)
    (directory / "model.pkl").write_bytes(b"not read here")
    (directory / "model.sha256").write_text("-")


async def test_a_failing_or_lost_producer_is_recreated_and_the_announcement_goes_out(
    test_settings: Settings, tmp_path: Path
) -> None:
    settings = test_settings
    await ensure_topics(settings.bootstrap_servers, [TopicSpec(settings.topic_models, 1, 1)])
    store = ArtifactStore(tmp_path / "artifacts")
    _stored(store.root, "risk-all-1")
    _stored(store.root, "risk-all-2")
    made: list[Publisher] = []

    def new_publisher() -> Publisher:
        kind = _BrokenSequence if not made else Publisher
        made.append(kind.from_settings(settings, "test-announcer"))
        return made[-1]

    registry = CollectorRegistry()
    announcer = Announcer(
        settings.topic_models, store, new_publisher, registry, stopped=asyncio.Event()
    )
    await announcer.start()
    try:
        first = {"kind": "risk", "group": "all", "version": "risk-all-1", "status": "champion"}
        assert await announcer.announce(b"model/risk/all", first)
        await announcer.publisher.stop()  # the producer is lost under it
        second = {**first, "version": "risk-all-2"}
        assert await announcer.announce(b"model/risk/all", second)
        missing = {**first, "version": "risk-all-3"}  # another run's artifact directory
        assert not await announcer.announce(b"model/risk/all", missing)
    finally:
        await announcer.stop()

    records = await read_all(settings.bootstrap_servers, settings.topic_models, idle_s=1.0)
    versions = [orjson.loads(r.value)["version"] for r in records]
    assert versions == ["risk-all-1", "risk-all-2"]
    outcomes = {
        outcome: registry.get_sample_value(
            "vigil_sidecar_announcements_total", {"outcome": outcome}
        )
        for outcome in ("sent", "retried", "skipped_missing_artifact")
    }
    assert outcomes == {"sent": 2.0, "retried": 2.0, "skipped_missing_artifact": 1.0}
    assert len(made) == 3  # the broken one, its replacement, and the lost one's
