"""A restored anomaly model takes the running configuration's decisions at once (issue 19)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from models.anomaly import AnomalyConfig, DirectionRule, ServiceAnomalyModel, ServiceRule


def _learned(config: AnomalyConfig) -> ServiceAnomalyModel:
    rng = random.Random(3)
    model = ServiceAnomalyModel("api", config)
    for t in range(1500):
        model.observe({"latency": rng.gauss(100, 5), "errors": rng.gauss(10, 1)}, 60.0 * t)
    return model


def test_decisions_apply_at_once_and_match_a_model_configured_so_from_the_start() -> None:
    config = AnomalyConfig(warmup_events=300, window_size=100)
    decided = dataclasses.replace(
        config,
        budget_per_day=3.0,
        min_effect=4.0,
        resolve_after=2,
        directions=(DirectionRule("latency", "down"),),
        services=(ServiceRule("ap*", 7.0),),
    )
    model = _learned(config)
    before = model.alpha
    spike = {"latency": 400.0, "errors": 10.0}
    assert model.observe(spike, 60.0 * 1500, learn=False).alert
    model.reconfigure(decided)
    assert model.budget_per_day == 7.0  # the service rule wins
    assert model.alpha == pytest.approx(before * 7.0 / config.budget_per_day)
    # A latency spike no longer alerts (only drops do), errors still do.
    up = model.observe(spike, 60.0 * 1500, learn=False)
    assert not up.alert
    errors = model.observe({"latency": 100.0, "errors": 40.0}, 60.0 * 1500, learn=False)
    assert errors.alert


def test_a_configuration_that_shapes_state_differently_is_refused() -> None:
    config = AnomalyConfig(warmup_events=300, window_size=100)
    model = _learned(config)
    with pytest.raises(ValueError, match="shapes learned state"):
        model.reconfigure(dataclasses.replace(config, scaler_window=512))
    assert model.config is config
