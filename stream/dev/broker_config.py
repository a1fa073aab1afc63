"""The local broker's configuration files: ``server.properties`` (KRaft, combined broker and
controller, 127.0.0.1 only, an optional SASL_PLAINTEXT listener) and its log4j2 config."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping
from pathlib import Path

from stream.dev.broker_setup import EXIT_CONFIG, BrokerError

__all__ = [
    "DEV_SASL_PASSWORD",
    "DEV_SASL_USERNAME",
    "HOST",
    "SASL_MECHANISMS",
    "SERVER_LOG",
    "check_sasl_users",
    "random_cluster_id",
    "render_log4j2_config",
    "render_server_properties",
    "scram_credentials",
]

DEV_SASL_USERNAME = "vigil"
"""The user of the optional SASL_PLAINTEXT listener, unless others are given."""
DEV_SASL_PASSWORD = "vigil-dev-password"
"""Its password: a well-known development value, for a broker that listens on 127.0.0.1 only."""
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
"""The mechanisms the SASL_PLAINTEXT listener enables."""
HOST = "127.0.0.1"
SERVER_LOG = "server.log"
_SASL_LISTENER = "SASL_PLAINTEXT"
# Characters that need no quoting in JAAS, properties and --add-scram values.
_SASL_CREDENTIAL = re.compile(r"[A-Za-z0-9._@+~-]{1,128}")


# --------------------------------------------------------------------------- configuration


def render_server_properties(
    *,
    port: int,
    controller_port: int,
    data_dir: Path,
    sasl_port: int | None = None,
    sasl_users: Mapping[str, str] | None = None,
) -> str:
    """Return a KRaft combined-mode ``server.properties`` for one node on 127.0.0.1.

    The quorum is static (``controller.quorum.voters``), so a restart may pick another
    controller port on the same data dir. Internal topics get one partition and replication
    factor 1, which keeps a fresh broker's first consumer group fast.

    With ``sasl_port``, a second listener ``SASL_PLAINTEXT`` authenticates clients with PLAIN
    (``sasl_users``, name → password, defined inline in the listener's JAAS config) or SCRAM
    (credentials created when the storage is formatted: see `LocalBroker`). The broker and
    controller keep talking PLAINTEXT among themselves.

    >>> text = render_server_properties(port=9092, controller_port=9093, data_dir=Path("/d"))
    >>> "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093" in text
    True
    >>> text = render_server_properties(
    ...     port=9092, controller_port=9093, data_dir=Path("/d"), sasl_port=9094,
    ...     sasl_users={"ann": "pw"})
    >>> 'PlainLoginModule required user_ann="pw";' in text
    True
    """
    listeners = f"PLAINTEXT://{HOST}:{port}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    sasl: dict[str, str] = {}
    if sasl_port is not None:
        users = check_sasl_users(sasl_users)
        listeners += f",{_SASL_LISTENER}://{HOST}:{sasl_port}"
        protocols += f",{_SASL_LISTENER}:SASL_PLAINTEXT"
        prefix = f"listener.name.{_SASL_LISTENER.lower()}"
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in users.items())
        sasl = {
            f"{prefix}.sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
            f"{prefix}.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
        }
        for mechanism in SASL_MECHANISMS[1:]:
            sasl[f"{prefix}.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"{listeners},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": protocols,
        **sasl,
        "log.dirs": str(data_dir / "logs"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "true",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
    }
    lines = ["# Written by vigil (stream/dev/broker.py) at each start: edits are overwritten."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def check_sasl_users(users: Mapping[str, str] | None) -> dict[str, str]:
    """The listener's users (the development user if none), checked to need no quoting."""
    checked = dict(users) if users else {DEV_SASL_USERNAME: DEV_SASL_PASSWORD}
    for name, password in checked.items():
        if not (_SASL_CREDENTIAL.fullmatch(name) and _SASL_CREDENTIAL.fullmatch(password)):
            raise BrokerError(
                f"SASL user {name!r}: names and passwords may only hold letters, digits and . _ "
                "@ + ~ - (at most 128)",
                exit_code=EXIT_CONFIG,
            )
    return checked


def scram_credentials(users: Mapping[str, str]) -> list[str]:
    """``kafka-storage format --add-scram`` arguments: each user, for each SCRAM mechanism."""
    return [
        arg
        for name, password in users.items()
        for mechanism in SASL_MECHANISMS[1:]
        for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
    ]


def render_log4j2_config(data_dir: Path) -> str:
    """Return a log4j2 config: INFO to ``<data_dir>/server.log``, only ERROR to stdout.

    The broker's stdout goes to ``broker.out``, so that file stays short and holds the errors
    that explain a failed start.
    """
    log_file = _xml_attr(str(data_dir / SERVER_LOG))
    pattern = _xml_attr(str(data_dir / SERVER_LOG) + ".%i")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by vigil (stream/dev/broker.py) at each start: edits are overwritten. -->
<Configuration status="WARN" shutdownHook="disable">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <ThresholdFilter level="ERROR" onMatch="ACCEPT" onMismatch="DENY"/>
    </Console>
    <RollingFile name="file" fileName="{log_file}" filePattern="{pattern}">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="50 MB"/>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="kafka.authorizer.logger" level="WARN"/>
    <Root level="INFO">
      <AppenderRef ref="stdout"/>
      <AppenderRef ref="file"/>
    </Root>
  </Loggers>
</Configuration>
"""


def _xml_attr(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
    )


def random_cluster_id() -> str:
    """Return a random Kafka cluster id: a uuid4 as 22 chars of unpadded base64url.

    Like Kafka's own ``Uuid.randomUuid``, it never starts with ``-`` (a CLI option lookalike).

    >>> len(random_cluster_id())
    22
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text
