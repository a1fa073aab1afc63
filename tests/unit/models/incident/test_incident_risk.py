"""IncidentRiskModel: learns a rare label, calibrates, explains, copes with odd vectors."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss

from models.incident import FeatureRow, IncidentRiskModel, RiskConfig

NAMES = [f"f{j}" for j in range(10)]
SCALE = np.array([1, 1, 10, 0.1, 100, 1, 1, 5, 1, 1.0])
OFFSET = np.array([0, 5, 0, 1, 1000, 0, 0, 0, -3, 0.0])


def synthetic(n: int, seed: int) -> tuple[list[dict[str, float]], np.ndarray]:
    """Ten features on different scales; the label depends on f0 and f1 (base rate ~3 %)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10))
    y = rng.random(n) < 1 / (1 + np.exp(-(-5.0 + 1.6 * x[:, 0] + 1.2 * x[:, 1])))
    rows = (x * SCALE + OFFSET).tolist()
    return [dict(zip(NAMES, row, strict=True)) for row in rows], y


@pytest.fixture(scope="module")
def prequential() -> dict[str, np.ndarray]:
    """Predict each vector, then learn it; the first 2,000 are left out of the scores."""
    vectors, y = synthetic(15_000, seed=1)
    model = IncidentRiskModel("g", RiskConfig())
    calibrated, weighted, prior_shift = (np.empty(len(y)) for _ in range(3))
    for i, (vector, label) in enumerate(zip(vectors, y, strict=True)):
        calibrated[i] = model.predict(vector)
        weighted[i] = model.predict_many([vector], calibrated=False)[0]
        p = min(max(weighted[i], 1e-15), 1 - 1e-15)
        logit = math.log(p / (1 - p)) - model.log_weight_ratio
        prior_shift[i] = 1 / (1 + math.exp(-logit)) if model.updates else 0.0
        model.learn(vector, bool(label))
    keep = slice(2_000, None)
    return {
        "y": y[keep],
        "calibrated": calibrated[keep],
        "weighted": weighted[keep],
        "prior_shift": prior_shift[keep],
    }


def test_prequential_pr_auc_is_well_above_the_base_rate(prequential: dict[str, np.ndarray]) -> None:
    y = prequential["y"]
    assert 0.02 < y.mean() < 0.045
    assert average_precision_score(y, prequential["calibrated"]) >= 3 * y.mean()


def test_calibration_beats_the_weighted_output_and_the_prior_shift(
    prequential: dict[str, np.ndarray],
) -> None:
    y = prequential["y"]
    calibrated = brier_score_loss(y, prequential["calibrated"])
    assert calibrated < brier_score_loss(y, prequential["weighted"])
    assert calibrated < brier_score_loss(y, prequential["prior_shift"])
    assert calibrated < brier_score_loss(y, np.full(y.size, y.mean()))
    assert prequential["calibrated"].mean() == pytest.approx(y.mean(), rel=0.3)


def test_prediction_before_any_label_is_zero() -> None:
    model = IncidentRiskModel("g", RiskConfig())
    assert model.predict({"a": 1.0}) == 0.0
    assert model.predict_many([{"a": 1.0}, {}]).tolist() == [0.0, 0.0]
    assert model.predict_many([]).shape == (0,)
    assert model.explain({"a": 1.0}) == []
    assert model.version == "u0"


def test_fast_path_matches_river() -> None:
    vectors, y = synthetic(500, seed=2)
    model = IncidentRiskModel("g", RiskConfig(average_decay=0.0))  # river's own weights
    for vector, label in zip(vectors, y, strict=True):
        model.learn(vector, bool(label))
    for vector in vectors[:20]:
        river = model._classifier.predict_proba_one(model._scaler.transform_one(vector))[True]
        assert model.predict_many([vector], calibrated=False)[0] == pytest.approx(river, abs=1e-12)


def test_missing_non_finite_and_new_features_are_neutral() -> None:
    vectors, y = synthetic(500, seed=3)
    model = IncidentRiskModel("g", RiskConfig())
    for vector, label in zip(vectors, y, strict=True):
        model.learn(vector, bool(label))
    vector = dict(vectors[0])
    at_mean = {**vector, "f1": float(model._scaler.means["f1"])}
    missing = {k: v for k, v in vector.items() if k != "f1"}
    p = model.predict(at_mean)
    assert model.predict(missing) == pytest.approx(p)
    assert model.predict({**vector, "f1": math.nan}) == pytest.approx(p)
    assert model.predict({**at_mean, "brand_new": 3.0}) == pytest.approx(p)
    before = dict(vector)
    model.learn({**vector, "brand_new": 1.0, "f2": math.inf}, True)
    assert vector == before
    assert model.predict({}) >= 0.0


def test_explain_gives_the_largest_contributions_of_the_model() -> None:
    vectors, y = synthetic(3_000, seed=4)
    model = IncidentRiskModel("g", RiskConfig())
    for vector, label in zip(vectors, y, strict=True):
        model.learn(vector, bool(label))
    vector = vectors[0]
    everything = model.explain(vector, k=100)
    assert len(everything) == 10
    top = model.explain(vector, k=3)
    assert top == everything[:3]
    sizes = [abs(c.contribution) for c in everything]
    assert sizes == sorted(sizes, reverse=True)
    weighted = model.predict_many([vector], calibrated=False)[0]
    logit = model._intercept_used() + sum(c.contribution for c in everything)
    assert 1 / (1 + math.exp(-logit)) == pytest.approx(weighted)
    first = everything[0]
    assert first.value == vector[first.name]
    assert first.baseline == pytest.approx(model._scaler.means[first.name])
    # On this stream the label depends on f0 and f1: they carry the largest coefficients.
    weights = model._weights()
    assert {max(weights, key=lambda n: abs(weights[n]))} <= {"f0", "f1"}


def test_negatives_are_sampled_but_all_counted() -> None:
    model = IncidentRiskModel("g", RiskConfig(negative_sampling=0.25))
    model.learn_many([{"a": float(i % 7)} for i in range(4000)], [False] * 4000)
    model.learn({"a": 9.0}, True)
    assert (model.negatives, model.positives) == (4000, 1)
    assert 900 <= model.updates - 1 <= 1100  # about a quarter of the negatives learned


def test_counts_and_version_follow_learning() -> None:
    model = IncidentRiskModel("g", RiskConfig(negative_sampling=1.0))
    model.learn({"a": 1.0}, True)
    model.learn({"a": 0.0}, False)
    model.learn({"a": 0.0}, False)
    assert (model.positives, model.negatives, model.updates, model.version) == (1, 2, 3, "u3")


def test_prediction_is_fast() -> None:
    vectors = [{f"feature_{j}": float(i + j) for j in range(30)} for i in range(20)]
    model = IncidentRiskModel("g", RiskConfig())
    for i, vector in enumerate(vectors * 10):
        model.learn(vector, i % 7 == 0)
    model.predict_many(vectors)
    began = time.perf_counter()
    for _ in range(100):
        model.predict_many(vectors)
    assert (time.perf_counter() - began) / 100 < 1e-3


def test_feature_rows_predict_and_learn_exactly_as_dicts() -> None:
    vectors, y = synthetic(1_500, seed=5)
    names = tuple(NAMES)
    as_dicts = IncidentRiskModel("g", RiskConfig())
    as_rows = IncidentRiskModel("g", RiskConfig())
    for start in range(0, len(vectors), 50):
        chunk, labels = vectors[start : start + 50], [bool(v) for v in y[start : start + 50]]
        # float32 rows (as a labeler stores them), some vectors with fewer features
        rows = [FeatureRow(names, np.array([v[n] for n in names], dtype=np.float32)) for v in chunk]
        rows[::7] = [FeatureRow(names[1:], row.row[1:]) for row in rows[::7]]
        dicts = [row.to_dict() for row in rows]
        assert as_rows.predict_many(rows).tolist() == as_dicts.predict_many(dicts).tolist()
        as_rows.learn_many(rows, labels)
        as_dicts.learn_many(dicts, labels)
    assert as_rows.updates == as_dicts.updates > 0
    assert as_rows._weights() == as_dicts._weights()


def test_a_feature_row_is_a_read_only_mapping() -> None:
    row = FeatureRow(("a", "b"), np.array([1.0, math.nan], dtype=np.float32))
    assert row["a"] == 1.0
    assert math.isnan(row["b"])
    assert "b" in row
    assert "c" not in row
    assert next(iter(row.items())) == ("a", 1.0)
    with pytest.raises(KeyError):
        row["c"]
    with pytest.raises(ValueError, match="one value per name"):
        FeatureRow(("a",), np.zeros(2))
