"""A batch incident-risk model: logistic regression fitted on the past, tuned on what followed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from models.batch._shared import (
    FloatArray,
    align,
    impute,
)
from models.batch.holdout import HoldoutSample
from models.incident.config import Strategy
from models.incident.feature_row import FeatureRow

__all__ = ["RiskArtifact", "positive_proba"]

RecallUnit = Literal["incidents", "vectors"]


@dataclass(frozen=True, eq=False)
class RiskArtifact:
    """A fitted incident-risk model with its holdout evaluation (picklable).

    Attributes:
        names: The feature names, in the column order :meth:`predict_proba` expects.
        medians: Each feature's training median, which replaces NaN.
        strategy: The strategy whose threshold is in force.
        threshold: Alert when ``probability >= threshold`` (``thresholds[strategy]``).
        thresholds: Every strategy's threshold, all tuned on the holdout.
        recall_unit: What ``recall_at_least`` counted: ``incidents`` or ``vectors``.
        metrics: Holdout quality at the threshold (see :func:`fit_risk_model`).
        operating_points: Per strategy: threshold, precision, recall, F1, alert share
            (and incident recall) on the holdout.
        importance: Per feature, most important first: the coefficient on the standardized
            feature, and the mean and std of the holdout PR-AUC lost when it is permuted.
        train_range: First and last event time of the training rows.
        holdout_range: First and last event time of the holdout rows.
        rows: ``train``, ``holdout`` and ``purged`` (training rows dropped before the holdout).
        settings: The arguments it was fitted with.
        version: Deterministic: the fitted parameters, thresholds and data ranges.
        libraries: Python, numpy and scikit-learn versions it was fitted with.
        holdout_sample: The holdout's probabilities, thinned (every positive, some
            negatives), for its timeline figure (:mod:`stream.offline.holdout_figures`); None in an
            artifact pickled before it was kept.

    Examples:
        >>> from models.batch.risk_fit import _example
        >>> model = _example()
        >>> model.version[:21], model.strategy, model.metadata()["features"]
        ('risk-19700102T091900Z', 'recall_at_least', ['latency', 'noise'])
        >>> model.alerts([[6.0, 0.0], [-1.0, 0.0]]).tolist()
        [True, False]
    """

    kind: ClassVar[str] = "risk"
    names: tuple[str, ...]
    medians: FloatArray
    strategy: Strategy
    threshold: float
    thresholds: dict[str, float]
    recall_unit: RecallUnit
    metrics: dict[str, Any]
    operating_points: dict[str, dict[str, float | None]]
    importance: list[dict[str, Any]]
    train_range: dict[str, float]
    holdout_range: dict[str, float]
    rows: dict[str, int]
    settings: dict[str, Any]
    version: str
    libraries: dict[str, str]
    _pipeline: Any = field(repr=False)  # sklearn's scaler + logistic regression
    _curve: tuple[FloatArray, FloatArray] = field(repr=False)  # holdout precision, recall
    # With a default, a class attribute: older pickles, which lack it, unpickle with None.
    holdout_sample: HoldoutSample | None = field(default=None, repr=False)

    def predict_proba(self, X: npt.ArrayLike, names: Sequence[str] | None = None) -> FloatArray:
        """P(incident within the horizon) for each row of ``X`` (columns :attr:`names`, or
        ``names`` aligned to them: missing features are imputed)."""
        matrix = align(names if names is not None else self.names, X, self.names)
        if matrix.shape[0] == 0:
            return np.empty(0)
        return positive_proba(self._pipeline, impute(matrix, self.medians))

    def predict_mappings(self, vectors: Sequence[Mapping[str, float]]) -> FloatArray:
        """:meth:`predict_proba` of feature mappings: one matrix when they all hold their
        values as a row under the same names (the detector's vectors), else by name."""
        if not vectors:
            return np.empty(0)
        first = vectors[0]
        if isinstance(first, FeatureRow) and all(
            isinstance(v, FeatureRow) and v.names == first.names for v in vectors
        ):
            rows = np.array([v.row for v in vectors if isinstance(v, FeatureRow)], np.float64)
            return self.predict_proba(rows, first.names)
        matrix = [[v.get(n, math.nan) for n in self.names] for v in vectors]
        return self.predict_proba(np.array(matrix, dtype=np.float64))

    def score(self, X: npt.ArrayLike, names: Sequence[str] | None = None) -> FloatArray:
        """:meth:`predict_proba` (the name every artifact scores by)."""
        return self.predict_proba(X, names)

    def alerts(self, X: npt.ArrayLike, names: Sequence[str] | None = None) -> npt.NDArray[np.bool_]:
        """Which rows reach the threshold."""
        return self.predict_proba(X, names) >= self.threshold

    def metadata(self) -> dict[str, Any]:
        """What the artifact is and how it did on its holdout, JSON-ready."""
        return {
            "kind": self.kind,
            "version": self.version,
            "features": list(self.names),
            "rows": dict(self.rows),
            "train_range": dict(self.train_range),
            "holdout_range": dict(self.holdout_range),
            "medians": dict(zip(self.names, self.medians.tolist(), strict=True)),
            "strategy": self.strategy,
            "threshold": self.threshold,
            "thresholds": dict(self.thresholds),
            "recall_unit": self.recall_unit,
            "metrics": dict(self.metrics),
            "operating_points": {k: dict(v) for k, v in self.operating_points.items()},
            "importance": [dict(row) for row in self.importance],
            "settings": dict(self.settings),
            "libraries": dict(self.libraries),
        }

    def contributions(
        self, values: Mapping[str, float], k: int = 5
    ) -> list[tuple[str, float, float, float, float]]:
        """The ``k`` features with the largest ``|coefficient x standardized value|`` for one
        vector: (name, value, standardized, contribution, training mean), largest first. A
        missing or NaN value counts at the training median.

        Examples:
            >>> from models.batch.risk_fit import _example
            >>> [c[0] for c in _example().contributions({"latency": 6.0, "noise": 0.0}, k=1)]
            ['latency']
        """
        scaler, model = self._pipeline[0], self._pipeline[-1]
        out = []
        for j, name in enumerate(self.names):
            value = float(values.get(name, math.nan))
            if not math.isfinite(value):
                value = float(self.medians[j])
            standardized = (value - float(scaler.mean_[j])) / float(scaler.scale_[j])
            contribution = float(model.coef_[0][j]) * standardized
            out.append((name, value, standardized, contribution, float(scaler.mean_[j])))
        out.sort(key=lambda c: (-abs(c[3]), c[0]))
        return out[:k]

    @property
    def pr_curve(self) -> tuple[FloatArray, FloatArray]:
        """The holdout's precision-recall curve: precision, recall."""
        return self._curve


def positive_proba(pipeline: Any, X: FloatArray) -> FloatArray:
    """The fitted pipeline's probability of the positive class for each row of ``X``."""
    return np.asarray(pipeline.predict_proba(X)[:, 1], np.float64)
