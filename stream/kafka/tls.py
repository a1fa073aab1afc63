"""The TLS context of Kafka connections, from the files settings name (no settings import:
:mod:`stream.settings` checks the files with it, :mod:`stream.kafka.kafka_options` hands it to
aiokafka clients).
"""

from __future__ import annotations

import ssl

__all__ = ["ssl_context"]


def ssl_context(
    *,
    cafile: str | None,
    certfile: str | None,
    keyfile: str | None,
    password: str | None,
    check_hostname: bool,
) -> ssl.SSLContext:
    """The CA file (else the system's CAs), the client certificate and key if given,
    hostname checking unless turned off.

    Raises:
        ValueError: a PEM file cannot be loaded or the key password is wrong (the message
            names the setting, never the password).
    """
    from aiokafka.helpers import create_ssl_context  # aiokafka is imported only when needed

    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=cafile, certfile=certfile, keyfile=keyfile, password=password
        )
    except (ssl.SSLError, OSError):
        raise ValueError(_tls_failure(cafile)) from None
    if not check_hostname:
        context.check_hostname = False  # the certificate chain is still verified
    return context


def _tls_failure(cafile: str | None) -> str:
    """Which TLS setting failed to load, in words (the key password is never quoted)."""
    from aiokafka.helpers import create_ssl_context

    try:
        create_ssl_context(cafile=cafile)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return f"ssl_cafile / VIGIL_SSL_CAFILE: no PEM CA certificate in {cafile} ({reason})"
    return (
        "ssl_certfile / VIGIL_SSL_CERTFILE: cannot load the client certificate and key "
        "(not PEM, not a matching pair, or the wrong VIGIL_SSL_KEYFILE_PASSWORD)"
    )
