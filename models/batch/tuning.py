"""Alert thresholds tuned on a holdout, by the incident-risk strategies."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_curve

from models.batch._shared import SMALLEST, FloatArray

__all__ = ["incident_best", "tune_thresholds"]


def incident_best(
    probabilities: FloatArray, labels: FloatArray, incident_ids: Sequence[str | None] | None
) -> FloatArray | None:
    """Each incident's highest probability over its positive vectors (a positive without an
    id is an incident of its own); None when no positive carries an incident id.

    Examples:
        >>> incident_best(np.array([0.2, 0.7, 0.4, 0.9]), np.array([1.0, 1.0, 1.0, 0.0]),
        ...               ["i1", "i1", None, None]).tolist()
        [0.7, 0.4]
    """
    positives = np.flatnonzero(labels > 0.5)
    if incident_ids is None or all(incident_ids[i] is None for i in positives.tolist()):
        return None
    best: dict[str | int, float] = {}
    for i in positives.tolist():
        incident_id = incident_ids[i]
        key: str | int = incident_id if incident_id is not None else i
        best[key] = max(best.get(key, -math.inf), float(probabilities[i]))
    return np.fromiter(best.values(), np.float64, count=len(best))


def tune_thresholds(
    probabilities: npt.ArrayLike,
    labels: npt.ArrayLike,
    incident_best: FloatArray | None,
    *,
    target_recall: float,
    alert_budget: float,
) -> dict[str, float]:
    """The threshold of each strategy (alert when ``probability >= threshold``), never 0.

    - ``max_f1``: the best F1 over the vectors.
    - ``recall_at_least``: the highest threshold catching ``target_recall`` of the
      incidents (one caught when its best vector reaches it), or of the positive vectors
      when ``incident_best`` is None.
    - ``alert_budget``: the "higher" ``1 - alert_budget`` quantile of the probabilities (an
      observed value, so about that share reaches it).

    Examples:
        >>> t = tune_thresholds([0.1, 0.2, 0.7, 0.3, 0.8], [0, 0, 1, 0, 1], None,
        ...                     target_recall=0.5, alert_budget=0.2)
        >>> t
        {'max_f1': 0.7, 'recall_at_least': 0.8, 'alert_budget': 0.8}
    """
    p = np.asarray(probabilities, np.float64).ravel()
    y = np.asarray(labels, np.float64).ravel() > 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-300)
    max_f1 = float(thresholds[int(np.argmax(f1))])
    if incident_best is not None:
        ranked = np.sort(incident_best)[::-1]
        needed = math.ceil(target_recall * ranked.size - 1e-9)
        at_least = float(ranked[max(needed, 1) - 1])
    else:  # recall falls as the threshold rises: the last index still reaching the target
        at_least = float(thresholds[int(np.flatnonzero(recall >= target_recall - 1e-12)[-1])])
    index = math.ceil((p.size - 1) * (1.0 - alert_budget))
    budget = float(np.partition(p, index)[index])
    return {
        "max_f1": max(max_f1, SMALLEST),
        "recall_at_least": max(at_least, SMALLEST),
        "alert_budget": max(budget, SMALLEST),
    }
