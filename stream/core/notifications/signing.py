"""Webhook signatures: HMAC-SHA256 over a timestamp and the raw body.

The signed material is ``f"{timestamp}."`` followed by the raw body bytes, where
``timestamp`` is the Unix time in whole seconds sent in ``X-Vigil-Timestamp``; the signature
travels as ``X-Vigil-Signature: sha256=<hex digest>``. A receiver recomputes it with the
shared secret over the bytes it received, compares in constant time, and rejects a timestamp
too far from its clock (a replayed request carries an old one, and changing it breaks the
signature).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign", "signature_headers", "verify"]

SIGNATURE_HEADER = "X-Vigil-Signature"
TIMESTAMP_HEADER = "X-Vigil-Timestamp"


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (Unix seconds).

    Examples:
        >>> sign(b'{"a":1}', b"s3cret", 1700000000)
        'sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940'
    """
    material = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret, material, hashlib.sha256).hexdigest()


def signature_headers(body: bytes, secret: bytes, timestamp: int) -> dict[str, str]:
    """The timestamp and signature headers of a webhook request."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(body, secret, timestamp)}


def verify(
    body: bytes,
    secret: bytes,
    *,
    timestamp: str,
    signature: str,
    now_s: float,
    tolerance_s: float = 300.0,
) -> bool:
    """Whether ``signature`` signs ``body`` at ``timestamp`` with ``secret``, and the
    timestamp is within ``tolerance_s`` of ``now_s`` (what a receiver checks).

    Examples:
        >>> headers = signature_headers(b"{}", b"k", 1000)
        >>> verify(b"{}", b"k", timestamp="1000", signature=headers[SIGNATURE_HEADER],
        ...        now_s=1010)
        True
        >>> verify(b"{}", b"k", timestamp="1000", signature=headers[SIGNATURE_HEADER],
        ...        now_s=5000)
        False
        >>> verify(b"{ }", b"k", timestamp="1000", signature=headers[SIGNATURE_HEADER],
        ...        now_s=1010)
        False
    """
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now_s - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(body, secret, sent), signature)
