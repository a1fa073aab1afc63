"""Fuzz inputs for the detector's event decoders, drawn from a ``random.Random``.

Well-formed events are built from the contract's fields (``stream/schemas.py``) and carry the
values they must decode to. Malformed ones are made from well-formed ones by the mutations
below; each knows the reasons a decoder may give when the mutation decides the outcome, and
says ``"either"`` when it does not (a flipped byte may still leave a valid event).

The unit tests (``tests/unit/contract/test_parser_fuzz.py``) drive :func:`generate` with
hypothesis's ``randoms()``, the broker test (``tests/integration/test_fuzz_dlq.py``) with a seeded
``random.Random``: the same code, so the broker sees the kinds of input the unit tests check.
Every draw goes through ``rng`` (text comes from one ``randbytes`` call, not one per
character), which keeps hypothesis fast and the seeded run reproducible.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import orjson
from pydantic import BaseModel

from stream.codec import DECODE_REASONS, DecodeError, decode, decode_metric
from stream.schemas import Feedback, IncidentEvent, LogEvent, MetricEvent

__all__ = [
    "MUTATIONS",
    "SCHEMAS",
    "TOPICS",
    "FuzzInput",
    "Topic",
    "decoder_for",
    "generate",
    "generate_many",
]

Topic = Literal["metrics", "logs", "incidents", "feedback"]
Outcome = Literal["valid", "invalid", "either"]

TOPICS: tuple[Topic, ...] = ("metrics", "logs", "incidents", "feedback")
SCHEMAS: dict[Topic, type[BaseModel]] = {
    "metrics": MetricEvent,
    "logs": LogEvent,
    "incidents": IncidentEvent,
    "feedback": Feedback,
}
ANY_REASON = frozenset(DECODE_REASONS) - {"unexpected"}
"""What a decoder may answer for bad bytes (``unexpected`` is the pipeline's, not decode's)."""


def decoder_for(topic: Topic, max_bytes: int) -> Callable[[bytes | None], object]:
    """What the detector calls on a record of ``topic`` (``stream/detector/detector.py``,
    ``stream/detector/log_stage.py``, ``stream/detector/risk_stage.py``)."""
    if topic == "metrics":
        return lambda raw: decode_metric(raw, max_bytes)
    model = SCHEMAS[topic]
    return lambda raw: decode(raw, model, max_bytes)


@dataclass(frozen=True, slots=True)
class FuzzInput:
    """One generated record value, and what decoding it must give."""

    topic: Topic
    kind: str
    """``valid``, or the mutation that made it."""
    raw: bytes | None
    outcome: Outcome
    expected: dict[str, Any] | None = None
    """A valid input's decoded field values (``ts`` as a UTC datetime)."""
    reasons: frozenset[str] = ANY_REASON
    """An invalid input's possible reasons."""

    def check(self, result: object) -> None:
        """Fail unless ``result`` (a decoder's answer) is what this input must decode to."""
        if isinstance(result, DecodeError):
            assert result.reason in ANY_REASON, result
            assert result.detail.strip(), result
            assert self.outcome != "valid", (self.kind, self.raw, result)
            assert self.outcome == "either" or result.reason in self.reasons, (
                self.kind,
                self.raw,
                result,
                sorted(self.reasons),
            )
            return
        assert self.outcome != "invalid", (self.kind, self.raw, result)
        if self.expected is None:
            return
        for name, want in self.expected.items():
            got = getattr(result, name)
            if name == "ts":
                assert abs(got - want) <= timedelta(microseconds=1), (got, want, self.raw)
                assert got.utcoffset() == timedelta(0)
            elif name == "metrics":
                assert {k: float(v) for k, v in got.items()} == want, (got, want)
            else:
                assert got == want, (name, got, want, self.raw)


# -------------------------------------------------------------------------------- values

_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "-_.:/@#%+=!?()[]{}<>'\"\\,;*&$~` "
    "éüßñøçЖж中文日本語한국어😀🚀\u00a0\u2603\x7f"
)
_SERVICES = ("api", "payments", "db-1", "checkout.eu", "search_v2", "ünïcødé", "服务", "🚀-svc")
_METRICS = ("cpu", "cpu_p95", "latency_p95", "mem.rss", "errors_total", "gc pause ms", "ünits")
_FLOATS = (
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e300,
    123456.789,
    9007199254740993.0,
)
_LEVELS = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARN",
    "ERROR": "ERROR",
    "FATAL": "FATAL",
    "warning": "WARN",
    "Warning": "WARN",
    "critical": "FATAL",
    "info": "INFO",
    " error ": "ERROR",
    "Fatal\t": "FATAL",
}
_BASE = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _text(rng: random.Random, low: int, high: int) -> str:
    """Text of ``low``..``high`` characters from a mixed alphabet (inner spaces included)."""
    size = rng.randint(low, high)
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in rng.randbytes(size))


def _name(rng: random.Random, low: int = 1, high: int = 40) -> str:
    """Text that starts and ends with a non-space character."""
    text = _text(rng, low, high).replace(" ", "_").replace("\u00a0", "_")
    return text or "x"


def _service(rng: random.Random) -> tuple[str, str]:
    """A service name as sent, and as decoded (whitespace around it is stripped)."""
    roll = rng.random()
    if roll < 0.7:
        name = rng.choice(_SERVICES)
    elif roll < 0.95:
        name = _name(rng)
    else:
        name = _name(rng, 200, 200)
    if rng.random() < 0.1:
        return rng.choice([" ", "\t", "  \n"]) + name + rng.choice(["", " ", "\t"]), name
    return name, name


def _timestamp(rng: random.Random) -> tuple[object, datetime]:
    """An event time as sent (RFC 3339 or epoch milliseconds), and in UTC."""
    near = rng.random() < 0.85
    if near:
        when = _BASE + timedelta(microseconds=rng.randint(-3_600_000_000, 86_400_000_000))
    else:  # anywhere from year 2 to 9998
        when = datetime(2, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 315_400_000_000))
    roll = rng.random()
    if roll < 0.3:
        millis = (when - _EPOCH) // timedelta(milliseconds=1)
        return millis, _EPOCH + timedelta(milliseconds=millis)
    if roll < 0.4 and near:  # far from 1970, a double holds seconds to worse than 1 µs
        fraction = rng.choice([0.5, 0.25, 0.125])
        fractional = (when - _EPOCH) // timedelta(milliseconds=1) + fraction
        return fractional, _EPOCH + timedelta(milliseconds=fractional)
    if roll < 0.7:
        return when.isoformat().replace("+00:00", "Z"), when
    offset = timezone(timedelta(minutes=15 * rng.randint(-48, 56)))
    return when.astimezone(offset).isoformat(), when


def _number(rng: random.Random) -> int | float:
    roll = rng.random()
    if roll < 0.2:
        return rng.choice(_FLOATS)
    if roll < 0.4:
        return rng.randint(-(2**63), 2**63 - 1) if rng.random() < 0.2 else rng.randint(-5, 10_000)
    if roll < 0.6:
        return rng.uniform(-1.0, 1.0) * 10.0 ** rng.randint(-300, 300)
    return round(rng.uniform(0.0, 1000.0), rng.randint(0, 6))


def _optional_text(rng: random.Random, high: int = 30) -> str | None:
    return None if rng.random() < 0.2 else _text(rng, 0, high)


def _junk(rng: random.Random, depth: int = 3) -> Any:
    """A JSON value of any type, nested up to ``depth``."""
    roll = rng.randrange(8 if depth > 0 else 6)
    if roll == 0:
        return None
    if roll == 1:
        return rng.random() < 0.5
    if roll == 2:
        return _number(rng)
    if roll in (3, 4, 5):
        return _text(rng, 0, 12)
    if roll == 6:
        return [_junk(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {_text(rng, 0, 6): _junk(rng, depth - 1) for _ in range(rng.randint(0, 3))}


def _valid(rng: random.Random, topic: Topic) -> tuple[dict[str, Any], dict[str, Any]]:
    """A well-formed event of ``topic``: the JSON object, and its decoded field values."""
    ts, ts_utc = _timestamp(rng)
    data: dict[str, Any] = {"ts": ts}
    expected: dict[str, Any] = {"ts": ts_utc}
    if topic == "feedback":
        data["alert_id"] = expected["alert_id"] = _text(rng, 1, 64)
        data["verdict"] = expected["verdict"] = rng.choice(["true_positive", "false_positive"])
        if rng.random() < 0.5:
            data["by"] = expected["by"] = _optional_text(rng)
        if rng.random() < 0.5:
            data["service"], expected["service"] = _service(rng)
    else:
        data["service"], expected["service"] = _service(rng)
    if topic == "metrics":
        names = rng.sample(_METRICS, rng.randint(1, 4))
        if rng.random() < 0.2:
            names.append(_text(rng, 1, 200) if rng.random() < 0.8 else _name(rng, 200, 200))
        data["metrics"] = {name: _number(rng) for name in names}
        expected["metrics"] = {k: float(v) for k, v in data["metrics"].items()}
        for field in ("region", "host"):
            if rng.random() < 0.5:
                data[field] = expected[field] = _optional_text(rng)
        if rng.random() < 0.5:
            value = rng.choice([True, False, 0, 1, "true", "false"])
            data["deploy_recent"] = value
            expected["deploy_recent"] = value in (True, 1, "true")
    elif topic == "logs":
        level = rng.choice(sorted(_LEVELS))
        data["level"], expected["level"] = level, _LEVELS[level]
        roll = rng.random()
        if roll < 0.5:
            message = f"request {rng.randint(0, 999)} served in {rng.randint(1, 900)} ms"
        elif roll < 0.97:
            message = _text(rng, 0, 300)
        else:
            message = _text(rng, 1, 20) * rng.randint(100, 3000)
        data["message"] = expected["message"] = message
        for field in ("host", "trace_id"):
            if rng.random() < 0.3:
                data[field] = expected[field] = _optional_text(rng)
    elif topic == "incidents":
        data["incident_id"] = expected["incident_id"] = _text(rng, 1, 40)
        data["status"] = expected["status"] = rng.choice(["opened", "resolved"])
        if rng.random() < 0.5:
            data["severity"] = expected["severity"] = _optional_text(rng)
    if rng.random() < 0.2:  # unknown fields are ignored
        for _ in range(rng.randint(1, 3)):
            data.setdefault(f"x_{_name(rng, 1, 8)}", _junk(rng))
    return data, expected


def _dumps(rng: random.Random, data: object) -> bytes:
    """Compact orjson, or the standard library's JSON with spacing and ``\\u`` escapes."""
    if rng.random() < 0.8:
        return orjson.dumps(data)
    return json.dumps(data, indent=rng.choice([None, 2]), ensure_ascii=rng.random() < 0.5).encode()


# ----------------------------------------------------------------------------- mutations

_STRING_FIELDS: dict[Topic, tuple[str, ...]] = {
    "metrics": ("service", "region", "host"),
    "logs": ("service", "message", "host", "trace_id"),
    "incidents": ("incident_id", "service", "severity"),
    "feedback": ("alert_id", "by"),
}
_CONSTRAINED = {"service"}
"""String fields with a length limit (200 characters)."""
_LITERALS = {"level", "status", "verdict"}
_OUT_OF_RANGE: dict[str, tuple[object, ...]] = {
    "ts": (
        1e30,
        -1e30,
        2**63 - 1,
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-23T08:00:00",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "",
    ),
    "service": ("", " ", "\t\n", "s" * 201, " " + "s" * 201 + " "),
    "incident_id": ("",),
    "alert_id": ("",),
    "level": ("LOUD", "", "INFORMATION", "warn ing"),
    "status": ("closed", "OPENED", "exploded"),
    "verdict": ("maybe", "TRUE_POSITIVE", ""),
    "metrics": ({}, {"": 1.0}, {"m" * 201: 1.0}),
}
_NOT_STRINGS: tuple[object, ...] = (7, -2.5, True, False, [], [1, "a"], {}, {"a": {"b": [None]}})
_NOT_NUMBERS: tuple[object, ...] = ("1.5", "hot", True, None, [1.0], {"v": 1})
_WRONG_TYPES: dict[str, tuple[object, ...]] = {
    "ts": (True, False, [], [1795420800000], {}, {"a": {"b": [None]}}),
    "metrics": (7, -2.5, True, False, [], [1, "a"], "cpu"),
    "deploy_recent": (7, -2.5, "maybe", [], [1, "a"], {}, None),
}
"""Values of a type the field does not take (others are strings: ``_NOT_STRINGS``)."""
_INVALID_UTF8 = (
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc0\x80",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
)
_MARK = "@@MUTATE@@"


def _required(topic: Topic) -> list[str]:
    return [n for n, f in SCHEMAS[topic].model_fields.items() if f.is_required()]


def _spliced(data: dict[str, Any], field: str, token: bytes) -> bytes:
    """``data`` as JSON with ``field``'s value replaced by the raw JSON ``token``."""
    return orjson.dumps({**data, field: _MARK}).replace(orjson.dumps(_MARK), token)


def _field_reason(field: str, *, wrong_type: bool) -> frozenset[str]:
    if field == "ts":
        return frozenset({"bad_timestamp"})
    if field in _LITERALS or not wrong_type:
        return frozenset({"invalid_value"})
    return frozenset({"wrong_type"})


Made = tuple[bytes | None, Outcome, frozenset[str] | dict[str, Any] | None]
"""What a mutation made: the bytes, the outcome, and the reasons (invalid) or the decoded
values (valid) or None (either)."""


def _empty(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    return rng.choice([b"", None]), "invalid", frozenset({"empty"})


def _random_bytes(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    return rng.randbytes(rng.randint(1, 300)), "invalid", ANY_REASON


def _invalid_utf8(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    """An invalid UTF-8 sequence inside a string: a known field's, or an unknown one's."""
    field = rng.choice([*_STRING_FIELDS[topic], "x_note"])
    text = _text(rng, 0, 5) + _MARK + _text(rng, 0, 5)
    raw = orjson.dumps({**data, field: text}).replace(_MARK.encode(), rng.choice(_INVALID_UTF8))
    return raw, "invalid", frozenset({"invalid_json"})


def _not_an_object(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    value = rng.choice([[data], list(data.values()), 42, -0.5, "event", None, True, []])
    return _dumps(rng, value), "invalid", frozenset({"not_an_object"})


def _missing_field(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    required = _required(topic)
    gone = rng.sample(required, rng.randint(1, len(required)))
    kept = {k: v for k, v in data.items() if k not in gone}
    return _dumps(rng, kept), "invalid", frozenset({"missing_field"})


def _wrong_type(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    """A field of a JSON type its schema does not take (or a metric value of one)."""
    model = SCHEMAS[topic]
    field = rng.choice(
        [*model.model_fields, "metrics.value"] if topic == "metrics" else [*model.model_fields]
    )
    if field == "metrics.value":
        metrics = {**data["metrics"], rng.choice(_METRICS): rng.choice(_NOT_NUMBERS)}
        return _dumps(rng, {**data, "metrics": metrics}), "invalid", frozenset({"wrong_type"})
    values = _WRONG_TYPES.get(field, _NOT_STRINGS)
    if model.model_fields[field].is_required():
        values = (*values, None)
    value = rng.choice(values)
    return _dumps(rng, {**data, field: value}), "invalid", _field_reason(field, wrong_type=True)


def _out_of_range(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    field = rng.choice([f for f in SCHEMAS[topic].model_fields if f in _OUT_OF_RANGE])
    value = rng.choice(_OUT_OF_RANGE[field])
    return _dumps(rng, {**data, field: value}), "invalid", _field_reason(field, wrong_type=False)


def _non_finite(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    """A number that overflows a double (orjson: ``non_finite``), or a NaN/Infinity token
    (not JSON at all), in a metric value, the timestamp, or an unknown field."""
    token = rng.choice([b"1e999", b"-1e999", b"1E400", b"1" + b"0" * 400, b"NaN", b"Infinity"])
    reasons = frozenset({"invalid_json" if token.isalpha() else "non_finite"})
    field = rng.choice(["ts", "x_value"] + (["metrics"] * 2 if topic == "metrics" else []))
    if field == "metrics":
        marked = {**data, "metrics": {**data["metrics"], rng.choice(_METRICS): _MARK}}
    else:
        marked = {**data, field: _MARK}
    return orjson.dumps(marked).replace(orjson.dumps(_MARK), token), "invalid", reasons


def _huge_string(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    """A string field of a few hundred characters, or of half to 1.5 times the size limit in
    bytes."""
    field = rng.choice(_STRING_FIELDS[topic])
    chunk = _name(rng, 1, 16)
    if rng.random() < 0.5:  # past the 200 characters of a service name
        size = rng.randint(201, 5_000)
        value = (chunk * (size // len(chunk) + 1))[:size]
    else:
        size = rng.randint(max_bytes // 2, max_bytes * 3 // 2)
        value = chunk * (size // len(chunk.encode()) + 1)
    raw = orjson.dumps({**data, field: value})  # past max_bytes: generate() makes it too_large
    if field in _CONSTRAINED:
        return raw, "invalid", frozenset({"invalid_value"})
    return raw, "valid", {field: value}


def _deep_nesting(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    """An unknown field nested deep: ignored up to orjson's depth limit, invalid past it."""
    depth = rng.choice([rng.randint(1, 200), rng.randint(1_100, 5_000)])
    opened, closed = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    inner = b"1" if opened == b"[" else b"null"
    raw = _spliced(data, "x_deep", opened * depth + inner + closed * depth)
    if depth > 1_000:
        return raw, "invalid", frozenset({"invalid_json"})
    return raw, "valid", {}


def _truncated(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    raw = _dumps(rng, data)
    return raw[: rng.randint(1, len(raw) - 1)], "invalid", frozenset({"invalid_json"})


def _framing(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    """Bytes around a valid object: whitespace is fine, anything else is not JSON."""
    raw = _dumps(rng, data)
    roll = rng.randrange(5)
    if roll == 0:
        return b" \n\t" + raw + b"\r\n", "valid", {}
    prefix, suffix = [
        (b"\xef\xbb\xbf", b""),
        (b"", b"\x00"),
        (b"", b"}"),
        (b"", raw),
    ][roll - 1]
    return prefix + raw + suffix, "invalid", frozenset({"invalid_json"})


def _junk_fields(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    """The schema's field names with JSON of any type: mostly wrong, sometimes fine."""
    names = list(SCHEMAS[topic].model_fields)
    junk = {n: _junk(rng) if rng.random() < 0.6 else data.get(n) for n in names}
    return _dumps(rng, {n: v for n, v in junk.items() if rng.random() < 0.9}), "either", None


def _byte_edits(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    """One to four bytes replaced, inserted or deleted."""
    raw = bytearray(_dumps(rng, data))
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(raw))
        op = rng.randrange(3)
        if op == 0:
            raw[at] = rng.randrange(256)
        elif op == 1:
            raw.insert(at, rng.randrange(256))
        elif len(raw) > 1:
            del raw[at]
    return bytes(raw), "either", None


def _duplicate_key(rng: random.Random, topic: Topic, data: dict[str, Any], max_bytes: int) -> Made:
    """A field given twice: the last one wins, as in orjson."""
    field = rng.choice(list(data))
    raw = orjson.dumps(data)
    again = orjson.dumps({field: _junk(rng, 1)})[1:-1]
    return raw[:-1] + b"," + again + b"}", "either", None


Mutation = Callable[[random.Random, Topic, dict[str, Any], int], Made]
MUTATIONS: dict[str, Mutation] = {
    "empty": _empty,
    "random_bytes": _random_bytes,
    "invalid_utf8": _invalid_utf8,
    "not_an_object": _not_an_object,
    "missing_field": _missing_field,
    "wrong_type": _wrong_type,
    "out_of_range": _out_of_range,
    "non_finite": _non_finite,
    "huge_string": _huge_string,
    "deep_nesting": _deep_nesting,
    "truncated": _truncated,
    "framing": _framing,
    "junk_fields": _junk_fields,
    "byte_edits": _byte_edits,
    "duplicate_key": _duplicate_key,
}
"""Every way :func:`generate` makes a malformed (or possibly malformed) input."""


def generate(
    rng: random.Random, topic: Topic, max_bytes: int, kind: str | None = None
) -> FuzzInput:
    """One input for ``topic``: ``valid`` or made by the mutation named ``kind``; without a
    kind, well-formed two times in five, else by a mutation drawn from ``rng``."""
    data, expected = _valid(rng, topic)
    raw: bytes | None
    outcome: Outcome
    detail: frozenset[str] | dict[str, Any] | None
    if kind is None:
        kind = "valid" if rng.random() < 0.4 else rng.choice(sorted(MUTATIONS))
    if kind == "valid":
        raw, outcome, detail = _dumps(rng, data), "valid", {}
    else:
        raw, outcome, detail = MUTATIONS[kind](rng, topic, data, max_bytes)
    if raw is not None and len(raw) > max_bytes:  # decided before anything else
        outcome, detail = "invalid", frozenset({"too_large"})
    if outcome == "valid":
        assert isinstance(detail, dict)
        return FuzzInput(topic, kind, raw, outcome, {**expected, **detail})
    if outcome == "invalid":
        assert isinstance(detail, frozenset)
        return FuzzInput(topic, kind, raw, outcome, reasons=detail)
    return FuzzInput(topic, kind, raw, outcome)


def generate_many(
    seed: int, count: int, topics: dict[Topic, float], max_bytes: int
) -> list[FuzzInput]:
    """``count`` inputs, reproducibly from ``seed``, over ``topics`` with their weights."""
    rng = random.Random(seed)
    names, weights = list(topics), list(topics.values())
    return [generate(rng, rng.choices(names, weights)[0], max_bytes) for _ in range(count)]
