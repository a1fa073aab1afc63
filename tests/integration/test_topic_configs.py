"""Topics a detector creates itself get the configs of deploy/kafka/create-topics.sh (one
definition: stream/kafka/topic_specs.py), as the broker reports them."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.detector.detector import Detector
from stream.kafka.topic_specs import topic_specs
from stream.settings import Settings
from tests.integration.kafka_io import end_offsets

pytestmark = pytest.mark.integration


async def _configs(bootstrap: str, topics: list[str], keys: set[str]) -> dict[str, dict[str, Any]]:
    """``keys`` of each topic's configs, as the broker describes them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        )
    finally:
        await admin.close()
    found: dict[str, dict[str, Any]] = {}
    for response in responses:
        for _error, _message, _kind, name, entries in response.resources:
            found[name] = {entry[0]: entry[1] for entry in entries if entry[0] in keys}
    return found


async def test_a_detector_creates_its_topics_with_the_scripts_configs(
    test_settings: Settings,
) -> None:
    settings = test_settings.model_copy(update={"topic_partitions": 2})
    detector = Detector(settings, serve_http=False)
    await detector.start()  # creates the missing topics (VIGIL_CREATE_TOPICS, the default)
    await detector.stop()
    specs = topic_specs(settings)
    described = await _configs(
        settings.bootstrap_servers,
        [s.name for s in specs],
        {"retention.ms", "cleanup.policy"},
    )
    for spec in specs:
        assert {k: described[spec.name][k] for k in spec.configs} == dict(spec.configs), spec
        if "retention.ms" not in spec.configs:
            assert described[spec.name]["cleanup.policy"] == "compact"
    assert described[settings.topic_metrics]["retention.ms"] == str(7 * 86_400_000)
    for spec in specs:
        assert len(await end_offsets(settings.bootstrap_servers, spec.name)) == spec.partitions
