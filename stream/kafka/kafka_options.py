"""The security keyword arguments every aiokafka client Vigil creates gets from the settings.

``AIOKafkaProducer``, ``AIOKafkaConsumer`` and ``AIOKafkaAdminClient`` take the same
``security_protocol``, ``sasl_mechanism``, ``sasl_plain_username``, ``sasl_plain_password``
(also used by SCRAM) and ``ssl_context`` arguments, so one mapping serves them all::

    producer = AIOKafkaProducer(bootstrap_servers=..., **kafka_options(settings))

The mapping holds the SASL password in clear (aiokafka needs it so): pass it to clients,
never log or print it. aiokafka itself logs every request it sends at DEBUG, the SASL
authentication bytes too (PLAIN's are the password): with SASL on, `kafka_options` has a filter
on the ``aiokafka.conn`` logger blank those out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.settings import Settings

__all__ = [
    "PLAINTEXT_SETTINGS",
    "KafkaOptions",
    "SaslRedaction",
    "kafka_options",
]

KafkaOptions = Mapping[str, Any]
"""Keyword arguments for an aiokafka client's constructor (security only)."""

PLAINTEXT_SETTINGS: Mapping[str, Any] = {
    "security_protocol": "PLAINTEXT",
    "sasl_mechanism": None,
    "sasl_username": None,
    "sasl_password": None,
    "ssl_cafile": None,
    "ssl_certfile": None,
    "ssl_keyfile": None,
    "ssl_keyfile_password": None,
}
"""A ``Settings.model_copy`` update for the local development broker, which speaks PLAINTEXT
(commands that start one themselves apply it, whatever security the environment sets)."""


def kafka_options(settings: Settings) -> dict[str, Any]:
    """The security keyword arguments for aiokafka clients, from ``settings``.

    Examples:
        >>> from stream.settings import Settings
        >>> kafka_options(Settings())
        {'security_protocol': 'PLAINTEXT'}
        >>> options = kafka_options(Settings(
        ...     security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
        ...     sasl_username="vigil", sasl_password="s3cret"))
        >>> sorted(options)
        ['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
    """
    protocol = settings.security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        if settings.sasl_password is None:  # only settings copied past validation get here
            raise ValueError(f"security_protocol {protocol} needs sasl_password")
        _redact_sasl_requests()
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = settings.tls_context()
    return options


class SaslRedaction(logging.Filter):
    """Blanks SASL authentication requests out of aiokafka's DEBUG request log lines.

    Examples:
        >>> from aiokafka.protocol.admin import SaslAuthenticateRequest_v1
        >>> record = logging.LogRecord(
        ...     "aiokafka.conn", logging.DEBUG, "conn.py", 1, "Request %d: %s",
        ...     (7, SaslAuthenticateRequest_v1(b"user\\0user\\0s3cret")), None)
        >>> SaslRedaction().filter(record), record.getMessage()
        (True, 'Request 7: SaslAuthenticateRequest(<redacted>)')
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_is_sasl_request(arg) for arg in args):
            record.args = tuple(
                "SaslAuthenticateRequest(<redacted>)" if _is_sasl_request(arg) else arg
                for arg in args
            )
        return True


def _is_sasl_request(value: object) -> bool:
    return type(value).__name__.startswith("SaslAuthenticateRequest")


def _redact_sasl_requests() -> None:
    """Install `SaslRedaction` on aiokafka's connection logger, once per process."""
    logger = logging.getLogger("aiokafka.conn")
    if not any(isinstance(f, SaslRedaction) for f in logger.filters):
        logger.addFilter(SaslRedaction())
