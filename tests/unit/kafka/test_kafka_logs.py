"""The Kafka client's lines through the handler filter that configure_logging installs, and
a detector's /readyz and /metrics while the client says Kafka cannot be reached."""

from __future__ import annotations

import io
import logging

import httpx
import pytest
from prometheus_client import generate_latest

from stream.detector.detector import Detector
from stream.detector.http import create_app
from stream.kafka.kafka_logs import KafkaLogFilter
from stream.settings import load_settings
from stream.telemetry import configure_logging


def test_a_flood_of_client_errors_is_a_few_lines_counted_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    installed = configure_logging("INFO", "console")
    (handler,) = logging.getLogger().handlers
    assert installed in handler.filters
    now = [0.0]
    kafka_logs = KafkaLogFilter(clock=lambda: now[0])  # the same, on the test's clock
    handler.removeFilter(installed)
    handler.addFilter(kafka_logs)
    client = logging.getLogger("aiokafka")
    for tick in range(6000):  # 60 s of a retry every 10 ms
        now[0] = tick / 100
        client.error("Unable connect to node with id %s: %s", 1, "Connect call failed")
    logging.getLogger("stream.test").warning("not a client line")

    lines = stderr.getvalue().splitlines()
    client_lines = [line for line in lines if "Unable connect" in line]
    assert len(client_lines) == 6  # at 0, 1, 3, 7, 15 and 31 s (the next is due at 63 s)
    assert "more like it held back" in client_lines[-1]
    assert any("not a client line" in line for line in lines)
    assert kafka_logs.counts[("error", "logged")] + kafka_logs.counts[("error", "held")] == 6000


def test_an_error_the_client_retries_is_a_warning() -> None:
    from aiokafka.errors import GroupAuthorizationFailedError, GroupCoordinatorNotAvailableError

    kafka_logs = KafkaLogFilter(clock=lambda: 0.0)
    retried = logging.LogRecord(
        "aiokafka.consumer.group_coordinator",
        logging.ERROR,
        "f.py",
        1,
        "Group Coordinator Request failed: %s",
        (GroupCoordinatorNotAvailableError(),),
        None,
    )
    fatal = logging.LogRecord(
        "aiokafka.consumer.group_coordinator",
        logging.ERROR,
        "f.py",
        1,
        "Group Coordinator Request failed: %s",
        (GroupAuthorizationFailedError(),),
        None,
    )
    assert kafka_logs.filter(retried)
    assert (retried.levelno, retried.levelname) == (logging.WARNING, "WARNING")
    kafka_logs.throttle = type(kafka_logs.throttle)()  # a fresh throttle: the same kind again
    assert kafka_logs.filter(fatal)
    assert fatal.levelno == logging.ERROR


async def test_readyz_says_kafka_is_unreachable() -> None:
    now = [0.0]
    kafka_logs = KafkaLogFilter(clock=lambda: now[0])
    detector = Detector(load_settings({}), serve_http=False, kafka_logs=kafka_logs)
    transport = httpx.ASGITransport(app=create_app(detector, detector.http_guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        starting = await http.get("/readyz")
        assert (starting.status_code, starting.json()["reason"]) == (503, "starting")
        record = logging.LogRecord(
            "aiokafka",
            logging.ERROR,
            "client.py",
            1,
            "Unable to update metadata from %s",
            ([1],),
            None,
        )
        assert kafka_logs.filter(record)
        now[0] = 4.0
        away = await http.get("/readyz")
        assert (away.status_code, away.json()["reason"]) == (503, "kafka_unreachable")
    page = generate_latest(detector.registry).decode()
    assert "vigil_kafka_unreachable_seconds 4.0" in page
    assert 'vigil_kafka_client_log_lines_total{level="error",outcome="logged"} 1.0' in page
    now[0] = 20.0  # no such line for longer than 10 s: reachable again
    assert detector.not_ready_reason() == "starting"
