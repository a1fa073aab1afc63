"""The anomaly model's parts: robust scaling, adaptive threshold, and one service's model."""

from __future__ import annotations

import random

import numpy as np
import pytest
from river import anomaly, compose, preprocessing

from models.anomaly import AnomalyConfig, ServiceAnomalyModel
from models.scaling import RobustScaler
from models.threshold import AdaptiveThreshold


def normal_sample(rng: random.Random) -> dict[str, float]:
    return {"latency": rng.gauss(400, 20), "cpu": rng.gauss(55, 3), "rate": rng.gauss(250, 12)}


# ------------------------------------------------------------------------------ scaling


def _score_after(spike: bool) -> tuple[float, float, float]:
    """Train both detectors (optionally with one 1e9 spike), then score a +15 sigma anomaly.

    Returns our score, our threshold, and river MinMaxScaler | HalfSpaceTrees' score.
    """
    rng = random.Random(3)
    config = AnomalyConfig(warmup_events=0, cooldown_s=0)
    ours = ServiceAnomalyModel("svc", config)
    minmax = compose.Pipeline(
        preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=config.seed)
    )
    stream = [normal_sample(rng) for _ in range(3300)]
    if spike:
        stream[3000] = {"latency": 1e9, "cpu": 55.0, "rate": 250.0}
    for t, x in enumerate(stream):  # the spike stays in our scaler's window to the end
        ours.observe(x, t)
        minmax.learn_one(x)
    later_anomaly = {"latency": 700.0, "cpu": 55.0, "rate": 250.0}
    verdict = ours.observe(later_anomaly, 4000, learn=False)
    return verdict.score, verdict.threshold, minmax.score_one(later_anomaly)


def test_one_spike_does_not_squash_later_scores() -> None:
    """After a 1e9 spike, a +15 sigma anomaly scores as before; with MinMaxScaler it does not."""
    clean_score, _, clean_minmax = _score_after(spike=False)
    score, threshold, minmax = _score_after(spike=True)
    assert abs(score - clean_score) < 0.02
    assert score >= threshold
    # The contrast that motivates the robust scaler: min-max stretches its range to the spike
    # and squashes the later anomaly into the normal range.
    assert minmax < clean_minmax - 0.1


def test_sparse_counter_gets_a_usable_scale() -> None:
    scaler = RobustScaler(window=256)
    rng = random.Random(0)
    for _ in range(256):
        scaler.learn_one({"err": 1.0 if rng.random() < 0.1 else 0.0})
    base = scaler.baseline("err")
    assert base.median == 0.0
    assert 0.2 < base.scale < 0.5  # from the 5-95% range, not a 1e-3 floor
    assert scaler.z_scores({"err": 1.0}, ["err"])["err"] < 5.0


def test_missing_feature_scales_to_the_median() -> None:
    scaler = RobustScaler()
    scaler.learn_one({"a": 1.0, "b": 2.0})
    assert scaler.transform_one({"a": 1.0}, ["a", "b"]) == {"a": 0.5, "b": 0.5}


# ---------------------------------------------------------------------------- threshold


@pytest.mark.parametrize("rate", [0.001, 0.01])
def test_threshold_tracks_the_target_rate(rate: float) -> None:
    rng = np.random.default_rng(1)
    threshold = AdaptiveThreshold(target_rate=rate, window=10_000)
    exceeded = 0
    scores = rng.beta(2, 5, size=60_000)
    for i, score in enumerate(scores):
        if i >= 10_000 and threshold.is_exceeded(score):
            exceeded += 1
        threshold.learn_one(float(score))
    observed = exceeded / 50_000
    assert rate * 0.6 < observed < rate * 1.5


def test_threshold_override_wins() -> None:
    threshold = AdaptiveThreshold(override=0.9)
    for _ in range(100):
        threshold.learn_one(0.1)
    assert threshold.value == 0.9
    assert not threshold.is_exceeded(0.5)


def test_young_threshold_only_passes_new_maxima() -> None:
    threshold = AdaptiveThreshold(target_rate=0.001)
    for score in (0.1, 0.5, 0.3):
        threshold.learn_one(score)
    assert threshold.value == 0.5


# ------------------------------------------------------------------ one service's model


def run(model: ServiceAnomalyModel, n: int, seed: int = 0, start: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [model.observe(normal_sample(rng), start + t).score for t in range(n)]


def test_no_alerts_during_warm_up() -> None:
    model = ServiceAnomalyModel("svc", AnomalyConfig(warmup_events=400, cooldown_s=0))
    run(model, 300)
    verdict = model.observe({"latency": 5000.0, "cpu": 55.0, "rate": 250.0}, 300)
    assert verdict.warming_up
    assert not verdict.alert


def test_cooldown_suppresses_an_ongoing_episode() -> None:
    model = ServiceAnomalyModel("svc", AnomalyConfig(warmup_events=300, cooldown_s=60))
    run(model, 2000)
    bad = {"latency": 5000.0, "cpu": 55.0, "rate": 250.0}
    first = model.observe(bad, 3000)
    second = model.observe(bad, 3010)
    later = model.observe(bad, 3100)
    assert first.alert
    assert second.suppressed
    assert not second.alert
    assert later.alert


def test_same_seed_same_scores_and_learn_false_changes_nothing() -> None:
    a = ServiceAnomalyModel("svc", AnomalyConfig())
    b = ServiceAnomalyModel("svc", AnomalyConfig())
    assert run(a, 800) == run(b, 800)
    probe = {"latency": 700.0, "cpu": 70.0, "rate": 100.0}
    before = a.observe(probe, 900, learn=False)
    for _ in range(5):
        a.observe(probe, 900, learn=False)
    assert a.observe(probe, 900, learn=False) == before
    assert run(a, 50, seed=9, start=800) == run(b, 50, seed=9, start=800)


def test_services_share_trees_but_not_state() -> None:
    a = ServiceAnomalyModel("a", AnomalyConfig())
    b = ServiceAnomalyModel("b", AnomalyConfig())
    assert run(a, 600) == run(b, 600)  # same seed and features: the same trees
    run(a, 600, seed=1, start=600)
    probe = {"latency": 700.0, "cpu": 70.0, "rate": 100.0}
    assert a.observe(probe, 2000, learn=False) != b.observe(probe, 2000, learn=False)


def test_new_metric_grows_the_model_without_a_blind_spot() -> None:
    config = AnomalyConfig(warmup_events=300, cooldown_s=0)
    model = ServiceAnomalyModel("svc", config)
    run(model, 1000)
    assert model.feature_names == ("cpu", "latency", "rate")
    rng = random.Random(5)
    started = []
    for t in range(1000, 1000 + config.warmup_events):
        x = {**normal_sample(rng), "queue": rng.gauss(10, 1)}
        verdict = model.observe(x, t)
        started.append(verdict.candidate_started)
        # The old model keeps scoring (and may alert) while the new one learns.
        assert not verdict.warming_up
    assert started.count(True) == 1
    assert model.feature_names == ("cpu", "latency", "queue", "rate")
    assert model.version == "2"
    spike = model.observe({**normal_sample(rng), "queue": 200.0}, 5000)
    assert spike.alert
    assert spike.top_features[0].name == "queue"


def test_missing_features_are_reported_not_zeroed() -> None:
    model = ServiceAnomalyModel("svc", AnomalyConfig(warmup_events=300, cooldown_s=0))
    run(model, 1000)
    rng = random.Random(1)
    x = normal_sample(rng)
    del x["cpu"]
    verdict = model.observe(x, 2000)
    assert verdict.missing_features == ("cpu",)
    # Imputed at the baseline, an otherwise normal event does not alert as if cpu were 0.
    assert not verdict.alert


def test_explanation_names_the_deviating_metric() -> None:
    model = ServiceAnomalyModel("svc", AnomalyConfig(warmup_events=300, cooldown_s=0))
    run(model, 2000)
    verdict = model.observe({"latency": 400.0, "cpu": 95.0, "rate": 250.0}, 3000)
    assert verdict.alert
    top = verdict.top_features[0]
    assert top.name == "cpu"
    assert top.value == 95.0
    assert abs(top.baseline - 55.0) < 1.0
    assert 0.5 < top.contribution <= 1.0
