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
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream.settings import Settings

__all__ = [
    "PLAINTEXT_SETTINGS",
    "KafkaOptions",
    "SaslRedaction",
    "kafka_options",
    "ssl_context",
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
        options["ssl_context"] = ssl_context(settings)
    return options


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of Kafka connections: the CA file (else the system's CAs), the client
    certificate and key if given, hostname checking unless turned off.

    Raises:
        ValueError: a PEM file cannot be loaded or the key password is wrong (the message
            names the setting, never the password).
    """
    from aiokafka.helpers import create_ssl_context  # aiokafka is imported only when needed

    password = settings.ssl_keyfile_password
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.ssl_cafile,
            certfile=settings.ssl_certfile,
            keyfile=settings.ssl_keyfile,
            password=None if password is None else password.get_secret_value(),
        )
    except (ssl.SSLError, OSError):
        raise ValueError(_tls_failure(settings)) from None
    if not settings.ssl_check_hostname:
        context.check_hostname = False  # the certificate chain is still verified
    return context


def _tls_failure(settings: Settings) -> str:
    """Which TLS setting failed to load, in words (the key password is never quoted)."""
    from aiokafka.helpers import create_ssl_context

    try:
        create_ssl_context(cafile=settings.ssl_cafile)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        where = settings.ssl_cafile
        return f"ssl_cafile / VIGIL_SSL_CAFILE: no PEM CA certificate in {where} ({reason})"
    return (
        "ssl_certfile / VIGIL_SSL_CERTFILE: cannot load the client certificate and key "
        "(not PEM, not a matching pair, or the wrong VIGIL_SSL_KEYFILE_PASSWORD)"
    )


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
