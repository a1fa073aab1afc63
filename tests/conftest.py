"""Shared pytest fixtures, one section per concern.

Keep each section self-contained; add new ones below the last with the same kind of header.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import structlog

from stream.dev.broker import BrokerError, LocalBroker, free_port

# --------------------------------------------------------------------------- Kafka broker

SASL_TEST_USER = "vigil-test"
SASL_TEST_PASSWORD = f"sasl-{uuid.uuid4().hex}"
"""The local broker's SASL user: a distinctive password, so tests can assert it never shows."""


@pytest.fixture(scope="session")
def local_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A local single-node broker for the session, started on first use: PLAINTEXT on a free
    port and SASL_PLAINTEXT (PLAIN and SCRAM, user `SASL_TEST_USER`) on another, with a temp
    data dir. Owned by this process (it dies with pytest, even on SIGKILL) and stopped at the
    end of the session. A broker that cannot start fails the requesting tests: it never skips
    them.
    """
    broker = LocalBroker(
        port=free_port(),
        data_dir=tmp_path_factory.mktemp("kafka-broker"),
        sasl_port=free_port(),
        sasl_users={SASL_TEST_USER: SASL_TEST_PASSWORD},
    )
    try:
        broker.start(owned=True)
    except BrokerError as exc:
        pytest.fail(f"the local Kafka broker did not start: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """The bootstrap address of a real Kafka broker shared by the whole test session.

    ``$VIGIL_TEST_BOOTSTRAP`` names an external broker to use instead of `local_kafka`.
    """
    external = os.environ.get("VIGIL_TEST_BOOTSTRAP")
    if external:
        return external
    broker: LocalBroker = request.getfixturevalue("local_kafka")
    return broker.bootstrap


# --------------------------------------------------------------------------- Kafka SASL


@dataclass(frozen=True)
class SaslKafka:
    """A broker's SASL_PLAINTEXT listener and a user it knows."""

    bootstrap: str
    username: str
    password: str


@pytest.fixture(scope="session")
def kafka_sasl(local_kafka: LocalBroker) -> SaslKafka:
    """The SASL_PLAINTEXT listener of `local_kafka` (also with ``$VIGIL_TEST_BOOTSTRAP``:
    an external broker's security is unknown, so SASL tests always use a local one)."""
    assert local_kafka.sasl_bootstrap is not None
    return SaslKafka(local_kafka.sasl_bootstrap, SASL_TEST_USER, SASL_TEST_PASSWORD)


# --------------------------------------------------------------------------- logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process configure logging onto pytest's captured streams, which are
    closed after the test: put structlog and the root logger back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
