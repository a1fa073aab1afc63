"""Bytes to contract messages and back, with orjson. Decode errors are values, not crashes.

A failed decode returns a :class:`DecodeError` carrying a short machine-readable ``reason``
(a bounded set, used as a metric label and in the dead letter) and a human ``detail``.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar

import msgspec
import orjson
from pydantic import BaseModel, ValidationError

from stream.schemas import DeadLetter, MetricEvent, MetricSample

__all__ = [
    "DECODE_REASONS",
    "DecodeError",
    "MetricRecord",
    "dead_letter",
    "decode",
    "decode_metric",
    "encode",
    "parse_object",
    "validate",
]

M = TypeVar("M", bound=BaseModel)

MAX_MESSAGE_BYTES: Final = 1_048_576
"""By default, messages larger than this are dead-lettered unparsed (``too_large``)."""

MAX_DEAD_LETTER_BYTES: Final = 524_288
"""At most this much of an original message is kept in its dead letter (base64 grows it by a
third, and the dead letter must still fit Kafka's default 1 MiB message limit)."""

DECODE_REASONS: Final = (
    "empty",
    "too_large",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "non_finite",
    "bad_timestamp",
    "invalid_value",
    "unexpected",
)
"""Every reason a message can be dead-lettered for (pre-initialised metric labels)."""


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Why a message could not be decoded."""

    reason: str
    detail: str


def decode(
    raw: bytes | None, model: type[M], max_bytes: int = MAX_MESSAGE_BYTES
) -> M | DecodeError:
    """Parse JSON bytes into ``model``; never raises for bad input.

    Examples:
        >>> from stream.schemas import MetricEvent
        >>> decode(b'{"ts": 0, "service": "api", "metrics": {"cpu": 1}}', MetricEvent).service
        'api'
        >>> decode(b'{"ts": 0, "service": "api", "metrics": {"cpu": "hot"}}', MetricEvent)
        DecodeError(reason='wrong_type', detail='metrics.cpu: Input should be a valid number')
        >>> decode(b"{oops", MetricEvent).reason
        'invalid_json'
    """
    data = parse_object(raw, max_bytes)
    return data if isinstance(data, DecodeError) else validate(data, model)


def parse_object(
    raw: bytes | None, max_bytes: int = MAX_MESSAGE_BYTES
) -> dict[str, Any] | DecodeError:
    """The JSON object in ``raw``, not yet validated against a schema; never raises."""
    if not raw:
        return DecodeError("empty", "message has no value")
    if len(raw) > max_bytes:
        return DecodeError("too_large", f"message is {len(raw)} bytes (limit {max_bytes})")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = "non_finite" if "infinity" in str(exc) else "invalid_json"
        return DecodeError(reason, str(exc))
    if not isinstance(data, dict):
        return DecodeError("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    return data


def validate(data: dict[str, Any], model: type[M]) -> M | DecodeError:
    """``data`` (a parsed JSON object) as ``model``, or why it is not one; never raises."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return _validation_error(exc)


_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_ExactFloat = Annotated[float, msgspec.Meta(gt=-(2.0**53), lt=2.0**53)]
"""A value a float holds exactly if it came as an integer; larger ones go to pydantic, which
keeps an integer such as 2**53 + 1 as it is (the fast path would round it). Bounded, it is
finite: JSON has no NaN, and a number too large for a float (``1e999``, read as inf) is out
of range, so the fast path needs no check of its own for non-finite values."""


class MetricRecord(msgspec.Struct, frozen=True, gc=False):
    """A metric event decoded by the fast path: the fields the pipeline reads, already valid.

    Only messages that :class:`~stream.schemas.MetricEvent` accepts, with the same values,
    ever become a ``MetricRecord`` (``tests/unit/contract/test_codec.py`` checks it property-based).
    """

    ts: datetime
    service: str
    metrics: dict[str, float]
    region: str | None = None
    host: str | None = None
    deploy_recent: bool = False


class _MetricWire(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """A metric message as msgspec checks it, before its timestamp is settled.

    Unknown fields go to pydantic: msgspec skips them unchecked (invalid UTF-8, a number
    that overflows, nesting past orjson's depth limit), which orjson rejects.
    """

    ts: str | float
    service: _Name
    metrics: Annotated[dict[_Name, _ExactFloat], msgspec.Meta(min_length=1)]
    region: str | None = None
    host: str | None = None
    deploy_recent: bool = False


_wire_decoder: Final = msgspec.json.Decoder(_MetricWire)


def decode_metric(
    raw: bytes | None, max_bytes: int = MAX_MESSAGE_BYTES
) -> MetricSample | DecodeError:
    """Decode a metric event: fast for the common shape, exactly as :func:`decode` otherwise.

    msgspec decodes and type-checks the message in one pass (about five times faster than pydantic).
    Anything it cannot vouch for (a type pydantic coerces, whitespace around the service, a
    timestamp without an offset or with sub-microsecond digits, a non-finite value, a field
    the contract does not name, any error) goes through the pydantic
    :class:`~stream.schemas.MetricEvent`, which stays the one authority on what is valid and
    on the reason a message is rejected.

    Examples:
        >>> decode_metric(b'{"ts": 0, "service": "api", "metrics": {"cpu": 1}}').metrics
        {'cpu': 1.0}
        >>> decode_metric(b'{"ts": 0, "service": "api", "metrics": {}}').reason
        'invalid_value'
    """
    if raw and len(raw) <= max_bytes:
        try:
            wire = _wire_decoder.decode(raw)
        except Exception:  # whatever msgspec rejects, pydantic explains
            pass
        else:
            record = _settled(wire)
            if record is not None:
                return record
    return decode(raw, MetricEvent, max_bytes)


def _settled(wire: _MetricWire) -> MetricRecord | None:
    """The record with its time parsed into UTC, or None when pydantic must decide."""
    service = wire.service
    if service.strip() != service:
        return None
    ts = _recent_times.get(wire.ts) or _utc_time(wire.ts)
    if ts is None:
        return None
    return MetricRecord(ts, service, wire.metrics, wire.region, wire.host, wire.deploy_recent)


_recent_times: dict[str | float, datetime] = {}
"""Recently parsed timestamps: services scraped together share their time."""


def _utc_time(ts: str | float) -> datetime | None:
    """RFC 3339 text with an offset or epoch milliseconds, in UTC (remembered); None when
    unsure."""
    parsed = _parse_rfc3339(ts) if isinstance(ts, str) else _parse_epoch_ms(ts)
    if parsed is not None:
        if len(_recent_times) >= 1024:
            _recent_times.clear()
        _recent_times[ts] = parsed
    return parsed


def _parse_epoch_ms(ts: float) -> datetime | None:
    if not math.isfinite(ts):
        return None
    try:
        return datetime.fromtimestamp(ts / 1000.0, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_rfc3339(ts: str) -> datetime | None:
    dot = ts.find(".")
    if dot != -1 and ts[dot + 7 : dot + 8].isdigit():
        return None  # sub-microsecond digits: msgspec rounds them, pydantic truncates
    try:
        parsed = msgspec.convert(ts, datetime)
    except msgspec.ValidationError:
        return None
    if parsed.tzinfo is None:
        return None
    try:
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    except OverflowError:
        return None


def _validation_error(exc: ValidationError) -> DecodeError:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    location = ".".join(str(part) for part in first["loc"])
    # A union of int|float reports one error per branch: name the field once.
    for suffix in (".float", ".int"):
        location = location.removesuffix(suffix)
    message = str(first["msg"]).removeprefix("Value error, ")
    kind = str(first["type"])
    if kind == "missing":
        reason = "missing_field"
    elif location == "ts" or location.startswith("ts."):
        reason = "bad_timestamp"
    elif "finite" in message:
        reason = "non_finite"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        reason = "wrong_type"
    else:
        reason = "invalid_value"
    return DecodeError(reason, f"{location}: {message}")


def encode(message: BaseModel) -> bytes:
    """Serialise a contract message to compact JSON bytes."""
    return orjson.dumps(message.model_dump(mode="json"))


def dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: DecodeError,
    failed_at: datetime,
) -> DeadLetter:
    """The dead letter for a message that failed: original bytes, where it was, and why.

    Originals over :data:`MAX_DEAD_LETTER_BYTES` are truncated (``value_truncated``), with
    their full size in ``value_size``; the full message stays at its source offset.
    """
    value = value or b""
    return DeadLetter(
        topic=topic,
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(value[:MAX_DEAD_LETTER_BYTES]).decode(),
        value_size=len(value),
        value_truncated=len(value) > MAX_DEAD_LETTER_BYTES,
        reason=error.reason,
        error=error.detail,
        failed_at=failed_at,
    )
