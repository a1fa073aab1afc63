"""Detection-quality metrics over labelled streams (pure).

Point-wise scores count every labelled point. Point-adjusted scores (the convention of the
published ASD/InterFusion results) count a whole anomalous segment as detected when any point
in it is flagged; they flatter detectors and are reported next to, never instead of,
point-wise scores. Event-wise recall counts segments caught; detection delay is the number of
points from a segment's start to its first flag. :func:`pr_curve` gives the precision-recall
curve of any scores, thinned for plotting; :func:`close_gaps` merges anomalous segments
separated by short normal runs.

Alerts, as an on-call engineer meets them, are judged in :mod:`models.alert_quality`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

__all__ = [
    "DetectionReport",
    "PRCurve",
    "anomaly_segments",
    "close_gaps",
    "evaluate_detection",
    "f1_of",
    "point_adjust",
    "pr_curve",
    "precision_recall_f1",
]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

_CURVE_POINTS = 1_001  # PR curves are thinned to about this many points


@dataclass(frozen=True, slots=True)
class DetectionReport:
    """Quality of a detector's flags and scores against labels."""

    points: int
    anomalous_points: int
    flags: int
    precision: float
    recall: float
    f1: float
    pa_precision: float
    pa_recall: float
    pa_f1: float
    segments: int
    segments_caught: int
    median_delay_points: float | None
    roc_auc: float | None
    alerts_per_1000: float

    def as_dict(self) -> dict[str, float | int | None]:
        """The report as plain values."""
        return {name: getattr(self, name) for name in self.__slots__}


def anomaly_segments(labels: BoolArray) -> list[tuple[int, int]]:
    """Half-open ``[start, end)`` runs of consecutive anomalous points.

    Examples:
        >>> anomaly_segments(np.array([0, 1, 1, 0, 1], dtype=bool))
        [(1, 3), (4, 5)]
    """
    padded = np.concatenate(([False], labels.astype(bool), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def point_adjust(flags: BoolArray, labels: BoolArray) -> BoolArray:
    """Flags with every labelled segment that has at least one flag flagged whole.

    Examples:
        >>> point_adjust(np.array([0, 0, 1, 0, 0], bool), np.array([0, 1, 1, 1, 0], bool))
        array([False,  True,  True,  True, False])
    """
    adjusted = flags.astype(bool).copy()
    for start, end in anomaly_segments(labels):
        if adjusted[start:end].any():
            adjusted[start:end] = True
    return adjusted


def precision_recall_f1(flags: BoolArray, labels: BoolArray) -> tuple[float, float, float]:
    """Point-wise precision, recall and F1 of ``flags`` against ``labels`` (0.0 when undefined).

    Examples:
        >>> precision_recall_f1(np.array([1, 1, 0], bool), np.array([1, 0, 0], bool))
        (0.5, 1.0, 0.6666666666666666)
    """
    tp = float(np.sum(flags & labels))
    precision = tp / float(flags.sum()) if flags.any() else 0.0
    recall = tp / float(labels.sum()) if labels.any() else 0.0
    return precision, recall, f1_of(precision, recall)


def f1_of(precision: float, recall: float) -> float:
    """The harmonic mean of a precision and a recall (0.0 when both are 0)."""
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def evaluate_detection(
    labels: npt.ArrayLike, flags: npt.ArrayLike, scores: npt.ArrayLike
) -> DetectionReport:
    """Score flags (alerts) and continuous scores against labels.

    Examples:
        >>> r = evaluate_detection([0, 1, 1, 0, 0, 1], [0, 0, 1, 0, 1, 0], [.1, .5, .9, .2, .6, .3])
        >>> round(r.precision, 2), round(r.recall, 2), r.segments, r.segments_caught
        (0.5, 0.33, 2, 1)
        >>> round(r.pa_recall, 2), r.median_delay_points
        (0.67, 1.0)
    """
    y = np.asarray(labels, dtype=bool)
    f = np.asarray(flags, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if not y.shape == f.shape == s.shape:
        raise ValueError("labels, flags and scores must have the same length")
    precision, recall, f1 = precision_recall_f1(f, y)
    pa_precision, pa_recall, pa_f1 = precision_recall_f1(point_adjust(f, y), y)
    segments = anomaly_segments(y)
    delays = [int(np.flatnonzero(f[start:end])[0]) for start, end in segments if f[start:end].any()]
    both_classes = bool(y.any()) and not bool(y.all())
    return DetectionReport(
        points=int(y.size),
        anomalous_points=int(y.sum()),
        flags=int(f.sum()),
        precision=precision,
        recall=recall,
        f1=f1,
        pa_precision=pa_precision,
        pa_recall=pa_recall,
        pa_f1=pa_f1,
        segments=len(segments),
        segments_caught=len(delays),
        median_delay_points=float(np.median(delays)) if delays else None,
        roc_auc=float(roc_auc_score(y, s)) if both_classes else None,
        alerts_per_1000=1000.0 * float(f.sum()) / y.size if y.size else 0.0,
    )


@dataclass(frozen=True, slots=True)
class PRCurve:
    """A precision-recall curve, thinned for plotting, with what it is read against.

    ``precision`` and ``recall`` follow scikit-learn's ``precision_recall_curve`` (recall
    falling to 0.0, thinned to about 1,000 points, the last kept); ``average_precision`` is
    the PR-AUC; ``base_rate`` the share of positives, the precision of a random ranking.
    """

    precision: FloatArray
    recall: FloatArray
    average_precision: float
    base_rate: float


def pr_curve(labels: npt.ArrayLike, scores: npt.ArrayLike) -> PRCurve | None:
    """The precision-recall curve of ``scores`` against ``labels`` (None without a positive).

    Examples:
        >>> curve = pr_curve([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.5])
        >>> curve.recall.tolist(), curve.precision.round(2).tolist(), curve.base_rate
        ([1.0, 1.0, 0.5, 0.5, 0.0], [0.5, 0.67, 0.5, 1.0, 1.0], 0.5)
        >>> round(curve.average_precision, 3), pr_curve([0, 0], [0.1, 0.2])
        (0.833, None)
    """
    y = np.asarray(labels, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if not y.any():
        return None
    precision, recall, _ = precision_recall_curve(y, s)
    step = -(-precision.size // (_CURVE_POINTS - 1))
    keep = np.unique(np.r_[np.arange(0, precision.size, step), precision.size - 1])
    return PRCurve(
        precision=np.asarray(precision[keep], dtype=np.float64),
        recall=np.asarray(recall[keep], dtype=np.float64),
        average_precision=float(average_precision_score(y, s)),
        base_rate=float(y.mean()),
    )


def close_gaps(labels: BoolArray, gap: int) -> BoolArray:
    """Labels with every run of at most ``gap`` normal points between anomalous ones filled.

    Examples:
        >>> close_gaps(np.array([1, 0, 0, 1, 0, 0, 0, 1], bool), 2).astype(int).tolist()
        [1, 1, 1, 1, 0, 0, 0, 1]
    """
    out = labels.astype(bool).copy()
    marked = np.flatnonzero(out)
    for a, b in pairwise(marked):
        if b - a - 1 <= gap:
            out[a:b] = True
    return out
