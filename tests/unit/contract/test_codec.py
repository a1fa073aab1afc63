"""stream.codec and stream.schemas: malformed messages become DecodeErrors with a reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.codec import (
    DECODE_REASONS,
    MAX_DEAD_LETTER_BYTES,
    MAX_MESSAGE_BYTES,
    DecodeError,
    MetricRecord,
    dead_letter,
    decode,
    decode_metric,
    encode,
)
from stream.schemas import Feedback, IncidentEvent, LogEvent, MetricEvent

VALID: dict[str, Any] = {
    "ts": "2026-11-23T08:00:00Z",
    "service": "payments",
    "metrics": {"cpu_p95": 72, "latency_p95": 420.5},
}


def _with(**changes: Any) -> bytes:
    """VALID with fields replaced (a value of ... removes the field)."""
    data = {**VALID, **changes}
    return orjson.dumps({k: v for k, v in data.items() if v is not ...})


def _metric_json(ts: str) -> bytes:
    return b'{"ts": ' + ts.encode() + b', "service": "a", "metrics": {"x": 1}}'


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"", "empty", id="empty-bytes"),
        pytest.param(None, "empty", id="none"),
        pytest.param(b"{" + b" " * 1_048_576 + b"}", "too_large", id="over-1MiB"),
        pytest.param(b"{oops", "invalid_json", id="bad-json"),
        pytest.param(b'{"service": "\xff\xfe"}', "invalid_json", id="invalid-utf8"),
        pytest.param(b"[1, 2]", "not_an_object", id="array"),
        pytest.param(b"42", "not_an_object", id="number"),
        pytest.param(_with(service=...), "missing_field", id="no-service"),
        pytest.param(_with(metrics=...), "missing_field", id="no-metrics"),
        pytest.param(_with(ts=...), "missing_field", id="no-ts"),
        pytest.param(_with(metrics={"cpu": "hot"}), "wrong_type", id="metric-string"),
        pytest.param(_with(metrics={"cpu": True}), "wrong_type", id="metric-bool"),
        pytest.param(_with(metrics=[1, 2]), "wrong_type", id="metrics-list"),
        pytest.param(
            b'{"ts": 0, "service": "a", "metrics": {"x": 1e999}}', "non_finite", id="1e999"
        ),
        pytest.param(_with(ts="2026-11-23T08:00:00"), "bad_timestamp", id="naive-ts"),
        pytest.param(_with(ts=True), "bad_timestamp", id="ts-true"),
        pytest.param(_metric_json("1e30"), "bad_timestamp", id="ts-out-of-range"),
        pytest.param(_with(metrics={}), "invalid_value", id="empty-metrics"),
        pytest.param(_with(service=""), "invalid_value", id="empty-service"),
    ],
)
def test_malformed_messages_map_to_their_reason(raw: bytes | None, reason: str) -> None:
    for decoded in (decode(raw, MetricEvent), decode_metric(raw)):
        assert isinstance(decoded, DecodeError)
        assert decoded.reason == reason
        assert decoded.detail


def test_exactly_one_mebibyte_is_accepted() -> None:
    padding = MAX_MESSAGE_BYTES - len(_with(host=""))
    raw = _with(host="h" * padding)
    assert len(raw) == MAX_MESSAGE_BYTES
    assert isinstance(decode(raw, MetricEvent), MetricEvent)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ('"2026-11-23T08:00:00Z"', datetime(2026, 11, 23, 8, 0, tzinfo=UTC)),
        ('"2026-11-23T08:00:00+05:30"', datetime(2026, 11, 23, 2, 30, tzinfo=UTC)),
        ("1795420800000", datetime(2026, 11, 23, 8, 0, tzinfo=UTC)),
        ("1795420800000.5", datetime(2026, 11, 23, 8, 0, 0, 500, tzinfo=UTC)),
    ],
)
def test_valid_timestamps_are_held_in_utc(ts: str, expected: datetime) -> None:
    event = decode(_metric_json(ts), MetricEvent)
    assert isinstance(event, MetricEvent)
    assert event.ts == expected
    assert event.ts.tzinfo == UTC


def test_unknown_fields_are_ignored() -> None:
    event = decode(_with(colour="blue", nested={"a": [1]}), MetricEvent)
    assert isinstance(event, MetricEvent)
    assert event.service == "payments"
    assert event.metrics == {"cpu_p95": 72, "latency_p95": 420.5}


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_timestamp_that_overflows_in_utc_is_bad_timestamp(ts: str) -> None:
    result = decode(_with(ts=ts), MetricEvent)
    assert isinstance(result, DecodeError)
    assert result.reason == "bad_timestamp"


_json_objects = st.builds(
    _with,
    ts=st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats() | st.booleans(),
    metrics=st.dictionaries(st.text(max_size=5), st.floats() | st.text(max_size=3), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | _json_objects)
def test_decode_never_raises(raw: bytes) -> None:
    result = decode(raw, MetricEvent)
    assert isinstance(result, MetricEvent) or result.reason in DECODE_REASONS


def test_dead_letter_keeps_the_original_bytes_and_where_they_came_from() -> None:
    raw = b"\x00\xffnot json"
    error = decode(raw, MetricEvent)
    assert isinstance(error, DecodeError)
    failed_at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    letter = dead_letter(
        topic="vigil.metrics",
        partition=3,
        offset=91822,
        key=b"payments",
        value=raw,
        error=error,
        failed_at=failed_at,
    )
    assert base64.b64decode(letter.value_b64) == raw
    assert (letter.value_size, letter.value_truncated) == (len(raw), False)
    assert letter.key_b64 is not None
    assert base64.b64decode(letter.key_b64) == b"payments"
    assert (letter.topic, letter.partition, letter.offset) == ("vigil.metrics", 3, 91822)
    assert (letter.reason, letter.error) == ("invalid_json", error.detail)
    assert orjson.loads(encode(letter))["failed_at"] == "2026-11-23T09:00:00Z"


def test_dead_letter_truncates_a_huge_original() -> None:
    raw = b"x" * (MAX_DEAD_LETTER_BYTES + 10)
    error = decode(raw, MetricEvent, max_bytes=MAX_DEAD_LETTER_BYTES)
    assert isinstance(error, DecodeError)
    assert error.reason == "too_large"
    letter = dead_letter(
        topic="t",
        partition=0,
        offset=7,
        key=None,
        value=raw,
        error=error,
        failed_at=datetime.now(UTC),
    )
    assert base64.b64decode(letter.value_b64) == raw[:MAX_DEAD_LETTER_BYTES]
    assert (letter.value_size, letter.value_truncated) == (len(raw), True)
    assert len(encode(letter)) < MAX_MESSAGE_BYTES


def test_dead_letter_of_a_keyless_empty_message() -> None:
    error = decode(None, MetricEvent)
    assert isinstance(error, DecodeError)
    letter = dead_letter(
        topic="t",
        partition=0,
        offset=0,
        key=None,
        value=None,
        error=error,
        failed_at=datetime.now(UTC),
    )
    assert letter.key_b64 is None
    assert letter.value_b64 == ""
    assert letter.reason == "empty"


# ------------------------------------------------------------------------------ other schemas


def _log(level: Any) -> bytes:
    return orjson.dumps({"ts": 0, "service": "api", "level": level, "message": "timeout"})


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("warning", "WARN"),
        ("Warning", "WARN"),
        ("WARN", "WARN"),
        ("critical", "FATAL"),
        ("CRITICAL", "FATAL"),
        ("fatal", "FATAL"),
        ("debug", "DEBUG"),
        (" error ", "ERROR"),
    ],
)
def test_log_levels_are_normalised(level: str, expected: str) -> None:
    event = decode(_log(level), LogEvent)
    assert isinstance(event, LogEvent)
    assert event.level == expected


@pytest.mark.parametrize("level", ["verbose", "", 3, None])
def test_unknown_log_levels_are_rejected(level: Any) -> None:
    result = decode(_log(level), LogEvent)
    assert isinstance(result, DecodeError)
    assert result.reason in {"invalid_value", "wrong_type"}


def test_incident_event_validation() -> None:
    good = {"ts": 0, "incident_id": "INC-1", "service": "pay", "status": "opened"}
    event = decode(orjson.dumps(good), IncidentEvent)
    assert isinstance(event, IncidentEvent)
    assert event.severity is None
    for bad, reason in [
        ({**good, "status": "closed"}, "invalid_value"),
        ({**good, "incident_id": ""}, "invalid_value"),
        ({k: v for k, v in good.items() if k != "service"}, "missing_field"),
    ]:
        result = decode(orjson.dumps(bad), IncidentEvent)
        assert isinstance(result, DecodeError)
        assert result.reason == reason, bad


def test_feedback_validation() -> None:
    good = {"ts": "2026-11-23T08:00:00Z", "alert_id": "abc", "verdict": "false_positive"}
    event = decode(orjson.dumps(good), Feedback)
    assert isinstance(event, Feedback)
    assert event.verdict == "false_positive"
    for bad, reason in [
        ({**good, "verdict": "maybe"}, "invalid_value"),
        ({**good, "alert_id": ""}, "invalid_value"),
        ({**good, "ts": "yesterday"}, "bad_timestamp"),
    ]:
        result = decode(orjson.dumps(bad), Feedback)
        assert isinstance(result, DecodeError)
        assert result.reason == reason, bad


_timestamps = (
    st.datetimes(  # hypothesis wants naive bounds; the values get random time zones
        min_value=datetime(1, 1, 2),  # noqa: DTZ001
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.timezones(),
    ).map(lambda d: d.isoformat())
    | st.sampled_from(
        [
            "2026-11-23T08:00:00Z",
            "2026-11-23T08:00:00z",
            "2026-11-23 08:00:00Z",
            "2026-11-23T08:00:00.1234567Z",
            "2026-11-23T08:00:00.1Z",
            "2026-11-23T08:00Z",
            "2026-11-23",
            "2026-11-23T08:00:00",
            "2026-11-23T08:00:00+0530",
            "2026-11-23T08:00:00-00:00",
            "2026-W48-1T08:00:00Z",
            "1795420800000",
            "",
        ]
    )
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.booleans()
    | st.none()
)
_values = (
    st.floats()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.booleans()
    | st.sampled_from(["1.5", "hot", None, [1]])
)
_messages = st.fixed_dictionaries(
    {
        "ts": _timestamps,
        "service": st.sampled_from(["api", " api ", "", "  ", "a" * 200, "a" * 201, 7])
        | st.text(max_size=4),
        "metrics": st.dictionaries(
            st.sampled_from(["cpu", "", "x" * 201]) | st.text(max_size=3), _values, max_size=4
        )
        | st.sampled_from([[], "cpu", None]),
    },
    optional={
        "region": st.sampled_from(["eu", None, 1, ""]),
        "host": st.sampled_from(["h1", None, 2.5]),
        "deploy_recent": st.sampled_from([True, False, None, "true", "yes", 1, 0, 2, "no"]),
        "extra": st.just({"a": [1]}),
    },
)


@settings(max_examples=1500, deadline=None)
@given(_messages)
def test_fast_metric_decoder_agrees_with_the_schema(message: dict[str, Any]) -> None:
    """decode_metric accepts exactly what MetricEvent accepts, with the same values, and
    rejects with the same reason and detail."""
    raw = json.dumps(message).encode()  # big integers and NaN too
    reference = decode(raw, MetricEvent)
    fast = decode_metric(raw)
    if isinstance(reference, DecodeError):
        assert fast == reference
        return
    assert not isinstance(fast, DecodeError)
    assert fast.service == reference.service
    assert fast.ts == reference.ts
    assert fast.ts.isoformat() == reference.ts.isoformat()
    assert fast.metrics == reference.metrics
    if isinstance(fast, MetricRecord):  # the fast path holds floats, as features are
        assert all(type(v) is float for v in fast.metrics.values())
    for name in ("region", "host", "deploy_recent"):
        assert getattr(fast, name) == getattr(reference, name)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"ts": 0, "service": "a", "metrics": {"x": 1e308, "y": 1e308}}',
        b'{"ts": 0, "service": "a", "metrics": {"x": 1}, "metrics": {"y": 2}}',
        b'{"ts": "2026-11-23T08:00:00.9999995Z", "service": "a", "metrics": {"x": 1}}',
        b'{"ts": 1795420800000.0005, "service": "a", "metrics": {"x": 1}}',
        b'{"ts": 9007199254740993, "service": "a", "metrics": {"x": 9007199254740993}}',
    ],
)
def test_fast_metric_decoder_edge_cases_agree(raw: bytes) -> None:
    reference = decode(raw, MetricEvent)
    fast = decode_metric(raw)
    if isinstance(reference, DecodeError):
        assert fast == reference
    else:
        assert not isinstance(fast, DecodeError)
        assert (fast.service, fast.ts, fast.metrics) == (
            reference.service,
            reference.ts,
            reference.metrics,
        )


@pytest.mark.parametrize("value", [2**53 + 1, -(2**53) - 1, 2**53, 1e300])
def test_values_a_float_cannot_hold_exactly_keep_the_schemas_reading(value: float) -> None:
    """Found by the property above: the fast path read 2**53 + 1 as the float 2**53."""
    raw = json.dumps({"ts": 0, "service": "a", "metrics": {"x": value}}).encode()
    fast = decode_metric(raw)
    assert not isinstance(fast, DecodeError)
    assert fast.metrics == {"x": value}
