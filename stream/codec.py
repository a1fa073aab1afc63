"""Bytes to contract messages and back, with orjson. Decode errors are values, not crashes.

A failed decode returns a :class:`DecodeError` carrying a short machine-readable ``reason``
(a bounded set, used as a metric label and in the dead letter) and a human ``detail``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from stream.schemas import DeadLetter

__all__ = [
    "DECODE_REASONS",
    "DecodeError",
    "dead_letter",
    "decode",
    "encode",
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
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return _validation_error(exc)


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
