"""Kafka security against the real broker's SASL_PLAINTEXT listener, configured only through
Settings: PLAIN and SCRAM round trips, wrong passwords failing fast and clearly, and the
passwords never showing up in logs or output."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaConnectionError

from stream.dev.broker import free_port
from stream.kafka.kafka_options import kafka_options
from stream.kafka.publisher import Publisher
from stream.kafka.topics import TopicSpec, ensure_topics
from stream.settings import Settings, load_settings, settings_env
from tests.conftest import SaslKafka
from tests.integration.kafka_io import eventually

pytestmark = pytest.mark.integration

MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
FAIL_WITHIN_S = 15.0
"""A wrong password must fail a client's start this fast (it fails in well under a second)."""


def secured(base: Settings, sasl: SaslKafka, mechanism: str, password: str) -> Settings:
    """``base`` (the test's topics and group) on the SASL listener, through load_settings."""
    values = {name: value for name, value in base.model_dump().items() if value is not None}
    return load_settings(
        {
            **values,
            "bootstrap_servers": sasl.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": mechanism,
            "sasl_username": sasl.username,
            "sasl_password": password,
        }
    )


async def read_one(settings: Settings, topic: str) -> ConsumerRecord[bytes, bytes]:
    """The first record of ``topic``, read by a consumer-group member over SASL."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **kafka_options(settings),
    )
    try:
        await consumer.start()
        async with asyncio.timeout(30):
            record: ConsumerRecord[bytes, bytes] = await consumer.getone()
    finally:
        await consumer.stop()  # also after a failed start: aiokafka warns of unclosed clients
    return record


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_publisher_and_consumer_round_trip_over_sasl(
    test_settings: Settings,
    kafka_sasl: SaslKafka,
    mechanism: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = secured(test_settings, kafka_sasl, mechanism, kafka_sasl.password)
    created = await ensure_topics(
        settings.bootstrap_servers,
        [TopicSpec(settings.topic_alerts, 1)],
        kafka_options=kafka_options(settings),
    )
    assert created == [settings.topic_alerts]
    publisher = Publisher.from_settings(settings, settings.client_id)
    await publisher.start()
    try:
        await (await publisher.send_json(settings.topic_alerts, b"k", {"via": mechanism}))
    finally:
        await publisher.stop()

    record = await read_one(settings, settings.topic_alerts)

    assert (record.key, orjson.loads(record.value)) == (b"k", {"via": mechanism})
    assert kafka_sasl.password not in caplog.text


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
async def test_a_wrong_password_fails_fast_and_says_why(
    test_settings: Settings,
    kafka_sasl: SaslKafka,
    mechanism: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = f"wrong-{uuid.uuid4().hex}"
    settings = secured(test_settings, kafka_sasl, mechanism, wrong)
    publisher = Publisher.from_settings(settings, settings.client_id)
    started = time.monotonic()
    with pytest.raises(KafkaConnectionError):
        async with asyncio.timeout(FAIL_WITHIN_S):
            await publisher.start()
    with pytest.raises(KafkaConnectionError):
        async with asyncio.timeout(FAIL_WITHIN_S):
            await ensure_topics(
                settings.bootstrap_servers, [], kafka_options=kafka_options(settings)
            )
    with pytest.raises(KafkaConnectionError):
        async with asyncio.timeout(FAIL_WITHIN_S):
            await read_one(settings, settings.topic_alerts)

    assert time.monotonic() - started < FAIL_WITHIN_S
    # aiokafka's exception only says "Unable to bootstrap"; its error log line says why.
    assert "SaslAuthenticationFailed" in caplog.text
    assert wrong not in caplog.text
    assert kafka_sasl.password not in caplog.text


def detect_env(
    settings: Settings, sasl: SaslKafka, password: str, tmp_path: Path
) -> dict[str, str]:
    """``vigil detect``'s environment: every setting from ``VIGIL_*`` (SCRAM over the SASL
    listener), logs at DEBUG in JSON."""
    over_sasl = secured(settings, sasl, "SCRAM-SHA-256", password).model_copy(
        update={
            "topic_partitions": 1,
            "snapshot_dir": str(tmp_path / "snapshots"),
            "artifact_dir": str(tmp_path / "artifacts"),
            "log_level": "DEBUG",
            "log_format": "json",
        }
    )
    return settings_env(over_sasl, os.environ)


@contextmanager
def running_detect(env: dict[str, str], out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``vigil detect`` with ``env``, its output to ``out``; killed on exit if still running."""
    with out.open("wb") as sink:  # a file, not a pipe: DEBUG logs would fill a pipe's buffer
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "detect"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_detect_with_a_wrong_password_exits_1_and_says_why(
    test_settings: Settings, kafka_sasl: SaslKafka, tmp_path: Path
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    env = detect_env(test_settings, kafka_sasl, wrong, tmp_path)
    # aiokafka reports a refused login as a retriable "Unable to bootstrap": retried with
    # backoff like an unreachable cluster, for VIGIL_CONNECT_TIMEOUT_S.
    env.update(
        {"VIGIL_HTTP_HOST": "127.0.0.1", "VIGIL_HTTP_PORT": "0", "VIGIL_CONNECT_TIMEOUT_S": "2"}
    )
    out = tmp_path / "detect.out"
    with running_detect(env, out) as proc:
        code = proc.wait(timeout=60)
    text = out.read_text()
    assert code == 1, text[-2000:]
    assert "SaslAuthenticationFailed" in text
    assert "detector_failed" in text
    assert wrong not in text
    assert kafka_sasl.password not in text


async def test_detect_over_sasl_serves_on_its_interface_and_never_shows_the_password(
    test_settings: Settings, kafka_sasl: SaslKafka, tmp_path: Path
) -> None:
    env = detect_env(test_settings, kafka_sasl, kafka_sasl.password, tmp_path)
    port = free_port()
    env.update({"VIGIL_HTTP_HOST": "127.0.0.2", "VIGIL_HTTP_PORT": str(port)})
    out = tmp_path / "detect.out"
    bodies: list[str] = []
    with running_detect(env, out) as proc:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.2:{port}", timeout=5) as http:

            async def ready() -> bool:
                if proc.poll() is not None:
                    pytest.fail(f"vigil detect exited {proc.returncode}: {out.read_text()[-2000:]}")
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout_s=60)
            for path in ("/healthz", "/readyz", "/models", "/metrics"):
                response = await http.get(path)
                assert response.status_code == 200, path
                bodies.append(response.text)
            with pytest.raises(httpx.ConnectError):  # bound to 127.0.0.2 only
                await http.get(f"http://127.0.0.1:{port}/healthz")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    text = out.read_text()
    assert code == 0, text[-2000:]
    assert "detector_started" in text
    for shown in (text, *bodies):
        assert kafka_sasl.password not in shown
