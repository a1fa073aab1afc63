"""A running detector exports the distributions of its scores on ``/metrics``."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from stream.codec import DecodeError, decode_metric
from stream.core.pipeline import MetricPipeline
from stream.detector.detector import Detector
from stream.dev.log_simulate import LogSimulator
from stream.dev.simulate import LogLine, MetricSimulator, Publishable
from stream.schemas import Evidence
from stream.settings import Settings
from tests.integration.kafka_io import produce, run_until

pytestmark = pytest.mark.integration

METRIC_EVENTS = 4_000  # 5 services: 300 each past the 500 of warm-up
LOG_SECONDS = 4_200  # 140 windows of 30 s per service: 40 past the window models' warm-up


def _windows_closed(detector: Detector) -> float:
    registry = detector.registry
    return sum(
        registry.get_sample_value("vigil_log_windows_closed_total", {"empty": empty}) or 0.0
        for empty in ("true", "false")
    )


def _samples(text: str) -> dict[str, list[Sample]]:
    return {
        family.name: family.samples
        for family in text_string_to_metric_families(text)
        if family.name in ("vigil_anomaly_score", "vigil_incident_probability")
        or family.name.startswith(("vigil_incident_vectors", "vigil_log_windows_closed"))
    }


def _series(samples: list[Sample], suffix: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in samples
        if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def _histogram(samples: list[Sample], **labels: str) -> tuple[list[float], float, float]:
    """Cumulative bucket counts (in ``le`` order), the count and the sum of one series."""
    buckets = sorted(_series(samples, "_bucket", **labels), key=lambda s: float(s.labels["le"]))
    (count,) = _series(samples, "_count", **labels)
    (total,) = _series(samples, "_sum", **labels)
    cumulative = [b.value for b in buckets]
    assert cumulative == sorted(cumulative)  # cumulative, as Prometheus expects
    assert buckets[-1].labels["le"] == "+Inf"
    assert cumulative[-1] == count.value
    return cumulative, count.value, total.value


async def test_scores_and_probabilities_are_exported(test_settings: Settings) -> None:
    settings = test_settings
    metric_events = list(MetricSimulator(services=5, seed=8).events(METRIC_EVENTS))
    log_lines = [
        LogLine(e)
        for e in LogSimulator(["api", "db", "web"], lines_per_s=1.0, seed=8).events(LOG_SECONDS)
    ]
    inputs: dict[str, Sequence[Publishable]] = {
        settings.topic_metrics: metric_events,
        settings.topic_logs: log_lines,
    }
    # What the detector's pipeline makes of the metric events (services do not share models,
    # so scoring them all at once gives the same verdicts).
    decoded = []
    for event in metric_events:
        sample = decode_metric(event.to_bytes(), settings.max_message_bytes)
        assert not isinstance(sample, DecodeError)
        decoded.append(sample)
    reference = MetricPipeline(settings.anomaly_config()).process_batch(
        decoded, lambda i: Evidence(topic=settings.topic_metrics, partition=0, offset=i)
    )
    past_warmup = reference.scores[~reference.warming_up]

    detector = Detector(settings)
    await detector.start()  # creates the topics
    try:
        for topic, items in inputs.items():
            messages = ((item.service.encode(), item.to_bytes()) for item in items)
            await produce(settings.bootstrap_servers, topic, messages)
        total = sum(map(len, inputs.values()))
        await run_until(detector, lambda: detector.counts["scored"] >= total)
        # Log windows close as the partitions without lines are found idle (wall clock).
        await run_until(detector, lambda: _windows_closed(detector) >= 3 * 130)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{detector.http_port}") as http:
            samples = _samples((await http.get("/metrics")).text)
    finally:
        await detector.stop()

    scores = samples["vigil_anomaly_score"]
    cumulative, count, total_score = _histogram(scores, source="metrics")
    assert count == len(past_warmup) == METRIC_EVENTS - 5 * settings.warmup_events
    assert total_score == pytest.approx(float(past_warmup.sum()), rel=1e-9)
    bounds = [float(s.labels["le"]) for s in _series(scores, "_bucket", source="metrics")]
    expected = [float((past_warmup <= bound).sum()) for bound in sorted(bounds)]
    assert cumulative == expected

    _, log_count, log_total = _histogram(scores, source="logs")
    closed = sum(s.value for s in samples["vigil_log_windows_closed"] if s.name.endswith("_total"))
    window_model = settings.log_config().anomaly
    warmup = max(window_model.warmup_events, window_model.window_size)
    assert log_count == closed - 3 * warmup > 0  # each service's windows past its warm-up
    assert 0 < log_total < log_count  # scores in [0, 1)

    _, vectors_scored, probability_total = _histogram(samples["vigil_incident_probability"])
    (vectors,) = _series(samples["vigil_incident_vectors"], "_total")
    assert vectors_scored == vectors.value > 0
    assert 0 <= probability_total <= vectors_scored
    assert np.isfinite(probability_total)
