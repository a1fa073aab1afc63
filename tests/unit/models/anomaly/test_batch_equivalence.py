"""A batch gives exactly the verdicts of its events one at a time, with either HST engine."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.anomaly import AnomalyConfig, ServiceAnomalyModel

CONFIG = AnomalyConfig(
    warmup_events=60,
    window_size=50,
    n_trees=4,
    height=5,
    # A budget of 1,728 a day at one event a second: a tail probability of 0.02.
    budget_per_day=1728.0,
    calibration_window=300,
    resolve_after=3,
    shift_after=3,
    max_withheld=20,
    scaler_window=64,
    # A one-minute season of 12 buckets: the one-second test stream revisits every bucket.
    season_s=60.0,
    season_buckets=12,
    detector="ensemble",
)


def stream(seed: int, n: int) -> list[dict[str, float]]:
    """Noisy rows with spikes, a level shift and its return, missing values, a counter, and
    a metric that appears half-way."""
    rng = random.Random(seed)
    rows = []
    total = 0.0
    for t in range(n):
        total += rng.randint(0, 3)
        row = {"a": rng.gauss(10, 1), "b": rng.gauss(100, 5), "hits_total": total}
        if rng.random() < 0.03:
            row["a"] += rng.uniform(10, 30)
        if n // 3 < t < n // 3 + 40:
            row["b"] += 60.0
        if rng.random() < 0.05:
            del row["b"]
        if t > n // 2:
            row["c"] = rng.gauss(1, 0.1)
        rows.append(row)
    return rows


def one_at_a_time(rows: list[dict[str, float]], config: AnomalyConfig) -> list[tuple]:
    model = ServiceAnomalyModel("svc", config)
    return [astuple(model.observe(row, float(t))) for t, row in enumerate(rows)]


def in_batches(rows: list[dict[str, float]], cuts: list[int], config: AnomalyConfig) -> list[tuple]:
    model = ServiceAnomalyModel("svc", config)
    bounds = [0, *sorted(cuts), len(rows)]
    out = []
    for a, b in itertools.pairwise(bounds):
        batch = model.observe_batch(rows[a:b], [float(t) for t in range(a, b)])
        out.extend(astuple(batch.verdict(i)) for i in range(b - a))
    return out


def astuple(v: object) -> tuple:
    values = (getattr(v, name) for name in v.__slots__)  # type: ignore[attr-defined]
    return tuple(None if isinstance(x, float) and x != x else x for x in values)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    cuts=st.lists(st.integers(0, 700), max_size=12),
    detector=st.sampled_from(["ensemble", "robust_z", "hst"]),
    season_s=st.sampled_from([60.0, 0.0]),
)
def test_batches_equal_single_events(
    seed: int, cuts: list[int], detector: str, season_s: float
) -> None:
    config = replace(CONFIG, detector=detector, season_s=season_s)  # type: ignore[arg-type]
    rows = stream(seed, 700)
    expected = one_at_a_time(rows, config)
    assert in_batches(rows, cuts, config) == expected
    assert any(v[2] for v in expected), "the stream should raise alerts"
    assert any(v[11] for v in expected), "and resolve episodes"


@pytest.mark.parametrize("seed", [0, 1])
def test_river_and_numpy_engines_agree(seed: int) -> None:
    rows = stream(seed, 600)
    river = one_at_a_time(rows, _with_engine("river"))
    numpy_ = in_batches(rows, [100, 333, 334], _with_engine("numpy"))
    assert river == numpy_


def _with_engine(engine: str) -> AnomalyConfig:
    return replace(CONFIG, engine=engine)  # type: ignore[arg-type]


def test_score_only_batch_changes_nothing() -> None:
    rows = stream(3, 400)
    model = ServiceAnomalyModel("svc", CONFIG)
    model.observe_batch(rows[:300], [float(t) for t in range(300)])
    before = model.observe_batch(rows[300:], [float(t) for t in range(300, 400)], learn=False)
    again = model.observe_batch(rows[300:], [float(t) for t in range(300, 400)], learn=False)
    assert np.array_equal(before.scores, again.scores)
    assert np.array_equal(before.thresholds, again.thresholds)
