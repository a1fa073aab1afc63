"""10,000 fuzzed records through a real broker and detector (issue 8): the detector keeps
running, every bad record is on the DLQ exactly once with its reason, no good one is.

The records come from :mod:`tests.fuzz_inputs` with a fixed seed (the generator the unit
tests fuzz the decoders with): well-formed events and their mutations, for all four input
topics. Which records are bad is what the detector's own decoders say about them offline;
``tests/unit/contract/test_parser_fuzz.py`` checks those decoders against what each input was made
to be, and so does this test for these 10,000.
"""

from __future__ import annotations

import base64
import collections
from typing import Any, cast

import httpx
import orjson
import pytest

from stream.codec import MAX_DEAD_LETTER_BYTES, DecodeError
from stream.detector.detector import Detector
from stream.settings import Settings
from tests.fuzz_inputs import TOPICS, Topic, decoder_for, generate_many
from tests.integration.kafka_io import produce, read_all, run_until

pytestmark = [
    pytest.mark.integration,
    # Metric values up to ±1.8e308, and subnormal ones, are valid (the contract asks for finite
    # numbers): numpy overflows on them inside the models, which carry on with inf and NaN (a
    # service's scores are finite again on its next events). A detector leaves numpy's
    # RuntimeWarnings as warnings; made errors here, each would dead-letter a good event.
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
]

SEED = 8
COUNT = 10_000
MAX_BYTES = 200_000
"""The detector's message size limit here: fuzzed records reach 1.5 times it (``too_large``),
and stay under the broker's 1 MiB."""
WEIGHTS: dict[Topic, float] = {"metrics": 0.45, "logs": 0.45, "incidents": 0.05, "feedback": 0.05}

Position = tuple[str, int, int]
"""Where a record is stored: topic, partition, offset."""


async def test_fuzzed_records_are_processed_or_dead_lettered_once(
    test_settings: Settings,
) -> None:
    settings = test_settings.model_copy(update={"max_message_bytes": MAX_BYTES})
    topics: dict[Topic, str] = {
        "metrics": settings.topic_metrics,
        "logs": settings.topic_logs,
        "incidents": settings.topic_incidents,
        "feedback": settings.topic_feedback,
    }
    inputs = generate_many(SEED, COUNT, WEIGHTS, MAX_BYTES)
    decoded = [decoder_for(item.topic, MAX_BYTES)(item.raw) for item in inputs]
    for item, result in zip(inputs, decoded, strict=True):
        item.check(result)  # the decoders do what the unit tests say, for these inputs too
    bad = {i for i, result in enumerate(decoded) if isinstance(result, DecodeError)}
    assert 0.3 * COUNT < len(bad) < 0.8 * COUNT  # both kinds, plenty of each

    detector = Detector(settings)
    await detector.start()
    try:
        where: dict[Position, int] = {}
        for topic in TOPICS:
            indices = [i for i, item in enumerate(inputs) if item.topic == topic]
            # A None value (no bytes at all) is one of the inputs: aiokafka sends it as null.
            messages = [(f"fuzz-{i}".encode(), cast(bytes, inputs[i].raw)) for i in indices]
            produced = await produce(settings.bootstrap_servers, topics[topic], messages)
            for i, stored in zip(indices, produced, strict=True):
                where[(topics[topic], stored.partition, stored.offset)] = i
        await run_until(detector, lambda: detector.counts["consumed"] >= COUNT, timeout_s=300)

        # Still running: a well-formed event sent now is scored.
        scored = detector.counts["scored"]
        sentinel = b'{"ts": 1795420800000, "service": "api", "metrics": {"cpu": 1}}'
        await produce(settings.bootstrap_servers, settings.topic_metrics, [(b"api", sentinel)])
        await run_until(detector, lambda: detector.counts["scored"] > scored, timeout_s=60)
        assert detector.is_ready()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{detector.http_port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await detector.stop()

    records = await read_all(settings.bootstrap_servers, settings.topic_dlq)
    letters: dict[Position, list[tuple[bytes | None, dict[str, Any]]]] = collections.defaultdict(
        list
    )
    for record in records:
        letter = orjson.loads(record.value)
        letters[(letter["topic"], letter["partition"], letter["offset"])].append(
            (record.key, letter)
        )
    unexpected = [v for v in letters.values() if v[0][1]["reason"] == "unexpected"]
    assert not unexpected, unexpected[:5]  # an exception in the pipeline, not a bad input
    twice = {p: len(v) for p, v in letters.items() if len(v) > 1}
    assert not twice, twice
    strays = [p for p in letters if p not in where]
    assert not strays, strays[:5]
    good_letters = [(inputs[where[p]], letters[p][0][1]) for p in letters if where[p] not in bad]
    assert not good_letters, good_letters[:5]
    assert {where[p] for p in letters} == bad

    for position, [(key, letter)] in letters.items():
        i = where[position]
        raw, error = inputs[i].raw or b"", decoded[i]
        assert isinstance(error, DecodeError)
        assert key == f"fuzz-{i}".encode()
        assert (letter["reason"], letter["error"]) == (error.reason, error.detail)
        assert base64.b64decode(letter["value_b64"]) == raw[:MAX_DEAD_LETTER_BYTES]
        truncated = len(raw) > MAX_DEAD_LETTER_BYTES
        assert (letter["value_size"], letter["value_truncated"]) == (len(raw), truncated)

    good_scored = sum(
        1 for i, item in enumerate(inputs) if i not in bad and item.topic in ("metrics", "logs")
    )
    assert detector.counts["consumed"] == COUNT + 1
    assert detector.counts["dead_lettered"] == len(bad)
    assert detector.counts["scored"] == good_scored + 1
