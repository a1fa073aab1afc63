"""Creating the topics Vigil needs, when they are missing (their specs:
:mod:`stream.kafka.topic_specs`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupCoordinatorNotAvailableError

from stream.kafka.topic_specs import TopicSpec

__all__ = ["TopicSpec", "ensure_topics", "group_members"]

log = structlog.get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(
    bootstrap_servers: str,
    specs: list[TopicSpec],
    client_id: str = "vigil-admin",
    *,
    kafka_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics in ``specs`` that do not exist yet; return the names created.

    ``kafka_options`` are the admin client's security keyword arguments
    (:func:`stream.kafka.kafka_options.kafka_options`).

    Raises:
        RuntimeError: a topic could not be created for a reason other than already existing.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id=client_id, **(kafka_options or {})
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=s.name,
                    num_partitions=s.partitions,
                    replication_factor=s.replication_factor,
                    topic_configs=dict(s.configs),
                )
                for s in missing
            ]
        )
        for topic_error in response.topic_errors:
            name, code = topic_error[0], topic_error[1]
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                message = topic_error[2] if len(topic_error) > 2 else ""
                raise RuntimeError(f"could not create topic {name}: error {code} {message}")
        created = [s.name for s in missing]
        log.info("topics_created", topics=created)
        return created
    finally:
        await admin.close()


async def group_members(
    bootstrap_servers: str,
    groups: list[str],
    client_id: str = "vigil-admin",
    *,
    kafka_options: Mapping[str, Any] | None = None,
) -> dict[str, list[str]]:
    """The members of each consumer group in ``groups``, as ``client_id@client_host``
    (a group unknown to the broker has none; so has every group of a broker that no
    consumer group has used yet: it has no coordinator to ask)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id=client_id, **(kafka_options or {})
    )
    await admin.start()
    try:
        members: dict[str, list[str]] = {group: [] for group in groups}
        for group in groups:
            try:
                responses = await admin.describe_consumer_groups([group])
            except GroupCoordinatorNotAvailableError:
                continue
            for response in responses:
                for described in response.to_object()["groups"]:
                    members[group] = [
                        f"{m['client_id']}@{m['client_host'].lstrip('/')}"
                        for m in described["members"]
                    ]
        return members
    finally:
        await admin.close()
