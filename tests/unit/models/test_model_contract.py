"""The contract every online model of Vigil keeps, checked over all of them (as river's
``checks`` run one suite over every estimator).

Each model is driven through a small adapter with two verbs: ``step`` (score a run of rows,
then learn them, one at a time) and ``batch`` (the same run in one call, as the detector
does). The suite checks, for every model:

- it learns: what it says of an outlier changes once it has seen normal rows;
- a batch equals one-at-a-time, exactly;
- a snapshot round-trip (the state as a snapshot stores it) continues exactly where the
  original does;
- degenerate input (a constant, all zeros, a huge value, a missing or NaN value) gives no NaN
  and no error.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from models.anomaly import AnomalyConfig, ServiceAnomalyModel
from models.anomaly.hst import make_hst
from models.anomaly.scaling import RobustScaler
from models.incident import RiskConfig
from models.incident.risk import IncidentRiskModel

Rows = list[dict[str, float]]
NAMES = ("cpu", "latency", "errors")


@dataclass(frozen=True)
class Subject:
    """An online model under the contract.

    ``step(model, rows, t0)`` goes through the rows one at a time, ``batch(model, rows, t0)``
    in one call (row ``i`` at event time ``t0 + 60 i``); both return one output per row: a
    score of each row before it is learned, or (incident risk, whose batches are learned
    together) each row's prediction once all are learned. ``outlier`` is what the model says
    of an outlying row without learning it.
    """

    name: str
    make: Callable[[], Any]
    step: Callable[[Any, Rows, float], np.ndarray]
    batch: Callable[[Any, Rows, float], np.ndarray]
    outlier: Callable[[Any, dict[str, float]], float]
    bounded: bool = True
    """Its inputs must be in [0, 1] (HST): degenerate rows are clipped into range."""


def _matrix(rows: Rows) -> np.ndarray:
    return np.array([[r.get(n, math.nan) for n in NAMES] for r in rows], dtype=np.float64)


def _hst(engine: str) -> Subject:
    def make() -> Any:
        return make_hst(engine, n_trees=10, height=6, window_size=50, seed=3)  # type: ignore[arg-type]

    def step(model: Any, rows: Rows, t0: float) -> np.ndarray:
        X = _matrix(rows)
        return np.concatenate([model.score_learn_batch(X[i : i + 1]) for i in range(len(X))])

    def batch(model: Any, rows: Rows, t0: float) -> np.ndarray:
        return np.asarray(model.score_learn_batch(_matrix(rows)))

    def outlier(model: Any, row: dict[str, float]) -> float:
        return float(model.score_batch(_matrix([row]))[0])

    return Subject(f"hst-{engine}", make, step, batch, outlier, bounded=True)


def _anomaly() -> Subject:
    config = AnomalyConfig(warmup_events=100, window_size=50, n_trees=10, height=6)

    def outputs(verdict: Any) -> np.ndarray:
        return np.c_[verdict.scores, verdict.p_values, verdict.alerts]

    def step(model: Any, rows: Rows, t0: float) -> np.ndarray:
        return np.concatenate(
            [outputs(model.observe_batch([r], [t0 + 60.0 * i])) for i, r in enumerate(rows)]
        )

    def batch(model: Any, rows: Rows, t0: float) -> np.ndarray:
        return outputs(model.observe_batch(rows, [t0 + 60.0 * i for i in range(len(rows))]))

    def outlier(model: Any, row: dict[str, float]) -> float:
        verdict = model.observe_batch([row], [model.last_ts_s + 60.0], learn=False)
        return float(verdict.p_values[0])

    return Subject(
        "service-anomaly", lambda: ServiceAnomalyModel("api", config), step, batch, outlier, False
    )


def _risk() -> Subject:
    config = RiskConfig(min_positives=1)

    def labelled(rows: Rows) -> list[bool]:
        return [r.get("errors", 0.0) > 0.7 for r in rows]  # the label follows errors

    # Uncalibrated: a batch's Platt pairs are taken with the model before any of its labels
    # (they came together, so that model predicted them); the weights must be the same.
    def step(model: Any, rows: Rows, t0: float) -> np.ndarray:
        for row, label in zip(rows, labelled(rows), strict=True):
            model.learn(row, label)
        return np.asarray(model.predict_many(rows, calibrated=False))

    def batch(model: Any, rows: Rows, t0: float) -> np.ndarray:
        model.learn_many(rows, labelled(rows))
        return np.asarray(model.predict_many(rows, calibrated=False))

    def outlier(model: Any, row: dict[str, float]) -> float:
        return float(model.predict_many([row], calibrated=False)[0])

    return Subject("incident-risk", lambda: IncidentRiskModel("g", config), step, batch, outlier)


def _scaler() -> Subject:
    def z(model: Any, rows: Rows) -> np.ndarray:
        return np.array([[model.z_scores(r, NAMES)[n] for n in NAMES] for r in rows])

    def step(model: Any, rows: Rows, t0: float) -> np.ndarray:
        out = []
        for row in rows:
            out.append(z(model, [row])[0])
            model.learn_one(row)
        return np.array(out)

    def batch(model: Any, rows: Rows, t0: float) -> np.ndarray:
        return np.asarray(model.scale_batch(_matrix(rows), NAMES)[0])

    def outlier(model: Any, row: dict[str, float]) -> float:
        return float(z(model, [row])[0][1])

    return Subject(
        "robust-scaler",
        lambda: RobustScaler(window=64, refresh_every=8),
        step,
        batch,
        outlier,
        bounded=False,
    )


SUBJECTS = [_hst("numpy"), _hst("river"), _anomaly(), _risk(), _scaler()]


def normal_rows(n: int, seed: int, bounded: bool) -> Rows:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        row = {
            "cpu": rng.normal(0.5, 0.05),
            "latency": rng.normal(0.4, 0.05),
            "errors": rng.uniform(0.0, 1.0) ** 4,
        }
        rows.append({k: min(max(v, 0.0), 1.0) if bounded else v for k, v in row.items()})
    return rows


OUTLIER = {"cpu": 0.5, "latency": 0.99, "errors": 0.01}


@pytest.fixture(params=SUBJECTS, ids=lambda s: s.name)
def subject(request: pytest.FixtureRequest) -> Subject:
    return request.param  # type: ignore[no-any-return]


def test_it_learns(subject: Subject) -> None:
    model = subject.make()
    subject.step(model, normal_rows(5, 1, subject.bounded), 0.0)
    before = subject.outlier(model, OUTLIER)
    subject.step(model, normal_rows(400, 2, subject.bounded), 600.0)
    assert subject.outlier(model, OUTLIER) != before


def test_a_batch_equals_one_at_a_time(subject: Subject) -> None:
    rows = [*normal_rows(300, 3, subject.bounded), *[OUTLIER] * 3, *normal_rows(60, 4, True)]
    one, many = subject.make(), subject.make()
    expected = subject.step(one, rows, 0.0)
    got = subject.batch(many, rows, 0.0)
    np.testing.assert_array_equal(got, expected)
    assert subject.outlier(many, OUTLIER) == subject.outlier(one, OUTLIER)


def test_a_snapshot_round_trip_continues_exactly(subject: Subject) -> None:
    model = subject.make()
    subject.step(model, normal_rows(250, 5, subject.bounded), 0.0)
    restored = pickle.loads(pickle.dumps(model, protocol=5))  # as snapshots store state
    later = [*normal_rows(120, 6, subject.bounded), OUTLIER]
    np.testing.assert_array_equal(
        subject.batch(restored, later, 250 * 60.0), subject.batch(model, later, 250 * 60.0)
    )


@pytest.mark.parametrize(
    "kind", ["constant", "zeros", "huge", "missing", "nan"], ids=lambda k: str(k)
)
def test_degenerate_input_gives_no_nan(subject: Subject, kind: str) -> None:
    base = {"constant": 0.3, "zeros": 0.0}
    rows: Rows
    if kind in base:
        rows = [dict.fromkeys(NAMES, base[kind]) for _ in range(300)]
    elif kind == "huge":
        rows = normal_rows(300, 7, subject.bounded)
        rows[200] = dict.fromkeys(NAMES, 1.0 if subject.bounded else 1e300)
    else:
        rows = normal_rows(300, 8, subject.bounded)
        for i in range(100, 300, 7):
            if kind == "missing":
                rows[i] = {k: v for k, v in rows[i].items() if k != "latency"}
            else:
                rows[i] = {**rows[i], "latency": math.nan}
    if subject.name.startswith("hst") and kind in ("missing", "nan"):
        rows = [{n: r.get(n, 0.5) if r.get(n) == r.get(n) else 0.5 for n in NAMES} for r in rows]
    out = subject.batch(subject.make(), rows, 0.0)
    assert out.shape[0] == len(rows)
    assert not np.isnan(out).any()
