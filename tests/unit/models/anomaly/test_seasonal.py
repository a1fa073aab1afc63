"""Seasonal baselines: learned in event time, exact in batches, and what they buy the model."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models.anomaly import AnomalyConfig, ServiceAnomalyModel
from models.anomaly.seasonal import SeasonalBaseline

DAY_S = 86_400.0
STEP_S = 300.0  # five-minute samples: 288 a day
CONFIG = AnomalyConfig()


def daily_stream(days: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Event times and one metric at ~100 with a sharp daily peak to ~300 from 14:00 to 16:00."""
    rng = np.random.default_rng(seed)
    ts = np.arange(int(days * DAY_S / STEP_S)) * STEP_S
    hour = (ts % DAY_S) / 3600.0
    values = 100.0 + 200.0 * ((hour >= 14) & (hour < 16)) + rng.normal(0.0, 5.0, ts.size)
    return ts, values


def alerts_of(model: ServiceAnomalyModel, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Stream the values through the model in batches of 400; the alert flag of each."""
    flags = []
    for a in range(0, ts.size, 400):
        rows = [{"rps": v} for v in values[a : a + 400].tolist()]
        flags.append(model.observe_batch(rows, ts[a : a + 400].tolist()).alerts)
    return np.concatenate(flags)


# ------------------------------------------------------------------------ the baseline itself


def test_baseline_learns_each_bucket_and_falls_back_to_the_level() -> None:
    baseline = SeasonalBaseline(period_s=100.0, buckets=4, alpha=1.0, fold_every=8)
    names = ["a"]
    assert np.isnan(baseline.baselines_learn(np.array([[5.0]]), np.array([0.0]), names)).all()
    ts = np.arange(1.0, 50.0)  # buckets 0 and 1 only (phase < 50 s)
    values = np.where(ts < 25.0, 10.0, 30.0)[:, None]
    baseline.baselines_learn(values, ts, names)
    probe = baseline.baselines_learn(
        np.zeros((3, 1)), np.array([10.0, 30.0, 80.0]), names, learn=False
    )
    assert probe[:, 0].tolist() == [10.0, 30.0, 20.0]  # bucket 3 never seen: the level


def test_missing_values_are_not_learned() -> None:
    baseline = SeasonalBaseline(period_s=10.0, buckets=1, alpha=1.0, fold_every=4)
    X = np.array([[1.0, np.nan], [1.0, np.nan], [1.0, 7.0], [1.0, np.nan]])
    baseline.baselines_learn(X, np.zeros(4), ["a", "b"])
    probe = baseline.baselines_learn(np.zeros((1, 2)), np.zeros(1), ["a", "b"], learn=False)
    assert probe.tolist() == [[1.0, 7.0]]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), cuts=st.lists(st.integers(0, 300), max_size=10))
def test_baseline_batches_equal_single_rows(seed: int, cuts: list[int]) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (300, 2))
    X[rng.random(X.shape) < 0.1] = np.nan
    ts = np.cumsum(rng.uniform(0.0, 7.0, 300))
    single = SeasonalBaseline(period_s=60.0, buckets=6, alpha=0.3, fold_every=16)
    expected = np.vstack(
        [single.baselines_learn(X[i : i + 1], ts[i : i + 1], ["a", "b"]) for i in range(300)]
    )
    batched = SeasonalBaseline(period_s=60.0, buckets=6, alpha=0.3, fold_every=16)
    bounds = [0, *sorted(cuts), 300]
    got = np.vstack(
        [
            batched.baselines_learn(X[a:b], ts[a:b], ["a", "b"])
            for a, b in itertools.pairwise(bounds)
        ]
    )
    assert np.array_equal(got, expected, equal_nan=True)


# ---------------------------------------------------------------------------------- the model


def test_off_season_spike_is_flagged_and_the_daily_peak_is_not() -> None:
    """With a daily baseline the 03:00 spike alerts and the 15:00 peak does not."""
    model = ServiceAnomalyModel("svc", CONFIG)
    ts, values = daily_stream(6)
    alerts_of(model, ts, values)
    spike = model.observe({"rps": 300.0}, 6 * DAY_S + 3 * 3600)
    peak_ts, peak_values = daily_stream(7)
    last_day = peak_ts >= 6 * DAY_S + 3600 * 4
    peaks = alerts_of(model, peak_ts[last_day], peak_values[last_day])
    in_peak = ((peak_ts[last_day] % DAY_S) >= 14 * 3600) & ((peak_ts[last_day] % DAY_S) < 16 * 3600)
    assert spike.alert
    assert not peaks[in_peak].any()
    top = spike.top_features[0]
    # Explained in the operator's units against the 03:00 baseline, not the daily median.
    assert (top.name, top.value) == ("rps", 300.0)
    assert abs(top.baseline - 100.0) < 10.0


def test_a_level_shift_alerts_once_and_becomes_the_new_normal() -> None:
    ts, values = daily_stream(14)
    shift_at = 7 * DAY_S
    shifted = alerts_of(ServiceAnomalyModel("svc", CONFIG), ts, values + 150.0 * (ts >= shift_at))
    unshifted = alerts_of(ServiceAnomalyModel("svc", CONFIG), ts, values)
    first = np.flatnonzero(ts >= shift_at)[0]
    assert shifted[first : first + 3].sum() == 1  # caught at once, one alert
    # From then on the new level is normal: the same false alarms (the budget's) as without.
    assert shifted[first + 3 :].sum() <= unshifted[first + 3 :].sum() + 1


def test_realised_episodes_track_the_budget_on_a_drifting_stream() -> None:
    config = replace(CONFIG, budget_per_day=2.0)
    model = ServiceAnomalyModel("svc", config)
    ts, values = daily_stream(40, seed=3)
    drift = 2.0 * ts / DAY_S  # slow: +2 a day, 80 over the stream
    alerts = alerts_of(model, ts, values + drift)
    per_day = alerts[ts >= 20 * DAY_S].sum() / 20.0
    # Held from below: min_effect skips rare-but-small deviations, and the exponential tail
    # and the channels' Bonferroni correction are conservative on Gaussian noise.
    assert 0.0 < per_day <= 1.5 * config.budget_per_day


def test_the_resolved_alert_of_a_level_shift_names_the_new_level() -> None:
    model = ServiceAnomalyModel("svc", CONFIG)
    ts, values = daily_stream(10)
    shift_at = 7 * DAY_S
    values = values + 150.0 * (ts >= shift_at)
    resolved = []
    for a in range(0, ts.size, 400):
        rows = [{"rps": v} for v in values[a : a + 400].tolist()]
        batch = model.observe_batch(rows, ts[a : a + 400].tolist())
        resolved += [batch.verdict(i) for i in np.flatnonzero(batch.resolved)]
    first = next(v for v in resolved if v.started_s is not None and v.started_s >= shift_at)
    (moved,) = first.top_features
    assert moved.name == "rps"
    assert abs(moved.value - moved.baseline - 150.0) < 10.0  # from the old level to the new
