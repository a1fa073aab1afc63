"""A partition's transactional producer started while no broker can be reached (its first
output during an outage) is retried with backoff, never raised: raising ended the detector
(the outage test failed so under load, a partition's first batch coming after the broker
died). Nothing listens on the port here: no broker is needed to be unreachable."""

from __future__ import annotations

import asyncio
import socket

from aiokafka import TopicPartition
from structlog.testing import capture_logs

from stream.kafka.transactions import TransactionalPublisher


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_broker_is_waited_for_not_raised() -> None:
    publisher = TransactionalPublisher(
        f"127.0.0.1:{_closed_port()}",
        alerts_topic="a",
        dlq_topic="d",
        client_id="c",
        group_id="g",
        kafka_options={"request_timeout_ms": 1000},
    )
    with capture_logs() as logs:
        waiting = asyncio.create_task(publisher._producer_for(TopicPartition("m", 0)))
        done, _ = await asyncio.wait({waiting}, timeout=2.5)
        assert not done, waiting.exception() if done else None  # still retrying
        waiting.cancel()
    retries = [e for e in logs if e["event"] == "transactional_producer_start_retried"]
    assert len(retries) >= 2
    assert retries[0]["retry_in_s"] == 0.5
    assert retries[1]["retry_in_s"] == 1.0
    await publisher.stop()
