"""The detector's consumer-group member, configured from the settings."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from stream.kafka.kafka_options import kafka_options
from stream.settings import Settings

__all__ = ["group_consumer"]


def group_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer of the detector's group: manual commits, fetches held about as long as a
    batch waits, and read-committed input under exactly once."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id,
        group_instance_id=settings.group_instance_id,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=min(3_000, settings.session_timeout_ms // 3),
        client_id=f"{settings.client_id}-consumer",
        enable_auto_commit=False,
        auto_offset_reset=settings.auto_offset_reset,
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        # The broker holds a fetch with no new data this long, and no other fetch goes to it
        # meanwhile: keep it near the batch wait, not aiokafka's 500 ms, or records on busy
        # partitions wait behind an idle one.
        fetch_max_wait_ms=max(1, int(settings.batch_wait_s * 1000)),
        # Exactly once reads committed input only (another Vigil's alerts, a transactional
        # log-processor); at least once reads what is there, as before.
        isolation_level=(
            "read_committed"
            if settings.processing_guarantee == "exactly_once"
            else "read_uncommitted"
        ),
        **kafka_options(settings),
    )
