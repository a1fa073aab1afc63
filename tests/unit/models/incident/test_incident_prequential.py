"""incident_report and PrequentialTracker: figures against sklearn and by hand, bounds."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.incident import (
    LabelledVector,
    PrequentialTracker,
    RiskConfig,
    incident_report,
)

CONFIG = RiskConfig(horizon_s=600.0, label_grace_s=60.0)


def item(probability: float, label: bool, ts_s: float = 0.0) -> LabelledVector:
    return LabelledVector("api", ts_s, {}, probability, label, "k", None, "horizon")


def test_report_matches_sklearn_and_the_confusion_matrix() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(2_000) < 0.05
    p = np.clip(0.04 + 0.3 * y + rng.normal(0, 0.1, y.size), 0, 1)
    r = incident_report(y, p, threshold=0.2)
    assert r.pr_auc == pytest.approx(average_precision_score(y, p))
    assert r.roc_auc == pytest.approx(roc_auc_score(y, p))
    assert r.brier == pytest.approx(brier_score_loss(y, p))
    assert (r.n, r.positives, r.base_rate) == (2_000, int(y.sum()), y.mean())
    assert r.tp == int(np.sum((p >= 0.2) & y))
    assert r.fp == int(np.sum((p >= 0.2) & ~y))
    assert r.tp + r.fp + r.tn + r.fn == 2_000
    assert r.precision == pytest.approx(r.tp / (r.tp + r.fp))
    assert r.recall == pytest.approx(r.tp / (r.tp + r.fn))
    assert r.f1 == pytest.approx(2 * r.precision * r.recall / (r.precision + r.recall))
    assert len(r.reliability) == 10
    assert sum(row["count"] for row in r.reliability) == 2_000
    assert r.precision_curve.size == r.recall_curve.size <= 1_002
    assert r.recall_curve[0] == 1.0
    assert r.recall_curve[-1] == 0.0


def test_reliability_bins_are_equal_width_with_means_and_rates() -> None:
    y = np.array([0, 0, 1, 1, 0], dtype=bool)
    p = np.array([0.05, 0.15, 0.18, 1.0, 0.95])
    rows = incident_report(y, p, 0.5).reliability
    assert [r["lower"] for r in rows] == pytest.approx([b / 10 for b in range(10)])
    assert rows[1] == {
        "lower": 0.1,
        "upper": 0.2,
        "count": 2.0,
        "mean_predicted": pytest.approx(0.165),
        "observed_rate": 0.5,
    }
    assert rows[9]["count"] == 2.0  # 1.0 falls in the last bin
    assert rows[9]["observed_rate"] == 0.5
    assert rows[5] == {
        "lower": 0.5,
        "upper": 0.6,
        "count": 0.0,
        **dict.fromkeys(("mean_predicted", "observed_rate"), 0.0),
    }


def test_report_with_one_class_or_nothing_and_as_dict_is_json_ready() -> None:
    r = incident_report([False, False], [0.1, 0.2], threshold=math.inf)
    assert (r.pr_auc, r.roc_auc, r.recall, r.tp) == (None, None, 0.0, 0)
    empty = incident_report([], [], threshold=0.5)
    assert (empty.n, empty.brier, empty.base_rate) == (0, None, 0.0)
    d = incident_report([0, 1], [0.2, 0.9], 0.5).as_dict()
    assert d["pr_curve"]["recall"][0] == 1.0
    assert orjson.loads(orjson.dumps(d))["tp"] == 1
    assert r.as_dict()["threshold"] is None
    with pytest.raises(ValueError, match="same length"):
        incident_report([0, 1], [0.5], 0.5)


def test_lead_time_is_from_the_first_alert_within_the_horizon() -> None:
    tracker = PrequentialTracker(CONFIG)
    tracker.alert("api", 100.0)  # more than H before the open, resolved by then: not counted
    tracker.resolved("api", 500.0)
    tracker.alert("api", 800.0)
    tracker.alert("api", 1_000.0)
    tracker.alert("db", 1_100.0)  # another service
    tracker.incident("api", "a", 1_300.0)
    tracker.incident("db", "b", 1_000.0)  # the db alert came after its open: missed
    tracker.incident("api", "a", 1_300.0)  # a repeat
    s = tracker.summary(0.5)
    assert (s["incidents"], s["incidents_caught"], s["incidents_missed"]) == (2, 1, 1)
    assert s["median_lead_time_s"] == 500.0


def test_an_episode_still_open_within_the_horizon_warns() -> None:
    tracker = PrequentialTracker(CONFIG)
    tracker.alert("api", 100.0)
    tracker.resolved("api", 700.0)  # resolved once the horizon before the open had begun
    tracker.alert("db", 100.0)
    tracker.resolved("db", 650.0)  # resolved before it began: no warning
    tracker.incident("api", "a", 1_300.0)
    tracker.incident("db", "b", 1_300.0)
    s = tracker.summary(0.5)
    assert (s["incidents"], s["incidents_caught"], s["median_lead_time_s"]) == (2, 1, 1_200.0)


def test_summary_figures_at_the_threshold() -> None:
    tracker = PrequentialTracker(CONFIG)
    for ts, (p, label) in enumerate([(0.9, True), (0.6, False), (0.4, True), (0.1, False)]):
        tracker.labelled(item(p, label, ts_s=ts * 43_200.0))
    tracker.alert("api", 0.0)
    tracker.alert("api", 60.0)
    tracker.alert("db", 3_000.0)
    s = tracker.summary(0.5)
    assert (s["labelled"], s["positives"], s["base_rate"]) == (4, 2, 0.5)
    assert (s["precision_at_threshold"], s["recall_at_threshold"]) == (0.5, 0.5)
    assert s["pr_auc"] == pytest.approx(average_precision_score([1, 0, 1, 0], [0.9, 0.6, 0.4, 0.1]))
    assert s["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert s["alerts_per_day"] == pytest.approx(3 / 1.5)  # 1.5 days of event time seen
    assert len(s["reliability"]) == 10
    assert s["median_lead_time_s"] is None
    assert orjson.loads(orjson.dumps(s))["labelled"] == 4


def test_memory_is_bounded() -> None:
    tracker = PrequentialTracker(CONFIG, max_labelled=100, max_incidents=10)
    for i in range(1_000):
        tracker.labelled(item(0.9 if i >= 900 else 0.1, i >= 900, ts_s=float(i)))
        tracker.alert("api", float(i))
        tracker.incident("api", f"inc-{i}", float(i))
    s = tracker.summary(0.5)
    assert (s["labelled"], s["labelled_total"], s["positives"]) == (100, 1_000, 100)
    assert s["incidents"] == 10
    assert len(tracker._alerts["api"]) <= 64
    with pytest.raises(ValueError, match="positive"):
        PrequentialTracker(CONFIG, max_labelled=0)
