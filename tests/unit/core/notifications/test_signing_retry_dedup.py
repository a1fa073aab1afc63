"""Webhook signatures, retry classification and backoff, delivery de-duplication."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from stream.core.notifications import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryLedger,
    backoff_s,
    classify_error,
    classify_status,
    parse_retry_after,
    signature_headers,
    verify,
)

SECRET = b"0123456789abcdef"


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"problem_id":"p-1"}'
    headers = signature_headers(body, SECRET, 1_765_000_000)
    expected = hmac.new(SECRET, b"1765000000." + body, hashlib.sha256).hexdigest()
    assert headers == {TIMESTAMP_HEADER: "1765000000", SIGNATURE_HEADER: f"sha256={expected}"}


def test_a_receiver_rejects_changed_bodies_wrong_keys_old_and_forged_timestamps() -> None:
    body = b'{"a":1}'
    sig = signature_headers(body, SECRET, 1000)[SIGNATURE_HEADER]
    assert verify(body, SECRET, timestamp="1000", signature=sig, now_s=1100)
    assert not verify(b'{"a":2}', SECRET, timestamp="1000", signature=sig, now_s=1100)
    assert not verify(body, b"another-secret!!", timestamp="1000", signature=sig, now_s=1100)
    assert not verify(body, SECRET, timestamp="1000", signature=sig, now_s=1000 + 301)
    assert not verify(body, SECRET, timestamp="1200", signature=sig, now_s=1200)  # replayed
    assert not verify(body, SECRET, timestamp="soon", signature=sig, now_s=1000)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (400, "permanent"),
        (401, "permanent"),
        (404, "permanent"),
        (408, "retry"),
        (422, "permanent"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
    ],
)
def test_statuses_are_delivered_retried_or_permanent(status: int, outcome: str) -> None:
    attempt = classify_status(status)
    assert (attempt.outcome, attempt.reason) == (outcome, f"http_{status}")


def test_no_answer_is_retried() -> None:
    for kind in ("connect", "timeout", "protocol"):
        assert classify_error(kind).outcome == "retry"  # type: ignore[arg-type]  # each literal


def test_backoff_doubles_to_its_cap_and_honours_retry_after() -> None:
    delays = [backoff_s(n, base_s=1, cap_s=10) for n in range(1, 7)]
    assert delays == [1, 2, 4, 8, 10, 10]
    assert backoff_s(1, base_s=1, cap_s=10, retry_after_s=7) == 7
    assert backoff_s(1, base_s=1, cap_s=10, retry_after_s=3600) == 10  # capped
    assert backoff_s(4, base_s=1, cap_s=10, retry_after_s=2) == 8  # never shorter
    assert 0.8 * 4 <= backoff_s(3, base_s=1, cap_s=10, jitter=0.2) <= 4


def test_retry_after_as_seconds_or_a_date() -> None:
    now = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("Mon, 07 Dec 2026 03:01:00 GMT", now) == 60
    assert parse_retry_after("Mon, 07 Dec 2026 02:00:00 GMT", now) == 0  # past
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after("", now) is None


def test_the_ledger_sends_each_problem_revision_once_per_sink() -> None:
    ledger = DeliveryLedger()
    assert ledger.claim(("p-1", 1, "slack"))
    assert ledger.claim(("p-1", 1, "pagerduty"))  # another sink
    assert ledger.claim(("p-1", 2, "slack"))  # another revision
    assert not ledger.claim(("p-1", 1, "slack"))
    assert len(ledger) == 3
