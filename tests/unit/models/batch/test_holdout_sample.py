"""The risk artifact's thinned holdout and what its timeline figure marks."""

from __future__ import annotations

import numpy as np
import pytest

from models.batch import RiskArtifact, fit_risk_model
from models.batch.holdout import HoldoutSample, thin_holdout, timeline_marks
from stream.offline.holdout_figures import holdout_timeline_png
from tests.unit.models.batch.test_batch_models import HORIZON_S, NAMES, holdout_of, incidents_data


def fit(data, **options) -> RiskArtifact:
    X, labels, ts_s, ids = data
    return fit_risk_model(NAMES, X, labels, ts_s, ids, horizon_s=HORIZON_S, **options)


@pytest.fixture(scope="module")
def data():
    return incidents_data(1)


@pytest.fixture(scope="module")
def risk(data) -> RiskArtifact:
    return fit(data)


def sample_of(model: RiskArtifact) -> HoldoutSample:
    assert model.holdout_sample is not None
    return model.holdout_sample


def test_thinning_keeps_every_positive_and_evenly_spaced_negatives_deterministically() -> None:
    # Four services a step: 3,000+ holdout negatives, more than the 2,000 kept.
    data = incidents_data(2, rows_per_step=4)
    model = fit(data)
    sample = sample_of(model)
    _, y, t, _ = holdout_of(model, data)
    assert sample.rows == y.size == model.rows["holdout"]
    assert sample.negatives == int(np.sum(y == 0)) > 2_000
    assert int(np.sum(~sample.positive)) == 2_000
    times = sample.origin_s + sample.offset_s.astype(np.float64)
    assert sample.origin_s == t[0]
    np.testing.assert_array_equal(times[sample.positive], t[y == 1])  # every positive
    assert np.all(np.diff(times) >= 0)
    kept = np.flatnonzero(np.isin(t[y == 0], times[~sample.positive]))
    assert np.diff(kept).max() <= 2  # evenly spaced: every second negative or so
    for name in ("offset_s", "probability"):
        assert getattr(sample, name).dtype == np.float32

    again = sample_of(fit(data))
    for name in ("offset_s", "probability", "positive", "incident"):
        np.testing.assert_array_equal(getattr(again, name), getattr(sample, name))


def test_thinning_at_most_max_negatives_and_none_when_fewer() -> None:
    positive = np.zeros(10, bool)
    positive[[2, 7]] = True
    ts_s = np.arange(10.0)
    sample = thin_holdout(ts_s, np.full(10, 0.2), positive, None, 0.5, max_negatives=3)
    assert sample.offset_s.tolist() == [0.0, 2.0, 3.0, 6.0, 7.0]  # negatives 0, 2, 5 of 8
    assert sample.incident.tolist() == [-1] * 5
    everything = thin_holdout(ts_s, np.full(10, 0.2), positive, None, 0.5, max_negatives=8)
    assert everything.offset_s.tolist() == ts_s.tolist()


@pytest.mark.parametrize("threshold", [0.7, 0.3, 0.75])  # float32: 0.7 down, 0.3 up, 0.75 exact
def test_alert_marks_survive_float32_at_the_threshold(threshold: float) -> None:
    p = np.array([threshold, np.nextafter(threshold, 0.0), np.nextafter(threshold, 1.0), 0.1])
    sample = thin_holdout(np.arange(4.0), p, [1, 1, 0, 0], None, threshold)
    marks = timeline_marks(sample, threshold)
    assert marks.alert.tolist() == (p >= threshold).tolist() == [True, False, True, False]


def test_alert_marks_are_the_holdout_rows_at_or_over_the_threshold(data) -> None:
    # A 2 % budget: more alerts than true positives, so false alarms are marked too.
    risk = fit(data, strategy="alert_budget", alert_budget=0.02)
    sample = sample_of(risk)
    X, y, t, _ = holdout_of(risk, data)
    assert sample.negatives == int(np.sum(~sample.positive))  # this holdout is kept whole
    p = risk.predict_proba(X)
    over = p >= risk.threshold
    marks = timeline_marks(sample, risk.threshold)
    assert 0 < risk.metrics["tp"] < int(marks.alert.sum())
    np.testing.assert_array_equal(marks.alert, over)  # row for row
    assert int(np.sum(marks.alert & sample.positive)) == risk.metrics["tp"]
    assert int(np.sum(marks.alert & ~sample.positive)) == risk.metrics["fp"]
    np.testing.assert_allclose(sample.probability, p, rtol=1e-6)  # float32
    assert sample.origin_s + float(sample.offset_s[-1]) == t[-1]
    assert sample.positive.tolist() == (y == 1).tolist()


def test_each_incident_is_one_span_from_its_first_to_its_last_positive(risk, data) -> None:
    sample = sample_of(risk)
    X, _, t, ids = holdout_of(risk, data)
    p = risk.predict_proba(X)
    expected = []
    for incident_id in dict.fromkeys(i for i in ids if i is not None):
        rows = [k for k, i in enumerate(ids) if i == incident_id]
        caught = bool(np.any(p[rows] >= risk.threshold))
        expected.append((t[rows].min() - t[0], t[rows].max() - t[0], caught))
    marks = timeline_marks(sample, risk.threshold)
    assert [tuple(m) for m in marks.incidents] == sorted(expected)
    assert len(marks.incidents) == risk.metrics["incidents"] > 5
    caught = np.mean([m.caught for m in marks.incidents])
    assert caught == pytest.approx(risk.metrics["incident_recall"])
    assert all(m.first_s < m.last_s for m in marks.incidents)  # 15 positives each


def test_no_incident_spans_without_ids() -> None:
    sample = thin_holdout([0.0, 60.0], [0.9, 0.1], [1, 1], None, 0.5)
    marks = timeline_marks(sample, 0.5)
    assert marks.incidents == []
    assert marks.alert.tolist() == [True, False]


def test_a_holdout_at_one_instant_draws_without_warnings() -> None:
    sample = thin_holdout([5.0, 5.0, 5.0], [0.9, 0.1, 0.6], [1, 0, 1], ["a", None, "a"], 0.5)
    assert timeline_marks(sample, 0.5).incidents == [(0.0, 0.0, True)]
    assert holdout_timeline_png(sample, 0.5, "one instant").startswith(b"\x89PNG")
