"""stream.telemetry.bulk_histogram.BulkHistogram: whole arrays in, prometheus_client's histogram
out."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from models.incident import RiskConfig
from stream.core.incident_risk import IncidentRiskPipeline
from stream.core.pipeline import MetricPipeline
from stream.dev.simulate import MetricSimulator
from stream.schemas import Evidence, MetricEvent
from stream.settings import load_settings
from stream.telemetry import DetectorMetrics
from stream.telemetry.bulk_histogram import BulkHistogram

BUCKETS = (0.1, 0.25, 0.5, 1.0)


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    """(series, le) -> value of every sample of ``name`` but ``_created``."""
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in registry.collect()
        if family.name == name
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_values_land_in_the_first_bucket_they_do_not_exceed() -> None:
    registry = CollectorRegistry()
    histogram = BulkHistogram("score", "Scores.", BUCKETS, registry=registry)
    histogram.observe_many(np.array([-1.0, 0.1, 0.1000001, 0.25, 0.3, 1.0, 7.0]))
    histogram.observe_many([0.5])  # adds to what is there
    histogram.observe_many(np.array([]))
    assert _samples(registry, "score") == {
        ("score_bucket", "0.1"): 2.0,  # -1.0 and 0.1 itself (le: less or equal)
        ("score_bucket", "0.25"): 4.0,
        ("score_bucket", "0.5"): 6.0,
        ("score_bucket", "1.0"): 7.0,
        ("score_bucket", "+Inf"): 8.0,
        ("score_count", ""): 8.0,
        ("score_sum", ""): pytest.approx(-1.0 + 0.1 + 0.1000001 + 0.25 + 0.3 + 1.0 + 7.0 + 0.5),
    }


def test_non_finite_values_are_left_out() -> None:
    registry = CollectorRegistry()
    histogram = BulkHistogram("score", "Scores.", BUCKETS, registry=registry)
    histogram.observe_many([math.nan, math.inf, -math.inf, 0.2])
    assert registry.get_sample_value("score_count") == 1.0
    assert registry.get_sample_value("score_sum") == 0.2


@given(
    st.lists(
        st.lists(st.floats(-2.0, 3.0, allow_nan=False), max_size=50),
        max_size=5,
    )
)
def test_the_same_series_as_prometheus_clients_histogram(batches: list[list[float]]) -> None:
    bulk_registry, reference_registry = CollectorRegistry(), CollectorRegistry()
    bulk = BulkHistogram(
        "score", "Scores.", BUCKETS, labelnames=("source",), registry=bulk_registry
    )
    reference = Histogram(
        "score", "Scores.", ["source"], buckets=BUCKETS, registry=reference_registry
    )
    bulk_child, reference_child = bulk.labels(source="metrics"), reference.labels(source="metrics")
    for batch in batches:
        bulk_child.observe_many(np.array(batch))
        for value in batch:
            reference_child.observe(value)
    got, expected = _samples(bulk_registry, "score"), _samples(reference_registry, "score")
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_labels_are_checked_and_children_exported_once_created() -> None:
    registry = CollectorRegistry()
    histogram = BulkHistogram(
        "score", "Scores.", BUCKETS, labelnames=("source",), registry=registry
    )
    assert registry.get_sample_value("score_count", {"source": "logs"}) is None
    assert histogram.labels(source="logs") is histogram.labels(source="logs")
    assert registry.get_sample_value("score_count", {"source": "logs"}) == 0.0
    with pytest.raises(ValueError, match="labels"):
        histogram.labels(kind="anomaly")
    with pytest.raises(ValueError, match="labels"):
        histogram.observe_many([0.5])
    with pytest.raises(ValueError, match="labels"):
        BulkHistogram("plain", "No labels.", BUCKETS).labels(source="logs")


@pytest.mark.parametrize("buckets", [(), (0.5, 0.5), (1.0, 0.5), (0.5, math.inf)])
def test_buckets_must_be_finite_and_increasing(buckets: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="buckets"):
        BulkHistogram("score", "Scores.", buckets)


def test_the_registry_knows_its_names() -> None:
    registry = CollectorRegistry()
    BulkHistogram("score", "Scores.", BUCKETS, registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Histogram("score", "Scores.", registry=registry)


def test_the_detector_exports_score_and_probability_distributions() -> None:
    registry = CollectorRegistry()
    metrics = DetectorMetrics(registry, ["vigil.metrics"])
    for source in ("metrics", "logs"):  # pre-initialised, as labels should be
        assert registry.get_sample_value("vigil_anomaly_score_count", {"source": source}) == 0
        assert (
            registry.get_sample_value("vigil_anomaly_score_bucket", {"source": source, "le": "1.0"})
            == 0
        )
    assert registry.get_sample_value("vigil_incident_probability_count") == 0
    metrics.anomaly_scores.labels(source="metrics").observe_many([0.3, 0.97])
    metrics.risk.probabilities.observe_many([0.02, 0.02, 0.6])
    le = {"source": "metrics", "le": "0.3"}
    assert registry.get_sample_value("vigil_anomaly_score_bucket", le) == 1
    assert registry.get_sample_value("vigil_anomaly_score_count", {"source": "metrics"}) == 2
    assert registry.get_sample_value("vigil_incident_probability_bucket", {"le": "0.02"}) == 2
    assert registry.get_sample_value("vigil_incident_probability_bucket", {"le": "0.5"}) == 2
    assert registry.get_sample_value("vigil_incident_probability_sum") == pytest.approx(0.64)


def _evidence(i: int) -> Evidence:
    return Evidence(topic="vigil.metrics", partition=0, offset=i)


def test_a_risk_outcome_carries_the_probability_of_every_vector() -> None:
    pipeline = MetricPipeline(load_settings({}).anomaly_config())
    risk = IncidentRiskPipeline(RiskConfig())
    sim = MetricSimulator(services=3, interval_s=30.0, seed=2)
    events = [MetricEvent.model_validate(e.payload) for e in sim.events(3 * 120 * 6)]  # 6 h
    vectors = probabilities = 0
    for start in range(0, len(events), 500):
        batch = events[start : start + 500]
        outcome = risk.on_metrics(batch, pipeline.process_batch(batch, _evidence), _evidence)
        vectors += outcome.vectors
        probabilities += sum(len(p) for p in outcome.probabilities)
        assert all(((p >= 0) & (p <= 1)).all() for p in outcome.probabilities)
    assert vectors > 0
    assert probabilities == vectors
