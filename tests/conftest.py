"""Shared pytest fixtures, one section per concern.

Keep each section self-contained; add new ones below the last with the same kind of header.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
import structlog

from stream.broker import BrokerError, LocalBroker, free_port

# --------------------------------------------------------------------------- Kafka broker


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap address of a real Kafka broker shared by the whole test session.

    ``$VIGIL_TEST_BOOTSTRAP`` names an external broker to use instead. Otherwise a local
    single-node broker is started on a free port with a temp data dir, owned by this process
    (it dies with pytest, even on SIGKILL) and stopped at the end of the session. A broker that
    cannot start fails the requesting tests: it never skips them.
    """
    external = os.environ.get("VIGIL_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    broker = LocalBroker(port=free_port(), data_dir=tmp_path_factory.mktemp("kafka-broker"))
    try:
        bootstrap = broker.start(owned=True)
    except BrokerError as exc:
        pytest.fail(f"the local Kafka broker did not start: {exc}", pytrace=False)
    try:
        yield bootstrap
    finally:
        broker.stop()


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
