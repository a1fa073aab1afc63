"""Fuzzing the event decoders (issue 8): over 10,000 generated inputs, no exception escapes.

Each input topic is decoded as the detector decodes it (``decode_metric`` for metrics,
``decode`` with the topic's schema for the others). Every input must come out as an event,
whose fields are the ones it was generated with, or as a :class:`~stream.codec.DecodeError`
with one of the declared reasons and a detail, which makes a dead letter keeping the bytes.
Metrics are also decoded by the schema itself: the fast path must agree with it.

Inputs: :mod:`tests.fuzz_inputs` (well-formed events and their mutations, the same generator
the broker test uses) driven by hypothesis, plus arbitrary JSON over the schemas' field names
and arbitrary bytes. Runs are derandomized: CI sees the same inputs every time.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from stream.codec import (
    DECODE_REASONS,
    DecodeError,
    MetricRecord,
    dead_letter,
    decode,
    encode,
)
from stream.schemas import MetricEvent
from tests.fuzz_inputs import (
    MUTATIONS,
    SCHEMAS,
    TOPICS,
    FuzzInput,
    Topic,
    decoder_for,
    generate,
    generate_many,
)

MAX_BYTES = 65_536
"""The size limit the decoders get here: small, so ``too_large`` inputs are cheap to make."""

# Examples per topic, for each of the three tests: 4 x (1,500 + 500 + 700) = 10,800 inputs.
GENERATED_EXAMPLES = 1_500
JSON_EXAMPLES = 500
BYTES_EXAMPLES = 700

FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=False)


def _check_decoded(topic: Topic, raw: bytes | None) -> list[object]:
    """Decode ``raw`` as the detector would (and, for metrics, by the schema too); check what
    every answer must satisfy whatever the input; return the answers."""
    results = [decoder_for(topic, MAX_BYTES)(raw)]
    if topic == "metrics":
        results.append(decode(raw, MetricEvent, MAX_BYTES))
    for result in results:
        if isinstance(result, DecodeError):
            assert result.reason in DECODE_REASONS
            assert result.reason != "unexpected"  # the pipeline's reason, never a decoder's
            assert result.detail.strip()
            _check_dead_letter(raw, result)
        else:
            model = SCHEMAS[topic]
            reference = result if isinstance(result, model) else results[-1]
            assert isinstance(reference, model), (raw, results)
            # A decoded event is a fixed point (json: orjson takes no integers past 64 bits).
            again = decode(json.dumps(reference.model_dump(mode="json")).encode(), model, 1 << 30)
            assert again == reference, (raw, again, reference)
    if topic == "metrics":
        fast, reference = results
        if isinstance(fast, DecodeError) or isinstance(reference, DecodeError):
            assert fast == reference, (raw, fast, reference)
        else:
            assert isinstance(fast, MetricRecord | MetricEvent)
            assert isinstance(reference, MetricEvent)
            for name in ("ts", "service", "region", "host", "deploy_recent"):
                assert getattr(fast, name) == getattr(reference, name), (name, raw)
            # The fast path holds floats, as the features do: an integer past 2**53 is rounded.
            assert _floats(fast.metrics) == _floats(reference.metrics), raw
    return results


def _floats(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}


def _check_dead_letter(raw: bytes | None, error: DecodeError) -> None:
    """The dead letter of a failed input keeps its bytes and says why."""
    letter = dead_letter(
        topic="fuzz",
        partition=0,
        offset=7,
        key=b"k",
        value=raw,
        error=error,
        failed_at=datetime(2026, 11, 23, tzinfo=UTC),
    )
    assert base64.b64decode(letter.value_b64) == (raw or b"")
    assert (letter.reason, letter.error) == (error.reason, error.detail)
    assert decode(encode(letter), type(letter), max_bytes=1 << 30) == letter


# -------------------------------------------------------------------- generated inputs


@pytest.mark.parametrize("topic", TOPICS)
@settings(FUZZ, max_examples=GENERATED_EXAMPLES)
@given(
    kind=st.just("valid") | st.sampled_from(sorted(MUTATIONS)),  # half of them well-formed
    # Hypothesis's own Random leans to edge values and first options (and shrinks); a seeded
    # one spreads choices evenly, as the broker test's does.
    rng=st.randoms(use_true_random=False) | st.randoms(use_true_random=True),
)
def test_generated_inputs_decode_as_expected(topic: Topic, kind: str, rng: random.Random) -> None:
    """Well-formed events decode to the values they were made from; each mutation is
    rejected with its reason (or, for those that may leave a valid event, either)."""
    item = generate(rng, topic, MAX_BYTES, kind)
    event(f"{item.kind}: {item.outcome}")
    for result in _check_decoded(topic, item.raw):
        item.check(result)


def test_the_generator_is_reproducible_and_covers_every_mutation() -> None:
    """The broker test's inputs depend on the seed only; every kind and outcome is drawn."""
    weights: dict[Topic, float] = dict.fromkeys(TOPICS, 1.0)
    first = generate_many(8, 3_000, weights, MAX_BYTES)
    assert first == generate_many(8, 3_000, weights, MAX_BYTES)
    assert first != generate_many(9, 3_000, weights, MAX_BYTES)
    assert {i.kind for i in first} == {"valid", *MUTATIONS}
    assert {i.outcome for i in first} == {"valid", "invalid", "either"}
    assert {i.topic for i in first} == set(TOPICS)


def test_a_wrong_expectation_fails() -> None:
    """The check can fail: an input said to be valid that is not, or decodes differently."""
    good = FuzzInput("feedback", "valid", b"{}", "valid", {"alert_id": "a"})
    with pytest.raises(AssertionError):
        good.check(decode(b"{}", SCHEMAS["feedback"]))
    raw = b'{"ts": 0, "alert_id": "b", "verdict": "true_positive"}'
    with pytest.raises(AssertionError):
        good.check(decode(raw, SCHEMAS["feedback"]))
    bad = FuzzInput("feedback", "missing_field", b"{}", "invalid", reasons=frozenset({"empty"}))
    with pytest.raises(AssertionError):
        bad.check(decode(b"{}", SCHEMAS["feedback"]))


# ------------------------------------------------------- arbitrary JSON over the fields

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)  # past 64 bits too
    | st.floats()  # NaN and ±Infinity become bare tokens: not JSON
    | st.text(max_size=20)  # lone surrogates become \ud800 escapes
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_offsets = st.integers(min_value=-1439, max_value=1439).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_times = (
    st.integers(min_value=-(2**47), max_value=2**47)  # about ±4,500 years of milliseconds
    | st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        # whole-minute offsets, and zones' historical ones (seconds: not RFC 3339)
        timezones=st.one_of(*[_offsets] * 3, st.timezones()),
    ).map(datetime.isoformat)
    | st.floats()
    | st.sampled_from(["2026-11-23T08:00:00", "2026-11-23T08:00:00.1234567Z", "2026-11-23"])
)
_numbers = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
)
_plausible: dict[str, st.SearchStrategy[Any]] = {
    "ts": _times,
    "service": st.text(min_size=1, max_size=8) | st.sampled_from([" api ", "", "s" * 201]),
    "metrics": st.dictionaries(st.text(min_size=1, max_size=4), _numbers, min_size=1, max_size=3)
    | st.dictionaries(st.text(max_size=4), _numbers | _scalars, max_size=3),
    "level": st.sampled_from(["INFO", "warning", " Error ", "CRITICAL", "LOUD", "fatal"]),
    "status": st.sampled_from(["opened", "resolved", "closed"]),
    "verdict": st.sampled_from(["true_positive", "false_positive", "maybe"]),
    "deploy_recent": st.sampled_from([True, False, 0, 1, "yes", "off", 2]),
}


def _objects(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects over ``model``'s field names, plausible values three times in four, and
    unknown fields. Required fields are always there (other tests leave them out)."""
    fields = {
        name: st.one_of(*[_plausible.get(name, st.text(max_size=8))] * 3, _json)
        for name in model.model_fields
    }
    required = {n: fields.pop(n) for n, f in model.model_fields.items() if f.is_required()}
    return st.fixed_dictionaries(required, optional={**fields, "x_extra": _json})


@pytest.mark.parametrize("topic", TOPICS)
@settings(FUZZ, max_examples=JSON_EXAMPLES)
@given(data=st.data())
def test_any_json_object_decodes_or_has_a_reason(topic: Topic, data: st.DataObject) -> None:
    message = data.draw(_objects(SCHEMAS[topic]), label="message")
    raw = json.dumps(message, ensure_ascii=data.draw(st.booleans())).encode(errors="surrogatepass")
    results = _check_decoded(topic, raw)
    event("parsed" if not isinstance(results[0], DecodeError) else results[0].reason)


# ----------------------------------------------------------------------- arbitrary bytes


@pytest.mark.parametrize("topic", TOPICS)
@settings(FUZZ, max_examples=BYTES_EXAMPLES)
@given(raw=st.binary(max_size=400) | st.binary(max_size=40).map(lambda b: b"{" + b + b"}"))
def test_any_bytes_decode_or_have_a_reason(topic: Topic, raw: bytes) -> None:
    results = _check_decoded(topic, raw)
    assert all(isinstance(r, DecodeError) for r in results) or raw.lstrip()[:1] == b"{"
