"""Which delivery attempts are retried, and how long to wait before the next one.

At least once: connection errors, timeouts, 408, 429 and 5xx are retried with exponential
backoff (a 429's or 503's ``Retry-After`` is honoured); any other answer outside 2xx is
permanent (the request itself is wrong: retrying it cannot help) and the message is
dead-lettered.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["Attempt", "backoff_s", "classify_error", "classify_status", "parse_retry_after"]

Outcome = Literal["delivered", "retry", "permanent"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery attempt came to, and why (a metric label: ``http_503``,
    ``timeout``, ...)."""

    outcome: Outcome
    reason: str
    retry_after_s: float | None = None


_RETRIED_STATUSES = frozenset({408, 429})


def classify_status(status: int, retry_after_s: float | None = None) -> Attempt:
    """An HTTP answer's outcome.

    Examples:
        >>> classify_status(202).outcome, classify_status(503).outcome
        ('delivered', 'retry')
        >>> classify_status(429, 2.0)
        Attempt(outcome='retry', reason='http_429', retry_after_s=2.0)
        >>> classify_status(400), classify_status(408).outcome
        (Attempt(outcome='permanent', reason='http_400', retry_after_s=None), 'retry')
    """
    if 200 <= status < 300:
        return Attempt("delivered", f"http_{status}")
    if status in _RETRIED_STATUSES or status >= 500:
        return Attempt("retry", f"http_{status}", retry_after_s)
    return Attempt("permanent", f"http_{status}")


def classify_error(kind: Literal["connect", "timeout", "protocol"]) -> Attempt:
    """A request that got no answer (refused, dropped, too slow) is retried.

    Examples:
        >>> classify_error("timeout")
        Attempt(outcome='retry', reason='timeout', retry_after_s=None)
    """
    return Attempt("retry", kind)


def backoff_s(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    retry_after_s: float | None = None,
    jitter: float = 0.0,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first):
    ``base_s`` doubling up to ``cap_s``, less up to ``jitter`` (a fraction, drawn by the
    caller in [0, 1)) of it; a ``Retry-After`` asks for at least that long (capped too).

    Examples:
        >>> [backoff_s(n, base_s=0.5, cap_s=4) for n in (1, 2, 3, 4, 5)]
        [0.5, 1.0, 2.0, 4.0, 4.0]
        >>> backoff_s(1, base_s=0.5, cap_s=30, retry_after_s=3)
        3.0
        >>> backoff_s(2, base_s=1, cap_s=30, jitter=0.25)
        1.5
    """
    delay = min(cap_s, base_s * 2 ** max(0, attempt - 1)) * (1.0 - jitter)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, cap_s))
    return float(delay)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header in seconds from ``now``: delay-seconds or an HTTP date.

    Examples:
        >>> from datetime import UTC, datetime
        >>> now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
        >>> parse_retry_after("2", now), parse_retry_after(None, now)
        (2.0, None)
        >>> parse_retry_after("Mon, 07 Dec 2026 03:00:05 GMT", now)
        5.0
        >>> parse_retry_after("soon", now) is None
        True
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
