"""Malformed events go to the DLQ with a reason; the loop keeps consuming; counters match."""

from __future__ import annotations

import asyncio
import base64

import httpx
import orjson
import pytest

from stream.detector.detector import Detector
from stream.dev.simulate import MetricSimulator
from stream.settings import Settings
from tests.integration.kafka_io import produce, read_all, run_until

pytestmark = pytest.mark.integration

MALFORMED: list[tuple[bytes, str]] = [
    (b"", "empty"),
    (b"{not json", "invalid_json"),
    (b"\xff\xfe\x00garbage", "invalid_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'{"ts": "2026-11-23T08:00:00Z", "metrics": {"cpu": 1}}', "missing_field"),
    (b'{"ts": "2026-11-23T08:00:00Z", "service": "api", "metrics": {"cpu": "hot"}}', "wrong_type"),
    (b'{"ts": "2026-11-23T08:00:00Z", "service": "api", "metrics": {"cpu": true}}', "wrong_type"),
    (b'{"ts": "2026-11-23T08:00:00Z", "service": "api", "metrics": {"cpu": 1e999}}', "non_finite"),
    (b'{"ts": "yesterday", "service": "api", "metrics": {"cpu": 1}}', "bad_timestamp"),
    (b'{"ts": "2026-11-23T08:00:00", "service": "api", "metrics": {"cpu": 1}}', "bad_timestamp"),
    (b'{"ts": 0, "service": "", "metrics": {"cpu": 1}}', "invalid_value"),
    (b'{"ts": 0, "service": "api", "metrics": {}}', "invalid_value"),
    (b"x" * 300_000, "too_large"),
]


async def test_malformed_events_are_dead_lettered(test_settings: Settings) -> None:
    good = [e.to_bytes() for e in MetricSimulator(services=2, seed=4).events(400)]
    # Interleave: good, bad, good, bad, ... so the loop must keep going after each bad one.
    messages: list[tuple[bytes | None, bytes]] = []
    for i, (bad, _) in enumerate(MALFORMED):
        messages.extend((b"svc", g) for g in good[i * 30 : (i + 1) * 30])
        messages.append((f"bad-{i}".encode(), bad))
    messages.extend((b"svc", g) for g in good[len(MALFORMED) * 30 :])

    detector = Detector(
        test_settings.model_copy(update={"max_batch": 50, "max_message_bytes": 200_000})
    )
    await detector.start()
    try:
        produced = await produce(
            test_settings.bootstrap_servers, test_settings.topic_metrics, messages
        )
        await run_until(detector, lambda: detector.counts["consumed"] >= len(messages))
        await asyncio.sleep(1.1)  # lag gauges refresh at most once a second
        await detector.step()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{detector.http_port}") as http:
            metrics_text = (await http.get("/metrics")).text
    finally:
        await detector.stop()

    assert detector.counts["scored"] == len(good)
    assert detector.counts["dead_lettered"] == len(MALFORMED)
    letters = {
        (orjson.loads(r.value)["partition"], orjson.loads(r.value)["offset"]): (
            r.key,
            orjson.loads(r.value),
        )
        for r in await read_all(test_settings.bootstrap_servers, test_settings.topic_dlq)
    }
    assert len(letters) == len(MALFORMED)
    bad_positions = [
        p for p, (key, _) in zip(produced, messages, strict=True) if key and key.startswith(b"bad-")
    ]
    for position, (raw, reason) in zip(bad_positions, MALFORMED, strict=True):
        key, letter = letters[(position.partition, position.offset)]
        assert letter["reason"] == reason, letter
        assert letter["error"]
        assert letter["topic"] == test_settings.topic_metrics
        assert letter["partition"] == position.partition
        assert base64.b64decode(letter["value_b64"]) == raw
        assert key is not None
        assert key.startswith(b"bad-")

    for reason in {r for _, r in MALFORMED}:
        expected = sum(1 for _, r in MALFORMED if r == reason)
        line = (
            f'vigil_events_dead_lettered_total{{reason="{reason}",'
            f'topic="{test_settings.topic_metrics}"}} {float(expected)}'
        )
        assert line in metrics_text
    assert (
        f'vigil_events_consumed_total{{topic="{test_settings.topic_metrics}"}} '
        f"{float(len(messages))}"
    ) in metrics_text
    lag_lines = [
        line
        for line in metrics_text.splitlines()
        if line.startswith("vigil_consumer_lag_messages{")
    ]
    assert {p.partition for p in produced} == {
        int(line.split('partition="')[1].split('"')[0]) for line in lag_lines
    }
    assert all(line.endswith(" 0.0") for line in lag_lines), lag_lines


LOG_MALFORMED: list[tuple[bytes, str]] = [
    (b'{"ts": "2026-11-23T08:00:00Z", "service": "api", "message": "no level"}', "missing_field"),
    (b"\x00\x9f\x92\x96binary\xff garbage", "invalid_json"),
    (
        b'{"ts": "2026-11-23T08:00:00Z", "service": "api", "level": "LOUD", "message": "x"}',
        "invalid_value",
    ),
    (b'{"ts": "2026-11-23T08:00:00Z", "service": "api", "level": "INFO"}', "missing_field"),
]
# Records over max_message_bytes (too_large) are shown by the metric test above: the broker's
# own default limit (1 MiB) is the detector's, so the producer here could not send one.


async def test_malformed_log_events_are_dead_lettered_and_huge_lines_cut(
    test_settings: Settings,
) -> None:
    def line(i: int, message: str) -> bytes:
        ts = f"2026-11-23T08:00:{i % 60:02d}Z"
        return orjson.dumps({"ts": ts, "service": "api", "level": "INFO", "message": message})

    good = [line(i, f"request {i} served") for i in range(120)]
    huge = line(120, "z" * 1_000_000)  # 1 MB of message, under the 1 MiB record limit
    messages: list[tuple[bytes | None, bytes]] = [(b"api", g) for g in good[:60]]
    for bad, _ in LOG_MALFORMED:
        messages.append((b"api", bad))
    messages.append((b"api", huge))
    messages.extend((b"api", g) for g in good[60:])

    detector = Detector(test_settings)
    await detector.start()
    try:
        await produce(test_settings.bootstrap_servers, test_settings.topic_logs, messages)
        await run_until(detector, lambda: detector.counts["consumed"] >= len(messages))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{detector.http_port}") as http:
            metrics_text = (await http.get("/metrics")).text
    finally:
        await detector.stop()

    assert detector.counts["dead_lettered"] == len(LOG_MALFORMED)
    assert detector.counts["scored"] == len(good) + 1  # the huge line too, cut
    letters = [
        orjson.loads(r.value)
        for r in await read_all(test_settings.bootstrap_servers, test_settings.topic_dlq)
    ]
    assert sorted(letter["reason"] for letter in letters) == sorted(r for _, r in LOG_MALFORMED)
    assert all(letter["topic"] == test_settings.topic_logs for letter in letters)
    assert "vigil_log_messages_truncated_total 1.0" in metrics_text
    assert (
        f'vigil_events_dead_lettered_total{{reason="missing_field",'
        f'topic="{test_settings.topic_logs}"}} 2.0'
    ) in metrics_text


async def test_incident_and_feedback_records_are_labels_or_dead_letters(
    test_settings: Settings,
) -> None:
    incidents: list[tuple[bytes | None, bytes]] = [
        (b"api", b'{"ts": 0, "incident_id": "INC-1", "service": "api", "status": "opened"}'),
        (b"api", b'{"ts": 0, "incident_id": "INC-1", "service": "api", "status": "opened"}'),
        (b"api", b'{"ts": 0, "incident_id": "INC-2", "service": "api", "status": "exploded"}'),
        (b"api", b"{not json"),
    ]
    feedback: list[tuple[bytes | None, bytes]] = [
        (b"a1", b'{"ts": 0, "alert_id": "a1", "verdict": "true_positive"}'),
        (b"a2", b'{"ts": 0, "alert_id": "a2", "verdict": "false_positive"}'),
        (b"a3", b'{"ts": 0, "alert_id": "a3", "verdict": "maybe"}'),
    ]
    detector = Detector(test_settings)
    await detector.start()
    try:
        await produce(test_settings.bootstrap_servers, test_settings.topic_incidents, incidents)
        await produce(test_settings.bootstrap_servers, test_settings.topic_feedback, feedback)
        await run_until(
            detector, lambda: detector.counts["consumed"] >= len(incidents) + len(feedback)
        )
        await detector.flush_commits()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{detector.http_port}") as http:
            metrics_text = (await http.get("/metrics")).text
            models = (await http.get("/models")).json()
    finally:
        await detector.stop()
    letters = [
        orjson.loads(r.value)
        for r in await read_all(test_settings.bootstrap_servers, test_settings.topic_dlq)
    ]
    reasons = sorted((letter["topic"].rsplit(".", 1)[-1], letter["reason"]) for letter in letters)
    assert reasons == [
        ("feedback", "invalid_value"),
        ("incidents", "invalid_json"),
        ("incidents", "invalid_value"),
    ]
    # The duplicate open is counted, not learned twice; feedback on alerts this detector
    # never raised is counted as such.
    assert 'vigil_incident_labels_total{outcome="duplicate"} 1.0' in metrics_text
    assert 'vigil_incident_labels_total{outcome="unknown_service"} 1.0' in metrics_text
    assert 'vigil_incident_events_total{status="opened"} 2.0' in metrics_text
    assert 'vigil_feedback_total{kind="unknown",verdict="true_positive"} 1.0' in metrics_text
    assert 'vigil_feedback_total{kind="unknown",verdict="false_positive"} 1.0' in metrics_text
    assert models["incident_risk"]["labels"]["duplicate"] == 1
