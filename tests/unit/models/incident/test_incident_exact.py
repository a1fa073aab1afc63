"""What exact incident risk per partition stands on, model by model: a vector's probability
does not depend on the vectors predicted with it, a threshold read between two predictions
never counts the second, views never move a threshold, and a lane's horizons pass on its own
expiry heap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.incident import FeatureRow, HorizonLabeler, IncidentRiskModel, RiskConfig
from models.incident.thresholds import RiskThreshold


def _model(seed: int) -> tuple[IncidentRiskModel, tuple[str, ...], np.ndarray]:
    rng = np.random.default_rng(seed)
    names = tuple(f"f{i}" for i in range(23))
    model = IncidentRiskModel("g", RiskConfig(negative_sampling=1.0, learning_rate=0.05))
    for _ in range(300):
        row = rng.normal(size=len(names))
        model.learn(FeatureRow(names, row), bool(row[0] + row[1] > 1.5))
    return model, names, rng.normal(size=(257, len(names))) * 3


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rowwise_probabilities_do_not_depend_on_the_other_rows(seed: int) -> None:
    model, names, rows = _model(seed)
    vectors = [FeatureRow(names, row) for row in rows]
    whole = model.predict_many(vectors, rowwise=True)
    for start, end in [(0, 1), (5, 6), (3, 10), (100, 257), (0, 128), (200, 203)]:
        part = model.predict_many(vectors[start:end], rowwise=True)
        assert part.tolist() == whole[start:end].tolist()
    # Equal to the matrix product's within rounding (which is not row-independent).
    assert np.allclose(whole, model.predict_many(vectors), rtol=1e-12, atol=0.0)


def test_observe_one_is_observe_of_one() -> None:
    config = RiskConfig(strategy="alert_budget", alert_budget=0.1)
    one, many = RiskThreshold(config), RiskThreshold(config)
    values = np.linspace(0.0, 1.0, 3001)
    for value in values:
        one.observe_one(float(value))
        many.observe(np.array([value]))
        assert one.value == many.value
    assert math.isfinite(one.value)


def test_peek_reads_the_threshold_as_last_decided_without_recomputing() -> None:
    threshold = RiskThreshold(RiskConfig(strategy="alert_budget", alert_budget=0.1))
    threshold.observe(np.linspace(0.0, 1.0, 101))
    decided = threshold.value
    threshold.observe(np.full(5000, 0.01))  # a recompute is due at the next read
    assert threshold.peek() == ("alert_budget", decided)
    assert threshold.value != decided  # the next vector's read recomputes it
    budget = RiskThreshold(RiskConfig())
    assert budget.peek() == ("episode_budget", math.inf)
    budget.set_episode_threshold(0.2)
    assert budget.peek() == ("episode_budget", 0.2)
    assert RiskThreshold(RiskConfig(threshold_override=0.3)).peek() == ("override", 0.3)


def test_horizons_pass_lane_by_lane() -> None:
    labeler = HorizonLabeler(RiskConfig(horizon_s=600, label_grace_s=0))
    labeler.lanes.update({"a": 0, "b": 1})
    for ts in (0.0, 60.0):
        for service in ("a", "b", "c"):  # c has no lane: lane None
            labeler.add(service, ts, {"x": 1.0}, 0.1, "")
    assert [(v.service, v.ts_s) for v in labeler.expire(10_000.0, 1)] == [
        ("b", 0.0),
        ("b", 60.0),
    ]
    assert [v.service for v in labeler.expire(10_000.0)] == ["c", "c"]
    labeler.drop_lane(0)
    assert labeler.expire(10_000.0, 0) == []
    assert len(labeler) == 2  # a's vectors wait (their lane went elsewhere: forget drops them)
