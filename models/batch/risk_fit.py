"""Fitting the batch incident-risk model: on the past, tuned and evaluated on what followed.

:func:`fit_risk_model` splits the labelled rows in time (purging the horizon before the
holdout), fits standardization + balanced logistic regression, tunes every strategy's
threshold on the holdout and returns a :class:`~models.batch.risk.RiskArtifact`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models.batch._shared import (
    FloatArray,
    InsufficientDataError,
    as_matrix,
    column_medians,
    finite_or_none,
    impute,
    library_versions,
    span_of,
    version_of,
)
from models.batch.holdout import thin_holdout
from models.batch.risk import RiskArtifact, positive_proba
from models.batch.tuning import incident_best, tune_thresholds
from models.incident.config import Strategy
from models.incident.prequential import IncidentReport, incident_report

__all__ = ["fit_risk_model"]

IntArray = npt.NDArray[np.intp]


def fit_risk_model(
    names: Sequence[str],
    X: npt.ArrayLike,
    labels: npt.ArrayLike,
    ts_s: npt.ArrayLike,
    incident_ids: Sequence[str | None] | None = None,
    *,
    seed: int = 0,
    holdout_share: float = 0.25,
    strategy: Strategy = "recall_at_least",
    target_recall: float = 0.8,
    alert_budget: float = 0.01,
    horizon_s: float = 900.0,
    regularization: float = 1.0,
    n_repeats: int = 5,
) -> RiskArtifact:
    """Fit standardization + balanced logistic regression on the past, evaluate on the rest.

    Rows without a label (NaN) are ignored. The labelled rows are ordered by event time; the
    last ``holdout_share`` of them is the holdout, widened to every row at its first event
    time, so no training row is at or after any holdout row. Training rows within
    ``horizon_s`` before the holdout are dropped ("purged"): their labels were decided by
    incidents that may open inside the holdout. NaN features become the training median.

    Every threshold is tuned on the holdout predictions only (see
    :func:`~models.batch.tuning.tune_thresholds`); ``recall_at_least`` counts incidents when
    a holdout positive carries an incident id. ``metrics``: ``pr_auc`` (average precision),
    ``roc_auc`` (None without holdout negatives), ``brier``, ``precision``, ``recall``,
    ``f1``, ``tp``/``fp``/``tn``/``fn``, ``alert_share`` at the threshold, ``positives``,
    ``base_rate``, ``n``, ``incidents`` and ``incident_recall`` (None without ids). Balanced
    class weights inflate probabilities above the base rate: the Brier score is for
    comparing fits, the probabilities are not calibrated.

    Args:
        names: The columns of ``X``.
        X: Rows, [n, len(names)].
        labels: 1/0 per row, NaN when unknown.
        ts_s: The rows' event times.
        incident_ids: Per row, the incident that made it positive (else None).
        seed: Random state of the solver and of permutation importance.
        holdout_share: The share of labelled rows (the most recent) held out.
        strategy: Whose threshold is in force.
        target_recall: ``recall_at_least``'s target.
        alert_budget: ``alert_budget``'s share of holdout vectors over the threshold.
        horizon_s: The label horizon, purged before the holdout.
        regularization: The inverse L2 strength ``C`` of the logistic regression.
        n_repeats: Permutations per feature for the importance.

    Raises:
        InsufficientDataError: No positive in the holdout (nothing to tune or evaluate on),
            or the training rows lack a class. Nothing usable is returned in that case.

    Examples:
        >>> model = _example()
        >>> model.rows, model.recall_unit
        ({'train': 1485, 'holdout': 500, 'purged': 15}, 'incidents')
        >>> round(model.metrics["pr_auc"], 2), round(model.metrics["base_rate"], 3)
        (0.75, 0.04)
        >>> model.importance[0]["feature"], model.threshold == model.thresholds["recall_at_least"]
        ('latency', True)
        >>> model.predict_proba([[3.0, 0.0]], names=["latency", "noise"]).round(2).tolist()
        [0.98]
    """
    _check_options(holdout_share, target_recall, alert_budget, horizon_s)
    names, matrix, y, times, ids = _arrays(names, X, labels, ts_s, incident_ids)
    train, holdout, purged = _split(y, times, holdout_share, horizon_s)
    y_train, y_holdout = y[train] > 0.5, y[holdout] > 0.5

    medians = column_medians(matrix[train])
    X_holdout = impute(matrix[holdout], medians)
    pipeline = _fit(impute(matrix[train], medians), y_train, regularization, seed)
    p = positive_proba(pipeline, X_holdout)

    holdout_ids = [ids[i] for i in holdout.tolist()] if ids is not None else None
    best, thresholds, points = _tuned(p, y_holdout, holdout_ids, target_recall, alert_budget)
    report = incident_report(y_holdout, p, thresholds[strategy])
    train_range, holdout_range = span_of(times[train]), span_of(times[holdout])
    settings = dict(
        seed=seed, holdout_share=holdout_share, strategy=strategy, target_recall=target_recall,
        alert_budget=alert_budget, horizon_s=horizon_s, regularization=regularization,
        n_repeats=n_repeats,
    )  # fmt: skip
    return RiskArtifact(
        names=names,
        medians=medians,
        strategy=strategy,
        threshold=thresholds[strategy],
        thresholds=thresholds,
        recall_unit="incidents" if best is not None else "vectors",
        metrics=_metrics(report, points[strategy], best),
        operating_points=points,
        importance=_importance(pipeline, names, X_holdout, y_holdout, n_repeats, seed),
        train_range=train_range,
        holdout_range=holdout_range,
        rows={"train": int(train.size), "holdout": int(holdout.size), "purged": purged},
        settings=settings,
        version=version_of(
            "risk",
            [names, medians, *_fitted_parameters(pipeline)]
            + [sorted(d.items()) for d in (thresholds, settings, train_range, holdout_range)],
            holdout_range["last_ts_s"],
        ),
        libraries=library_versions(),
        _pipeline=pipeline,
        _curve=(report.precision_curve, report.recall_curve),
        holdout_sample=thin_holdout(
            times[holdout], p, y_holdout, holdout_ids, thresholds[strategy]
        ),
    )


class _Tuning(NamedTuple):
    best: FloatArray | None
    """Per incident of the holdout, its best prediction (None without incident ids)."""
    thresholds: dict[str, float]
    """Every strategy's threshold."""
    points: dict[str, dict[str, float | None]]
    """Every strategy's operating point on the holdout."""


def _tuned(
    p: FloatArray,
    y: npt.NDArray[np.bool_],
    ids: list[str | None] | None,
    target_recall: float,
    alert_budget: float,
) -> _Tuning:
    """Every strategy's threshold, tuned on the holdout's predictions ``p`` (labels ``y``,
    incident ids ``ids``), and its operating point there."""
    best = incident_best(p, y.astype(np.float64), ids)
    thresholds = tune_thresholds(p, y, best, target_recall=target_recall, alert_budget=alert_budget)
    points = {name: _operating_point(p, y, best, value) for name, value in thresholds.items()}
    return _Tuning(best, thresholds, points)


def _arrays(
    names: Sequence[str],
    X: npt.ArrayLike,
    labels: npt.ArrayLike,
    ts_s: npt.ArrayLike,
    incident_ids: Sequence[str | None] | None,
) -> tuple[tuple[str, ...], FloatArray, FloatArray, FloatArray, list[str | None] | None]:
    """The inputs as arrays, checked to have one row each."""
    columns, matrix = as_matrix(names, X)
    y = np.asarray(labels, np.float64).ravel()
    times = np.asarray(ts_s, np.float64).ravel()
    ids = list(incident_ids) if incident_ids is not None else None
    if not y.size == times.size == matrix.shape[0] == (len(ids) if ids is not None else y.size):
        raise ValueError("X, labels, ts_s and incident_ids must have the same number of rows")
    if not np.all(np.isfinite(times)):
        raise ValueError("ts_s must be finite")
    return columns, matrix, y, times, ids


def _fit(X: FloatArray, y: npt.NDArray[np.bool_], regularization: float, seed: int) -> Any:
    """Standardization + class-balanced logistic regression, fitted."""
    pipeline = make_pipeline(
        StandardScaler(),
        LogisticRegression(
            class_weight="balanced", C=regularization, max_iter=1_000, random_state=seed
        ),
    )
    pipeline.fit(X, y)
    return pipeline


def _check_options(
    holdout_share: float, target_recall: float, alert_budget: float, horizon_s: float
) -> None:
    if not 0.0 < holdout_share < 1.0:
        raise ValueError(f"holdout_share must be in (0, 1), got {holdout_share}")
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    if not 0.0 < alert_budget < 1.0:
        raise ValueError(f"alert_budget must be in (0, 1), got {alert_budget}")
    if not (math.isfinite(horizon_s) and horizon_s >= 0.0):
        raise ValueError(f"horizon_s must be finite and >= 0, got {horizon_s}")


class _Split(NamedTuple):
    train: IntArray
    holdout: IntArray
    purged: int


def _split(y: FloatArray, times: FloatArray, holdout_share: float, horizon_s: float) -> _Split:
    """The time-ordered split of the labelled rows: the holdout (the last ``holdout_share``,
    widened to every row at its first event time) and the training rows before it, less
    those within ``horizon_s`` of it (purged). Raises InsufficientDataError when the holdout
    has no positive or the training rows lack a class."""
    known = np.flatnonzero(~np.isnan(y))
    order = known[np.argsort(times[known], kind="stable")]
    n = order.size
    if n < 2:
        raise InsufficientDataError(f"{n} labelled rows: nothing to split")
    split = min(max(math.ceil(n * (1.0 - holdout_share)), 1), n - 1)
    holdout_start_s = float(times[order[split]])
    ordered_ts = times[order]
    holdout = order[ordered_ts >= holdout_start_s]
    before = order[ordered_ts < holdout_start_s]
    train = before[times[before] < holdout_start_s - horizon_s]
    y_train, y_holdout = y[train] > 0.5, y[holdout] > 0.5
    if not y_holdout.any():
        raise InsufficientDataError(
            f"the holdout (the last {holdout.size} labelled rows) has no positive: "
            "thresholds cannot be tuned nor the model evaluated"
        )
    if y_train.all() or not y_train.any():
        raise InsufficientDataError(
            f"the {train.size} training rows need both classes ({int(y_train.sum())} positive)"
        )
    return _Split(train, holdout, int(before.size - train.size))


def _metrics(
    report: IncidentReport, point: dict[str, float | None], best: FloatArray | None
) -> dict[str, Any]:
    """The holdout's quality at the threshold in force (``point``: its operating point)."""
    return {
        "n": report.n,
        "positives": report.positives,
        "base_rate": report.base_rate,
        "pr_auc": report.pr_auc,
        "roc_auc": report.roc_auc,
        "brier": report.brier,
        "precision": report.precision,
        "recall": report.recall,
        "f1": report.f1,
        "tp": report.tp,
        "fp": report.fp,
        "tn": report.tn,
        "fn": report.fn,
        "alert_share": point["alert_share"],
        "incidents": int(best.size) if best is not None else None,
        "incident_recall": point["incident_recall"],
    }


def _importance(
    pipeline: Any,
    names: Sequence[str],
    X_holdout: FloatArray,
    y_holdout: npt.NDArray[np.bool_],
    n_repeats: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Per feature, most important first: its coefficient on the standardized feature, and
    the holdout PR-AUC lost when it is permuted (mean and std of ``n_repeats``)."""
    coefficients = np.asarray(pipeline[-1].coef_, np.float64).ravel()
    permuted = permutation_importance(
        pipeline,
        X_holdout,
        y_holdout,
        scoring="average_precision",
        n_repeats=n_repeats,
        random_state=seed,
    )
    means = np.asarray(permuted.importances_mean, np.float64)
    stds = np.asarray(permuted.importances_std, np.float64)
    return [
        {
            "feature": names[j],
            "coefficient": float(coefficients[j]),
            "permutation_pr_auc_drop": float(means[j]),
            "permutation_std": float(stds[j]),
        }
        for j in sorted(range(len(names)), key=lambda j: (-means[j], -abs(coefficients[j])))
    ]


def _fitted_parameters(pipeline: Any) -> list[FloatArray]:
    """The scaler's means and scales, the coefficients and the intercept (for the version)."""
    scaler, regression = pipeline[0], pipeline[-1]
    return [
        np.asarray(scaler.mean_, np.float64),
        np.asarray(scaler.scale_, np.float64),
        np.asarray(regression.coef_, np.float64).ravel(),
        np.asarray(regression.intercept_, np.float64),
    ]


def _operating_point(
    p: FloatArray, y: npt.NDArray[np.bool_], best: FloatArray | None, threshold: float
) -> dict[str, float | None]:
    flags = p >= threshold
    tp = int(np.sum(flags & y))
    precision = tp / int(flags.sum()) if flags.any() else 0.0
    recall = tp / int(y.sum())
    return {
        "threshold": finite_or_none(threshold),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "alert_share": float(flags.mean()),
        "incident_recall": float(np.mean(best >= threshold)) if best is not None else None,
    }


@functools.cache
def _example() -> RiskArtifact:
    """A small fitted model for the doctests: incidents follow high latency."""
    rng = np.random.default_rng(3)
    n = 2_000
    ts_s = np.arange(n) * 60.0
    incident = (np.arange(n) // 20) % 21 == 20  # one incident every 21 twenty-minute blocks
    latency = rng.normal(size=n) + 2.5 * incident
    X = np.c_[latency, rng.normal(size=n)]
    ids = [f"inc-{i // 20}" if hit else None for i, hit in enumerate(incident)]
    return fit_risk_model(["latency", "noise"], X, incident.astype(float), ts_s, ids, seed=0)
