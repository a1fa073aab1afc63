"""A batch anomaly model: an isolation forest over the window's feature vectors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

from models.batch._shared import (
    FloatArray,
    InsufficientDataError,
    align,
    as_matrix,
    column_medians,
    impute,
    library_versions,
    time_range,
    version_of,
)

__all__ = ["AnomalyArtifact", "fit_anomaly_model"]

_MIN_ROWS = 16


@dataclass(frozen=True, eq=False)
class AnomalyArtifact:
    """A fitted isolation forest, its imputation and its alert threshold (picklable).

    The score is the original paper's ``s(x, n) = 2 ** (-E[h(x)] / c(n))`` (scikit-learn's
    ``-score_samples``): in (0, 1], higher = more anomalous, about 0.5 and below for
    ordinary points, towards 1 for points isolated in few splits.

    Attributes:
        names: The feature names, in the column order :meth:`score` expects.
        medians: Each feature's training median, which replaces NaN.
        threshold: Alert when ``score >= threshold``.
        alert_rate: The share of training rows at or over the threshold it was chosen for.
        contamination: What scikit-learn was given (it only sets the forest's own offset).
        seed: The forest's random state.
        rows: Training rows.
        train_range: First and last event time of the training rows (None if not given).
        score_quantiles: Training scores' 50th, 90th, 99th and 99.9th percentiles.
        version: Deterministic: the forest's splits, medians, threshold and data range.
        libraries: Python, numpy and scikit-learn versions it was fitted with.

    Examples:
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> model = fit_anomaly_model(["a", "b"], X, seed=0, ts_s=np.arange(200.0) + 1.8e9)
        >>> model.version[:25], model.metadata()["rows"]
        ('anomaly-20270115T080319Z-', 200)
        >>> bool(model.alerts([[9.0, 9.0]])[0])
        True
    """

    kind: ClassVar[str] = "anomaly"
    names: tuple[str, ...]
    medians: FloatArray
    threshold: float
    alert_rate: float
    contamination: float | str
    seed: int
    rows: int
    train_range: dict[str, float] | None
    score_quantiles: dict[str, float]
    version: str
    libraries: dict[str, str]
    _forest: Any = field(repr=False)  # sklearn's IsolationForest, used only by score()

    def score(self, X: npt.ArrayLike, names: Sequence[str] | None = None) -> FloatArray:
        """Anomaly scores of the rows of ``X`` (columns :attr:`names`, or ``names`` aligned
        to them: missing features are imputed)."""
        matrix = align(names if names is not None else self.names, X, self.names)
        if matrix.shape[0] == 0:
            return np.empty(0)
        return -np.asarray(self._forest.score_samples(impute(matrix, self.medians)), np.float64)

    def alerts(self, X: npt.ArrayLike, names: Sequence[str] | None = None) -> npt.NDArray[np.bool_]:
        """Which rows reach the threshold."""
        return self.score(X, names) >= self.threshold

    def metadata(self) -> dict[str, Any]:
        """What the artifact is, JSON-ready."""
        return {
            "kind": self.kind,
            "version": self.version,
            "features": list(self.names),
            "rows": self.rows,
            "train_range": self.train_range,
            "medians": dict(zip(self.names, self.medians.tolist(), strict=True)),
            "threshold": self.threshold,
            "alert_rate": self.alert_rate,
            "contamination": self.contamination,
            "seed": self.seed,
            "n_estimators": int(self._forest.n_estimators),
            "max_samples": int(self._forest.max_samples_),
            "score_quantiles": dict(self.score_quantiles),
            "libraries": dict(self.libraries),
        }


def fit_anomaly_model(
    names: Sequence[str],
    X: npt.ArrayLike,
    *,
    seed: int,
    contamination: float | Literal["auto"] = "auto",
    alert_rate: float = 0.001,
    ts_s: npt.ArrayLike | None = None,
    n_estimators: int = 100,
    max_samples: int = 256,
) -> AnomalyArtifact:
    """Fit an isolation forest to the rows of ``X`` (NaN: the column's training median).

    The threshold is the "higher" ``1 - rate`` quantile of the training scores (an observed
    score, so about ``rate`` of training rows reach it), where ``rate`` is
    ``contamination`` when it is a float (both mean the expected share of anomalies) and
    ``alert_rate`` otherwise.

    Args:
        names: The columns of ``X``.
        X: Training rows, [n, len(names)].
        seed: Random state of the forest.
        contamination: Passed to scikit-learn; a float also sets the alert rate.
        alert_rate: The share of training rows that should reach the threshold.
        ts_s: The rows' event times, for the data range and the version.
        n_estimators: Trees.
        max_samples: Rows drawn per tree (at most n).

    Raises:
        InsufficientDataError: Fewer than 16 rows.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(500, 2))
        >>> model = fit_anomaly_model(["a", "b"], X, seed=1, alert_rate=0.01)
        >>> float(np.mean(model.score(X) >= model.threshold))
        0.01
        >>> model.score([[0.0, 0.0], [6.0, 6.0]]).round(2).tolist()
        [0.4, 0.74]
        >>> model.score([[6.0]], names=["b"]).round(2).tolist()  # "a" missing: its median
        [0.65]
    """
    names, matrix = as_matrix(names, X)
    rate = contamination if isinstance(contamination, float) else alert_rate
    if not 0.0 < rate < 1.0:
        raise ValueError(f"the alert rate must be in (0, 1), got {rate}")
    if matrix.shape[0] < _MIN_ROWS:
        raise InsufficientDataError(f"{matrix.shape[0]} rows: at least {_MIN_ROWS} are needed")
    times = np.asarray(ts_s if ts_s is not None else [], dtype=np.float64).ravel()
    if times.size and times.size != matrix.shape[0]:
        raise ValueError("ts_s and X must have the same number of rows")
    medians = column_medians(matrix)
    forest = IsolationForest(
        n_estimators=n_estimators,
        max_samples=min(max_samples, matrix.shape[0]),
        contamination=contamination,
        random_state=seed,
    )
    filled = impute(matrix, medians)
    forest.fit(filled)
    scores = -np.asarray(forest.score_samples(filled), np.float64)
    index = math.ceil((scores.size - 1) * (1.0 - rate))
    threshold = float(np.partition(scores, index)[index])
    quantiles = np.quantile(scores, [0.5, 0.9, 0.99, 0.999])
    data_range = time_range(times)
    splits = [
        array
        for tree in forest.estimators_
        for array in (tree.tree_.feature, tree.tree_.threshold, tree.tree_.children_left)
    ]
    version = version_of(
        "anomaly",
        [names, medians, threshold, data_range, matrix.shape[0], *splits],
        data_range["last_ts_s"] if data_range else None,
    )
    return AnomalyArtifact(
        names=names,
        medians=medians,
        threshold=threshold,
        alert_rate=rate,
        contamination=contamination,
        seed=seed,
        rows=int(matrix.shape[0]),
        train_range=data_range,
        score_quantiles=dict(zip(("p50", "p90", "p99", "p999"), quantiles.tolist(), strict=True)),
        version=version,
        libraries=library_versions(),
        _forest=forest,
    )
