"""Recency weights in a calibration's tail (weighted conformal p-values where they decide)."""

from __future__ import annotations

import numpy as np
import pytest

from models.anomaly.calibration import ScoreCalibrator
from models.anomaly.gpd import fit_gpd
from models.anomaly.recency import RECENCY, slot_weights, weighted_tails
from models.state_codec import decode_state, encode_state, serialize_state
from stream.detector.snapshot_classes import SNAPSHOT_CLASSES

WINDOW = 4096


def _drifted() -> np.ndarray:
    """A history whose scores rose halfway: the older half exponential(1), the newer 1.5x."""
    rng = np.random.default_rng(7)
    return np.concatenate([rng.exponential(1.0, WINDOW // 2), rng.exponential(1.5, WINDOW // 2)])


def test_recent_scores_weigh_more_in_the_tail() -> None:
    """After the scores rose, a high score is less rare against the recent ones: the
    weighted tail gives it a larger p than the counted one, and neither calls it common."""
    history = _drifted()
    counted = ScoreCalibrator(window=WINDOW)
    weighted = ScoreCalibrator(window=WINDOW, recency=RECENCY)
    for calibrator in (counted, weighted):
        calibrator.learn(history)
    scores = np.array([6.0, 9.0, 14.0])
    p_counted, p_weighted = counted.p_values(scores), weighted.p_values(scores)
    assert np.all(p_weighted > p_counted)
    assert np.all(p_weighted < 0.05)


def test_a_stationary_history_keeps_its_false_rate() -> None:
    """On scores that do not drift, weighing them changes nothing of the budget's meaning."""
    rng = np.random.default_rng(8)
    calibrator = ScoreCalibrator(window=WINDOW, recency=RECENCY)
    calibrator.learn(rng.exponential(1.0, 3 * WINDOW))
    p = calibrator.p_values(rng.exponential(1.0, 1_000_000))
    for alpha in (1e-2, 1e-3):
        assert 0.5 * alpha < float((p <= alpha).mean()) < 1.5 * alpha


def test_p_values_fall_as_scores_rise() -> None:
    """Counted below the tail's threshold, weighed above it: still never rarer for a lower
    score (the counted part is floored at the tail's share)."""
    calibrator = ScoreCalibrator(window=WINDOW, recency=RECENCY)
    calibrator.learn(_drifted())
    p = calibrator.p_values(np.linspace(0.0, 20.0, 4001))
    assert np.all(np.diff(p) <= 0.0)


def test_the_tail_weighs_each_score_by_its_age() -> None:
    """Three scores above the threshold, written oldest first into a ring that wrapped once:
    their weights halve every half-life of age."""
    weights, total = slot_weights(count=6, held=4, window=4, half_life=1.0)
    assert weights.tolist() == [0.5, 1.0, 0.125, 0.25]  # slot 1 written last
    assert total == 1.875
    history = np.array([[3.0, 4.0, 0.5, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    tails = weighted_tails(history, weights, total, u=np.array([1.0, 0.0]), k=3)
    assert tails.excesses[0].tolist() == [1.0, 2.0, 3.0]
    assert tails.weights[0].tolist() == [0.25, 0.5, 1.0]
    assert tails.at_least.tolist() == [[1.75, 1.5, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    assert tails.shares.tolist() == pytest.approx([1.75 / 1.875, 0.0])
    assert tails.excesses[1].size == 0


def test_a_young_ring_weighs_its_newest_score_most() -> None:
    weights, total = slot_weights(count=3, held=3, window=8, half_life=1.0)
    assert weights.tolist() == [0.25, 0.5, 1.0]
    assert total == 1.75


def test_equal_weights_fit_the_tail_as_counting_does() -> None:
    excesses = np.sort(np.random.default_rng(9).pareto(3.0, 500))
    xi, sigma = fit_gpd(excesses)
    weighted = fit_gpd(excesses, np.full(excesses.size, 2.0))
    assert weighted == pytest.approx((xi, sigma), rel=1e-12)
    assert fit_gpd(excesses, np.exp2(-np.arange(500.0)[::-1] / 100.0)) != (xi, sigma)


def test_a_calibration_from_before_weights_takes_them_at_its_next_refresh() -> None:
    """A snapshot written before recency weights (no ``recency``, no weighted tail) loads
    counted, and weighs its tail from the next refresh on."""
    rng = np.random.default_rng(10)
    old = ScoreCalibrator(window=WINDOW)
    old.learn(rng.exponential(1.0, WINDOW))
    del old.__dict__["recency"]  # as the class before weights wrote it
    restored = decode_state(serialize_state(encode_state(old, SNAPSHOT_CLASSES)), SNAPSHOT_CLASSES)
    assert restored.recency == RECENCY
    scores = np.array([0.5, 8.0])
    assert restored.p_values(scores).tolist() == old.p_values(scores).tolist()
    restored.learn(rng.exponential(1.0, restored.refresh_every))
    assert restored.refreshes == old.refreshes + 1
    assert restored._tail_at_least is not None


def test_a_fast_service_keeps_a_week_of_weight() -> None:
    """At 30 s the window is 34 hours: a half-life of half of it would down-weight
    yesterday's peak before it recurs. The half-life is at least a week of samples, so the
    weights there stay near 1 and the tail near the counted one; at 5 minutes (a window of two
    weeks) half the window is the half-life."""
    history = _drifted()
    counted = ScoreCalibrator(window=WINDOW)
    counted.learn(history)
    shares = {}
    for cadence_s in (30.0, 300.0):
        weighted = ScoreCalibrator(window=WINDOW, recency=RECENCY)
        weighted.learn(history, cadence_s=cadence_s)
        shares[cadence_s] = float(weighted._tail_p.mean())
    counted_share = float(counted._tail_p.mean())
    assert shares[30.0] == pytest.approx(counted_share, rel=0.06)
    assert shares[300.0] > 1.15 * counted_share  # the newer, higher half weighs more
