"""Batch models: training window bounds, risk holdout and thresholds, champion/challenger,
pickle round trips."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from models.batch import (
    InsufficientDataError,
    RiskArtifact,
    TrainingWindow,
    compare,
    fit_risk_model,
)
from stream.offline.holdout_figures import pr_curve_png

NAMES = ["latency", "errors", "noise_a", "noise_b"]
HORIZON_S = 900.0


def incidents_data(seed: int, *, steps: int = 4_000, start_s: float = 0.0, rows_per_step: int = 2):
    """Vectors every 60 s (``rows_per_step`` services sharing each timestamp); an incident
    opens about every 2 hours on one service, and its 15 vectors before the open are
    positives whose latency and errors creep up."""
    rng = np.random.default_rng(seed)
    n = steps * rows_per_step
    ts_s = start_s + np.repeat(np.arange(steps) * 60.0, rows_per_step)
    service = np.tile(np.arange(rows_per_step), steps)
    labels = np.zeros(n)
    ids: list[str | None] = [None] * n
    ramp = np.zeros(n)
    opens = np.arange(120, steps, 120) + rng.integers(-30, 30, size=len(range(120, steps, 120)))
    for k, open_step in enumerate(opens):
        hit = k % rows_per_step
        for lag in range(1, 16):
            i = (open_step - lag) * rows_per_step + hit
            if i >= 0:
                labels[i] = 1.0
                ids[i] = f"inc-{seed}-{k}"
                ramp[i] = (16 - lag) / 15
    X = np.c_[
        rng.normal(size=n) + 3.0 * ramp,
        rng.normal(size=n) + 2.0 * ramp * (rng.random(n) < 0.7),
        rng.normal(size=n),
        rng.normal(size=n),
    ]
    X[rng.random(n) < 0.02, 1] = np.nan  # a feature sometimes missing
    assert service.size == n
    return X, labels, ts_s, ids


@pytest.fixture(scope="module")
def data():
    return incidents_data(1)


@pytest.fixture(scope="module")
def risk(data) -> RiskArtifact:
    X, labels, ts_s, ids = data
    return fit_risk_model(NAMES, X, labels, ts_s, ids, seed=0, horizon_s=HORIZON_S)


def holdout_of(model: RiskArtifact, data):
    X, labels, ts_s, ids = data
    rows = np.flatnonzero(ts_s >= model.holdout_range["first_ts_s"])
    return X[rows], labels[rows], ts_s[rows], [ids[i] for i in rows]


# --------------------------------------------------------------------------- risk model


def test_risk_model_ranks_well_above_the_base_rate(risk: RiskArtifact) -> None:
    m = risk.metrics
    assert 0.03 < m["base_rate"] < 0.09
    assert m["pr_auc"] > 0.4
    assert m["pr_auc"] > 5 * m["base_rate"]
    assert m["roc_auc"] > 0.8
    assert risk.importance[0]["feature"] == "latency"
    assert {row["feature"] for row in risk.importance[-2:]} == {"noise_a", "noise_b"}


def test_holdout_follows_training_and_is_what_the_metrics_are_computed_on(risk, data) -> None:
    labels = data[1]
    # timestamps are shared by two rows: the split never cuts through one
    assert risk.train_range["last_ts_s"] < risk.holdout_range["first_ts_s"] - HORIZON_S
    assert risk.rows["purged"] == 2 * int(HORIZON_S / 60)
    assert sum(risk.rows.values()) == labels.size
    assert risk.rows["holdout"] == pytest.approx(0.25 * labels.size, abs=2)
    Xh, yh, _, _ = holdout_of(risk, data)
    assert Xh.shape[0] == risk.rows["holdout"] == risk.metrics["n"]
    p = risk.predict_proba(Xh)
    assert risk.metrics["pr_auc"] == pytest.approx(average_precision_score(yh, p))
    assert risk.metrics["positives"] == int(yh.sum())


def test_unlabelled_rows_are_ignored(data) -> None:
    X, labels, ts_s, ids = data
    with_unknown = labels.copy()
    with_unknown[::7] = np.nan
    model = fit_risk_model(NAMES, X, with_unknown, ts_s, ids, seed=0)
    assert sum(model.rows.values()) == int((~np.isnan(with_unknown)).sum())


def test_each_strategy_threshold_does_what_it_says_on_the_holdout(risk, data) -> None:
    _, yh, _, idh = holdout_of(risk, data)
    p = risk.predict_proba(holdout_of(risk, data)[0])
    t = risk.thresholds

    # alert_budget: about 1 % of holdout vectors reach it
    assert np.mean(p >= t["alert_budget"]) == pytest.approx(0.01, abs=0.002)

    # recall_at_least: counted over incidents; the highest threshold keeping 80 %
    assert risk.recall_unit == "incidents"
    best: dict[str, float] = {}
    for prob, y, incident in zip(p, yh, idh, strict=True):
        if y:
            best[incident] = max(best.get(incident, 0.0), prob)
    caught = np.array(list(best.values()))
    assert len(best) >= 5
    assert np.mean(caught >= t["recall_at_least"]) >= 0.8
    assert np.mean(caught >= np.nextafter(t["recall_at_least"], 1.0)) < 0.8
    assert risk.operating_points["recall_at_least"]["incident_recall"] >= 0.8

    # max_f1: no observed prediction does better
    def f1(threshold: float) -> float:
        flags, truth = p >= threshold, yh > 0.5
        tp = np.sum(flags & truth)
        return 2 * tp / (flags.sum() + truth.sum())

    assert f1(t["max_f1"]) == pytest.approx(max(f1(x) for x in np.unique(p)))
    assert risk.threshold == t["recall_at_least"]
    assert risk.metrics["recall"] == pytest.approx(np.mean(p[yh > 0.5] >= risk.threshold))


def test_recall_over_vectors_without_incident_ids(data) -> None:
    X, labels, ts_s, _ = data
    model = fit_risk_model(NAMES, X, labels, ts_s, seed=0, strategy="max_f1")
    assert model.recall_unit == "vectors"
    assert model.threshold == model.thresholds["max_f1"]
    assert model.operating_points["recall_at_least"]["recall"] >= 0.8
    assert model.operating_points["recall_at_least"]["incident_recall"] is None


def test_a_holdout_without_positives_is_refused(data) -> None:
    X, labels, ts_s, ids = data
    late = ts_s >= np.quantile(ts_s, 0.7)
    cleared = np.where(late, 0.0, labels)
    with pytest.raises(InsufficientDataError, match=r"holdout .* has no positive"):
        fit_risk_model(NAMES, X, cleared, ts_s, ids, seed=0)
    latest = ts_s >= np.quantile(ts_s, 0.8)
    with pytest.raises(InsufficientDataError, match="both classes"):
        fit_risk_model(NAMES, X, np.where(latest, labels, 0.0), ts_s, ids, seed=0)


def test_metadata_is_json_and_the_version_deterministic(risk, data) -> None:
    X, labels, ts_s, ids = data
    meta = json.loads(json.dumps(risk.metadata()))
    assert meta["kind"] == "risk"
    assert meta["features"] == NAMES
    assert meta["version"] == risk.version
    assert set(meta["thresholds"]) == {"max_f1", "recall_at_least", "alert_budget"}
    again = fit_risk_model(NAMES, X, labels, ts_s, ids, seed=0, horizon_s=HORIZON_S)
    assert again.version == risk.version
    other = fit_risk_model(NAMES, X[::-1].copy(), labels, ts_s, ids, seed=0)
    assert other.version != risk.version
    assert risk.version.startswith("risk-19700103T")  # the holdout's last row, UTC


def test_pr_curve_png(risk: RiskArtifact) -> None:
    png = pr_curve_png(risk)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 5_000


# --------------------------------------------------------------------------- pickle


def test_artifacts_pickle_with_identical_predictions(risk, data) -> None:
    X, _, _, _ = data
    restored = pickle.loads(pickle.dumps(risk))
    assert restored.version == risk.version
    assert restored.metadata() == risk.metadata()
    np.testing.assert_array_equal(restored.score(X), risk.score(X))
    np.testing.assert_array_equal(restored.predict_proba(X), risk.predict_proba(X))


# --------------------------------------------------------------------------- champion/challenger


def test_a_worse_challenger_is_rejected_and_a_better_one_promoted(risk, data) -> None:
    X, labels, ts_s, _ = data
    shuffled = np.random.default_rng(9).permutation(labels)
    worse = fit_risk_model(NAMES, X, shuffled, ts_s, seed=0)
    # fresh rows, after both training windows
    Xn, yn, tn, _ = incidents_data(2, steps=2_000, start_s=float(ts_s[-1]) + 60.0)

    rejected = compare(risk, worse, NAMES, Xn, yn, margin=0.02, ts_s=tn)
    assert (rejected.promote, rejected.reason) == (False, "not_better")
    assert rejected.champion_pr_auc > 0.4 > rejected.challenger_pr_auc
    assert rejected.rows == yn.size

    promoted = compare(worse, risk, NAMES, Xn, yn, margin=0.02, ts_s=tn)
    assert (promoted.promote, promoted.reason) == (True, "better")
    assert promoted.challenger_pr_auc - promoted.champion_pr_auc >= 0.02
    assert promoted.champion_version == worse.version
    assert json.loads(json.dumps(promoted.as_dict()))["promote"] is True

    # a tie does not clear a margin; rows up to the challenger's last training row are left out
    assert not compare(risk, risk, NAMES, Xn, yn, margin=0.001).promote
    after_training = compare(worse, risk, NAMES, X, labels, ts_s=ts_s).rows
    assert after_training == risk.rows["holdout"] + risk.rows["purged"]


def test_compare_without_labels_or_positives_keeps_the_champion(risk, data) -> None:
    X, labels, _, _ = data
    unlabelled = np.full(labels.size, np.nan)
    assert compare(risk, risk, NAMES, X, unlabelled).reason == "no_labels"
    assert compare(risk, risk, NAMES, X, np.zeros(labels.size)).reason == "no_positives"
    first = compare(None, risk, NAMES, X, unlabelled)
    assert (first.promote, first.reason, first.challenger_pr_auc) == (True, "no_champion", None)
    scored = compare(risk, risk, NAMES, X, labels)
    assert scored.reason == "not_better"
    assert scored.champion_pr_auc is not None
    with pytest.raises(ValueError, match="margin"):
        compare(risk, risk, NAMES, X, labels, margin=-0.1)


def test_compare_aligns_features_by_name(risk, data) -> None:
    X, labels, _, _ = data
    reordered = [NAMES[i] for i in (3, 1, 0, 2)]
    a = compare(risk, risk, NAMES, X, labels)
    b = compare(risk, risk, reordered, X[:, [3, 1, 0, 2]], labels)
    assert a.champion_pr_auc == pytest.approx(b.champion_pr_auc)


# --------------------------------------------------------------------------- training window


def test_window_missing_features_are_nan_and_rows_come_in_time_order() -> None:
    w = TrainingWindow()
    w.add("api", 20.0, {"b": 2.0, "a": 1.0}, False)
    w.add("api", 10.0, {"c": 3.0}, None)
    w.add("api", 20.0, {"a": 4.0, "b": 5.0}, True, "inc-9")
    w.add("db", 5.0, {"z": 1.0}, None)
    f = w.frame("api")
    assert f.names == ("a", "b", "c")
    assert f.ts_s.tolist() == [10.0, 20.0, 20.0]
    np.testing.assert_array_equal(f.X, [[np.nan, np.nan, 3.0], [1.0, 2.0, np.nan], [4, 5, np.nan]])
    np.testing.assert_array_equal(f.labels, [np.nan, 0.0, 1.0])
    assert f.incident_ids == (None, None, "inc-9")
    assert f.labelled().ts_s.tolist() == [20.0, 20.0]
    only = w.frame("api", names=["c", "x"])
    np.testing.assert_array_equal(only.X, [[3.0, np.nan], [np.nan, np.nan], [np.nan, np.nan]])
    assert w.groups() == ["api", "db"]
    assert w.frame("nobody").X.shape == (0, 0)


def test_window_drops_rows_older_than_the_span() -> None:
    w = TrainingWindow(span_s=86_400.0)
    rng = np.random.default_rng(0)
    ts_s = np.sort(rng.uniform(0, 3 * 86_400.0, size=5_000))
    for t in rng.permutation(ts_s):  # out of order arrivals
        w.add("api", float(t), {"x": float(t)}, None)
    f = w.frame("api")
    newest = ts_s.max()
    assert f.ts_s.min() >= newest - 86_400.0
    assert f.ts_s.size == int(np.sum(ts_s >= newest - 86_400.0))
    np.testing.assert_array_equal(f.X[:, 0], f.ts_s.astype(np.float32))
    assert np.all(np.diff(f.ts_s) >= 0)


def test_window_caps_rows_per_group_oldest_first() -> None:
    w = TrainingWindow(max_rows=3_000)
    rng = np.random.default_rng(1)
    ts_s = rng.permutation(10_000).astype(float)
    ids = [f"inc-{int(t)}" for t in ts_s]
    for t, incident in zip(ts_s, ids, strict=True):
        w.add("api", float(t), {"x": t, "y": -t}, True, incident)
    w.add("db", 0.0, {"x": 1.0}, False)
    f = w.frame("api")
    assert w.rows("api") == 3_000
    assert w.rows("db") == 1
    assert f.ts_s.tolist() == list(np.arange(7_000.0, 10_000.0))
    assert f.incident_ids == tuple(f"inc-{t}" for t in range(7_000, 10_000))
    # storage stays within the cap plus one batch of pending rows, compactly
    assert w.nbytes() < 3_000 * 1.6 * (2 * 4 + 21) + 100 * (3_000 + 1_024) + 100_000


def test_window_extend_and_memory_is_compact() -> None:
    w = TrainingWindow()
    names = [f"f{i}" for i in range(20)]
    X = np.random.default_rng(0).normal(size=(10_000, 20))
    w.extend("api", names, X, np.arange(10_000.0), np.r_[np.zeros(9_990), np.ones(10)])
    f = w.frame("api", names)
    np.testing.assert_array_equal(f.X, X.astype(np.float32))
    assert w.frame("api").names[:3] == ("f0", "f1", "f10")  # sorted by default
    assert int(np.nansum(f.labels)) == 10
    assert w.nbytes() < 1.6 * 10_000 * (20 * 4 + 21)
    with pytest.raises(ValueError, match="shape"):
        w.extend("api", names, X[:, :3], np.arange(10_000.0))
    assert math.isinf(TrainingWindow()._group("x").newest_s)
