"""RiskThreshold: each strategy against brute force, fallback, override, window, laziness."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.incident import RiskConfig, RiskThreshold


def f1_at(p: np.ndarray, y: np.ndarray, t: float) -> float:
    flags = p >= t
    tp = float(np.sum(flags & y))
    return 2 * tp / (flags.sum() + y.sum()) if tp else 0.0


def recall_at(p: np.ndarray, y: np.ndarray, t: float) -> float:
    return float(np.sum((p >= t) & y) / y.sum())


def fed(config: RiskConfig, p: np.ndarray, y: np.ndarray) -> RiskThreshold:
    threshold = RiskThreshold(config)
    threshold.observe(p)
    for probability, label in zip(p.tolist(), y.tolist(), strict=True):
        threshold.labelled(probability, label)
    return threshold


pairs = st.lists(
    st.tuples(st.integers(1, 50).map(lambda i: i / 50), st.booleans()), min_size=1, max_size=80
).filter(lambda items: sum(label for _, label in items) >= 3)


@settings(max_examples=150, deadline=None)
@given(pairs)
def test_max_f1_is_the_best_f1_threshold(items: list[tuple[float, bool]]) -> None:
    p, y = np.array([i[0] for i in items]), np.array([i[1] for i in items])
    threshold = fed(RiskConfig(strategy="max_f1", min_positives=3), p, y)
    strategy, value = threshold._compute()
    assert strategy == "max_f1"
    best = max(f1_at(p, y, t) for t in np.unique(p))
    assert f1_at(p, y, value) == pytest.approx(best)


@settings(max_examples=150, deadline=None)
@given(pairs, st.sampled_from([0.5, 0.8, 1.0]))
def test_recall_at_least_is_the_highest_threshold_keeping_the_recall(
    items: list[tuple[float, bool]], target: float
) -> None:
    p, y = np.array([i[0] for i in items]), np.array([i[1] for i in items])
    config = RiskConfig(strategy="recall_at_least", target_recall=target, min_positives=3)
    strategy, value = fed(config, p, y)._compute()
    assert strategy == "recall_at_least"
    assert recall_at(p, y, value) >= target
    higher = p[p > value]
    assert higher.size == 0 or recall_at(p, y, float(higher.min())) < target


def test_nothing_known_means_infinity_and_override_always_wins() -> None:
    threshold = RiskThreshold(RiskConfig(strategy="max_f1"))
    assert (threshold.value, threshold.strategy) == (math.inf, "alert_budget")
    episodes = RiskThreshold(RiskConfig())
    assert (episodes.value, episodes.strategy) == (math.inf, "episode_budget")
    episodes.set_episode_threshold(0.25)
    assert (episodes.value, episodes.strategy) == (0.25, "episode_budget")
    override = fed(RiskConfig(threshold_override=0.35), np.full(50, 0.9), np.ones(50, bool))
    assert (override.value, override.strategy) == (0.35, "override")


def test_label_strategies_fall_back_to_the_alert_budget_below_min_positives() -> None:
    p = np.linspace(0.001, 1.0, 1000)
    y = np.zeros(1000, dtype=bool)
    y[-9:] = True
    threshold = fed(RiskConfig(strategy="max_f1", min_positives=10, alert_budget=0.05), p, y)
    assert threshold.strategy == "alert_budget"
    assert threshold.value == pytest.approx(0.95, abs=0.002)
    threshold.labelled(0.999, True)
    threshold._since_labels = 10_000  # due now
    assert threshold.strategy == "max_f1"
    assert threshold.value == pytest.approx(0.992)  # F1 = 1 from there


def test_alert_budget_alerts_on_about_the_budget_share() -> None:
    p = np.random.default_rng(0).beta(1, 30, size=20_000)
    threshold = RiskThreshold(RiskConfig(strategy="alert_budget", alert_budget=0.01))
    threshold.observe(p)
    assert np.mean(p >= threshold.value) == pytest.approx(0.01, abs=0.002)


def test_zero_predictions_never_alert() -> None:
    threshold = RiskThreshold(RiskConfig(strategy="alert_budget"))
    threshold.observe(np.zeros(1000))
    assert threshold.value > 0.0


def test_only_the_recent_window_counts() -> None:
    config = RiskConfig(strategy="max_f1", tuning_window=200, min_positives=5)
    threshold = RiskThreshold(config)
    for _ in range(200):  # old regime: positives score 0.9
        threshold.labelled(0.9, True)
        threshold.labelled(0.1, False)
    for _ in range(100):  # new regime: positives score 0.5, negatives 0.6 and 0.2
        threshold.labelled(0.5, True)
        threshold.labelled(0.2, False)
    assert threshold._compute() == ("max_f1", 0.5)


def test_recomputation_is_lazy() -> None:
    threshold = RiskThreshold(RiskConfig(strategy="max_f1", min_positives=5))
    calls = 0
    compute = threshold._compute

    def counted() -> tuple[str, float]:
        nonlocal calls
        calls += 1
        return compute()

    threshold._compute = counted  # type: ignore[method-assign]  # a spy on the private step
    rng = np.random.default_rng(1)
    for i in range(20_000):
        threshold.observe(rng.random(1))
        threshold.labelled(float(rng.random()), i % 30 == 0)
        _ = threshold.value
    assert calls < 200
