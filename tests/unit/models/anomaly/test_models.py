"""The anomaly model's parts: robust scaling, calibration, and one service's model."""

from __future__ import annotations

import random

import numpy as np
import pytest
from river import anomaly, compose, preprocessing

from models.anomaly import AnomalyConfig, DirectionRule, ServiceAnomalyModel
from models.anomaly.calibration import ScoreCalibrator
from models.anomaly.scaling import RobustScaler
from stream.dev.planted import METRICS, PlantedStream

STEP_S = 60.0


def normal_sample(rng: random.Random) -> dict[str, float]:
    return {"latency": rng.gauss(400, 20), "cpu": rng.gauss(55, 3), "rate": rng.gauss(250, 12)}


def run(model: ServiceAnomalyModel, n: int, seed: int = 0, start: int = 0) -> list[float]:
    """``n`` normal samples a minute apart from sample ``start``; their calibrated scores."""
    rng = random.Random(seed)
    return [model.observe(normal_sample(rng), (start + t) * STEP_S).score for t in range(n)]


# ------------------------------------------------------------------------------ scaling


def _score_after(spike: bool) -> tuple[float, float, float]:
    """Train both detectors (optionally with one 1e9 spike), then score a +15 sigma anomaly.

    Returns our raw score, our p-value, and river MinMaxScaler | HalfSpaceTrees' score.
    """
    rng = random.Random(3)
    config = AnomalyConfig(warmup_events=0)
    ours = ServiceAnomalyModel("svc", config)
    minmax = compose.Pipeline(
        preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=config.seed)
    )
    stream = [normal_sample(rng) for _ in range(3300)]
    if spike:
        stream[3000] = {"latency": 1e9, "cpu": 55.0, "rate": 250.0}
    for t, x in enumerate(stream):  # the spike stays in our scaler's window to the end
        ours.observe(x, t * STEP_S)
        minmax.learn_one(x)
    later_anomaly = {"latency": 700.0, "cpu": 55.0, "rate": 250.0}
    verdict = ours.observe(later_anomaly, 4000 * STEP_S, learn=False)
    return verdict.raw_score, verdict.p_value, minmax.score_one(later_anomaly)


def test_one_spike_does_not_squash_later_scores() -> None:
    """After a 1e9 spike, a +15 sigma anomaly scores as before; with MinMaxScaler it does not."""
    clean_score, _, clean_minmax = _score_after(spike=False)
    score, p, minmax = _score_after(spike=True)
    assert abs(score - clean_score) < 0.02
    assert p < 1e-4
    # The contrast that motivates the robust scaler: min-max stretches its range to the spike
    # and squashes the later anomaly into the normal range.
    assert minmax < clean_minmax - 0.1


def test_sparse_counter_moves_by_its_resolution() -> None:
    scaler = RobustScaler(window=256)
    rng = random.Random(0)
    for _ in range(256):
        scaler.learn_one({"err": 1.0 if rng.random() < 0.1 else 0.0})
    base = scaler.baseline("err")
    assert base.median == 0.0
    assert base.scale == 1.0  # one count is its quantum, not a 1e-3 floor nor 0.3 sds
    assert scaler.z_scores({"err": 1.0}, ["err"])["err"] == 1.0


def test_missing_feature_scales_to_the_median() -> None:
    scaler = RobustScaler()
    scaler.learn_one({"a": 1.0, "b": 2.0})
    assert scaler.transform_one({"a": 1.0}, ["a", "b"]) == {"a": 0.5, "b": 0.5}


# ---------------------------------------------------------------------------- calibration


@pytest.mark.parametrize("alpha", [0.01, 0.001, 0.0001])
@pytest.mark.parametrize("tail", ["exponential", "lognormal"])
def test_calibrated_p_values_hold_their_level(alpha: float, tail: str) -> None:
    """Scores from a fixed distribution: the share with p <= alpha is about alpha, also below
    1 / window, where only the generalized Pareto tail can say it (within sampling error of a
    4,096-score history: 0.2-2 alpha)."""
    rng = np.random.default_rng(1)
    draw = getattr(rng, tail)
    calibrator = ScoreCalibrator(window=4096)
    calibrator.learn(draw(size=4096))
    observed = float((calibrator.p_values(draw(size=1_000_000)) <= alpha).mean())
    assert alpha * 0.2 < observed < alpha * 2.0


def test_light_tails_are_called_rare_conservatively() -> None:
    """|z| of Gaussian noise has a lighter tail than the exponential the fit may assume at
    most: fewer false alarms than alpha, never more."""
    rng = np.random.default_rng(2)
    calibrator = ScoreCalibrator(window=4096)
    calibrator.learn(np.abs(rng.normal(size=4096)))
    p = calibrator.p_values(np.abs(rng.normal(size=1_000_000)))
    for alpha in (1e-2, 1e-3, 1e-4):
        assert float((p <= alpha).mean()) < 1.2 * alpha


def test_ties_keep_a_recurring_score_common() -> None:
    calibrator = ScoreCalibrator(window=1000)
    calibrator.learn(np.array([0.1] * 950 + [0.7] * 50))  # a quantized metric's two scores
    p = calibrator.p_values(np.array([0.7, 0.71]))
    assert p[0] >= 0.049  # the usual 0.7 is 1 in 20: not rare
    assert p[1] < 0.01  # anything above it is


def test_episode_openings_shape_the_tail_but_are_not_scores_seen_again() -> None:
    """An earlier episode's opening (learned once, at the threshold's score) makes the fitted
    tail heavier, but a lower score is not common for it: only observed scores are ties."""
    normal = np.abs(np.random.default_rng(3).normal(size=4095))
    clean = ScoreCalibrator(window=4096, refresh_every=1)
    clean.learn(normal)
    opened = ScoreCalibrator(window=4096, refresh_every=1)
    opened.learn(normal)
    opened.learn(np.array([10.0]), unscheduled=1, openings=np.array([True]))
    observed = ScoreCalibrator(window=4096, refresh_every=1)
    observed.learn(np.append(normal, 10.0))  # 10 seen in a normal row
    score = np.array([6.0])
    p_clean, p_opened, p_observed = (c.p_values(score)[0] for c in (clean, opened, observed))
    assert p_observed >= 1 / 4097  # a score seen once is never rarer than 1 in n + 1
    assert p_clean <= p_opened < 1e-5  # the opening only weighs in the tail's fit


def test_a_level_shift_after_earlier_episodes_is_caught() -> None:
    """planted-2 of the planted stream had a burst and a spike (episodes opened at the
    threshold's score) within its calibration history when cpu_p95 shifted 8 sds up; counted
    as scores seen again, they held every lower score's p above alpha and the shift was never
    caught. It is within 3 samples."""
    stream = PlantedStream()
    shift = next(
        e for e in stream.episodes() if e.service == "planted-2" and e.kind == "level_shift"
    )
    first = round((shift.start - stream.start).total_seconds() / stream.interval_s)
    values = stream.series()["planted-2"]
    rows = [{m: max(0.0, float(values[m][i])) for m in METRICS} for i in range(first + 3)]
    ts = [stream.start.timestamp() + i * stream.interval_s for i in range(first + 3)]
    model = ServiceAnomalyModel("planted-2", AnomalyConfig())
    verdicts = model.observe_batch(rows, ts)
    assert int(verdicts.alerts[: first - 60].sum()) >= 2  # the earlier episodes alerted
    assert verdicts.alerts[first:].any()


def test_an_empty_calibration_calls_nothing_rare() -> None:
    assert ScoreCalibrator().p_values(np.array([0.99])).tolist() == [1.0]


# ------------------------------------------------------------------ one service's model


def test_no_alerts_during_warm_up() -> None:
    model = ServiceAnomalyModel("svc", AnomalyConfig(warmup_events=400))
    run(model, 300)
    verdict = model.observe({"latency": 5000.0, "cpu": 55.0, "rate": 250.0}, 300 * STEP_S)
    assert verdict.warming_up
    assert not verdict.alert


def test_one_episode_one_alert_resolved_after_normal_samples() -> None:
    config = AnomalyConfig(warmup_events=300)
    model = ServiceAnomalyModel("svc", config)
    run(model, 2000)
    bad = {"latency": 5000.0, "cpu": 55.0, "rate": 250.0}
    verdicts = [model.observe(bad, (2000 + t) * STEP_S) for t in range(3)]
    assert [v.alert for v in verdicts] == [True, False, False]
    assert [v.suppressed for v in verdicts] == [False, True, True]
    assert model.episode_open
    rng = random.Random(7)
    after = [model.observe(normal_sample(rng), (2003 + t) * STEP_S) for t in range(10)]
    resolved = [t for t, v in enumerate(after) if v.resolved]
    assert resolved == [config.resolve_after - 1]
    assert after[resolved[0]].started_s == 2000 * STEP_S
    assert not model.episode_open
    again = model.observe(bad, 2100 * STEP_S)
    assert again.alert  # a new episode


def test_samples_of_an_episode_are_not_learned_as_normal() -> None:
    """A long anomaly does not become normal while its episode is open (up to max_withheld)."""
    config = AnomalyConfig(warmup_events=300, max_withheld=1000, shift_after=10_000)
    model = ServiceAnomalyModel("svc", config)
    run(model, 2000)
    rng = random.Random(2)
    for t in range(400):
        x = normal_sample(rng)
        x["latency"] += 200.0  # 10 sds off (a level shift, were shifts not turned off here)
        verdict = model.observe(x, (2000 + t) * STEP_S)
    assert verdict.p_value < model.alpha
    assert model._scaler.baseline("latency").median < 20.0  # residual baseline unmoved


def test_same_seed_same_scores_and_learn_false_changes_nothing() -> None:
    a = ServiceAnomalyModel("svc", AnomalyConfig())
    b = ServiceAnomalyModel("svc", AnomalyConfig())
    assert run(a, 800) == run(b, 800)
    probe = {"latency": 700.0, "cpu": 70.0, "rate": 100.0}
    before = a.observe(probe, 900 * STEP_S, learn=False)
    for _ in range(5):
        a.observe(probe, 900 * STEP_S, learn=False)
    assert a.observe(probe, 900 * STEP_S, learn=False) == before
    assert run(a, 50, seed=9, start=800) == run(b, 50, seed=9, start=800)


def test_services_share_trees_but_not_state() -> None:
    a = ServiceAnomalyModel("a", AnomalyConfig())
    b = ServiceAnomalyModel("b", AnomalyConfig())
    assert run(a, 600) == run(b, 600)  # same seed and features: the same trees
    run(a, 600, seed=1, start=600)
    probe = {"latency": 700.0, "cpu": 70.0, "rate": 100.0}
    assert a.observe(probe, 2000 * STEP_S, learn=False) != b.observe(
        probe, 2000 * STEP_S, learn=False
    )


def test_new_metric_grows_the_model_without_a_blind_spot() -> None:
    config = AnomalyConfig(warmup_events=300)
    model = ServiceAnomalyModel("svc", config)
    run(model, 1000)
    assert model.feature_names == ("cpu", "latency", "rate")
    rng = random.Random(5)
    started = []
    for t in range(1000, 1000 + config.warmup_events + 40):
        x = {**normal_sample(rng), "queue": rng.gauss(10, 1)}
        verdict = model.observe(x, t * STEP_S)
        started.append(verdict.candidate_started)
        # The old model keeps scoring (and may alert) while the new one learns.
        assert not verdict.warming_up
    assert started.count(True) == 1
    assert model.feature_names == ("cpu", "latency", "queue", "rate")
    assert model.version == "2"
    for t in range(2000, 4000):  # the grown model's calibration fills, every hour seen
        model.observe({**normal_sample(rng), "queue": rng.gauss(10, 1)}, t * STEP_S)
    spike = model.observe({**normal_sample(rng), "queue": 200.0}, 5000 * STEP_S)
    assert spike.alert
    assert spike.top_features[0].name == "queue"


def test_missing_features_are_reported_not_zeroed() -> None:
    model = ServiceAnomalyModel("svc", AnomalyConfig(warmup_events=300))
    run(model, 1000)
    rng = random.Random(1)
    x = normal_sample(rng)
    del x["cpu"]
    verdict = model.observe(x, 2000 * STEP_S)
    assert verdict.missing_features == ("cpu",)
    # Imputed at the baseline, an otherwise normal event does not alert as if cpu were 0.
    assert not verdict.alert


def test_explanation_names_the_deviating_metric() -> None:
    model = ServiceAnomalyModel("svc", AnomalyConfig(warmup_events=300))
    run(model, 2000)
    verdict = model.observe({"latency": 400.0, "cpu": 95.0, "rate": 250.0}, 3000 * STEP_S)
    assert verdict.alert
    top = verdict.top_features[0]
    assert top.name == "cpu"
    assert top.value == 95.0
    assert abs(top.baseline - 55.0) < 1.0
    assert 0.5 < top.contribution <= 1.0


# --------------------------------------------------------------------------- direction


def test_errors_and_latency_alert_on_rises_only() -> None:
    model = ServiceAnomalyModel("svc", AnomalyConfig(warmup_events=300))
    rng = random.Random(4)
    for t in range(2000):
        x = {"err_5xx": rng.gauss(30, 3), "latency_p95": rng.gauss(400, 20)}
        model.observe(x, t * STEP_S)
    drop = model.observe({"err_5xx": 0.0, "latency_p95": 250.0}, 2000 * STEP_S)
    assert not drop.alert  # errors gone and a fast service: good news
    rise = model.observe({"err_5xx": 30.0, "latency_p95": 700.0}, 2001 * STEP_S)
    assert rise.alert
    assert rise.top_features[0].name == "latency_p95"


def test_a_direction_rule_overrides_the_defaults() -> None:
    config = AnomalyConfig(warmup_events=300, directions=(DirectionRule("err_*", "both"),))
    model = ServiceAnomalyModel("svc", config)
    rng = random.Random(4)
    for t in range(2000):
        model.observe({"err_5xx": rng.gauss(30, 3)}, t * STEP_S)
    assert model.observe({"err_5xx": 0.0}, 2000 * STEP_S).alert


# ------------------------------------------------------------- degenerate metric shapes


def _degenerate(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "constant":
        return np.full(n, 3.0)
    if kind == "mostly_zero":
        return rng.poisson(0.02, n).astype(float)
    if kind == "quantized":
        return rng.choice([2.0, 3.0, 4.0, 5.0], n, p=[0.1, 0.6, 0.25, 0.05])
    if kind == "monotone":  # a counter at a steady rate, restarted (reset to 0) twice
        total = np.cumsum(np.full(n, 4096.0))
        total[n // 3 :] -= total[n // 3 - 1]
        total[2 * n // 3 :] -= total[2 * n // 3 - 1]
        return total
    if kind == "monotone_steps":  # a counter that grows by 0-3 each sample
        return np.cumsum(rng.integers(0, 4, n)).astype(float)
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind", ["constant", "mostly_zero", "quantized", "monotone", "monotone_steps"]
)
def test_degenerate_metrics_never_alert(kind: str) -> None:
    """10,000 normal samples of a flat gauge, a sparse counter, a quantized gauge and monotone
    counters: none is an anomaly, so none alerts."""
    rng = np.random.default_rng(0)
    values = _degenerate(kind, 10_000, rng)
    model = ServiceAnomalyModel(kind, AnomalyConfig())
    alerts = 0
    for a in range(0, values.size, 500):
        rows = [{"value": v} for v in values[a : a + 500].tolist()]
        alerts += int(model.observe_batch(rows, (np.arange(a, a + len(rows)) * STEP_S).tolist())
                      .alerts.sum())  # fmt: skip
    assert alerts == 0


def test_a_flat_gauge_that_moves_alerts() -> None:
    model = ServiceAnomalyModel("svc", AnomalyConfig())
    for t in range(2000):
        model.observe({"replicas": 3.0}, t * STEP_S)
    assert model.observe({"replicas": 1.0}, 2000 * STEP_S).alert
