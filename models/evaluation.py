"""Detection-quality metrics over labelled streams (pure).

Point-wise scores count every labelled point. Point-adjusted scores (the convention of the
published ASD/InterFusion results) count a whole anomalous segment as detected when any point
in it is flagged; they flatter detectors and are reported next to, never instead of,
point-wise scores. Event-wise recall counts segments caught; detection delay is the number of
points from a segment's start to its first flag. :func:`pr_curve` gives the precision-recall
curve of any scores, thinned for plotting.

Alerts, as an on-call engineer meets them, are judged by :func:`alert_quality`: an alert
covers a span of samples (one sample, or an episode from its firing to its resolved alert,
:func:`alert_spans`), and counts that add up over services give point-wise and episode-wise
precision, recall and F1, alerts per caught segment, false alerts per service-day and delay.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from itertools import pairwise

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

__all__ = [
    "AlertQuality",
    "DetectionReport",
    "PRCurve",
    "Span",
    "alert_quality",
    "alert_spans",
    "anomaly_segments",
    "close_gaps",
    "evaluate_detection",
    "point_adjust",
    "pr_curve",
    "precision_recall_f1",
    "segment_hits",
    "span_flags",
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
    return precision, recall, _f1(precision, recall)


def _f1(precision: float, recall: float) -> float:
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


Span = tuple[int, int]
"""Inclusive ``(first, last)`` sample indices an alert covers; ``first`` is where it fired."""


def alert_spans(alerts: Iterable[tuple[int, str | None, str | None]], points: int) -> list[Span]:
    """The spans of the firing alerts among ``(sample index, status, episode_id)`` triples.

    A firing alert (status ``"firing"``, or None from detectors without episodes) that names
    an episode spans up to the sample before the ``resolved`` alert of that episode, or to
    the last of ``points`` samples if none comes; one without an episode covers its own
    sample. Resolved alerts open nothing.

    Examples:
        >>> alert_spans([(2, None, None), (5, "firing", "e1"), (9, "resolved", "e1"),
        ...              (12, "firing", "e2")], 15)
        [(2, 2), (5, 8), (12, 14)]
    """
    ordered = sorted(alerts, key=lambda a: a[0])
    resolved: dict[str, list[int]] = {}
    for i, status, episode in ordered:
        if status == "resolved" and episode is not None:
            resolved.setdefault(episode, []).append(i)
    spans = []
    for i, status, episode in ordered:
        if status not in (None, "firing"):
            continue
        ends = [r for r in resolved.get(episode, []) if r >= i] if episode is not None else [i + 1]
        spans.append((i, max(i, min(ends) - 1 if ends else points - 1)))
    return spans


def span_flags(spans: Iterable[Span], points: int) -> BoolArray:
    """The points covered by any span, spans clipped to ``[0, points)``.

    Examples:
        >>> span_flags([(1, 2), (-3, 0), (4, 9)], 6).astype(int).tolist()
        [1, 1, 1, 0, 1, 1]
    """
    edges = np.zeros(points + 1, dtype=np.int64)
    for first, last in spans:
        a, b = max(first, 0), min(last, points - 1)
        if a <= b:
            edges[a] += 1
            edges[b + 1] -= 1
    return np.asarray(np.cumsum(edges[:points]) > 0)


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


def segment_hits(
    segments: Sequence[Span], firing: npt.ArrayLike, *, tolerance: int = 3
) -> list[tuple[int, int | None]]:
    """Per segment, the firing alerts in ``[first, last + tolerance]`` and the earliest one's
    delay in samples from ``first`` (None when there is none).

    Examples:
        >>> segment_hits([(2, 3), (10, 10)], [1, 4, 6, 7, 20])
        [(2, 2), (0, None)]
    """
    at = np.sort(np.asarray(firing, dtype=np.int64))
    out: list[tuple[int, int | None]] = []
    for first, last in segments:
        a = int(np.searchsorted(at, first, "left"))
        b = int(np.searchsorted(at, last + tolerance, "right"))
        out.append((b - a, int(at[a]) - first if b > a else None))
    return out


@dataclass(frozen=True, slots=True)
class AlertQuality:
    """Alerts against labelled segments, as counts that add up over services.

    Point-wise, a point is flagged when an alert's span covers it. Episode-wise, a segment (a
    run of anomalous points) is caught when a firing alert falls in its window
    ``[start, end + tolerance]``; a firing alert is true when it falls in some segment's
    window, false otherwise. ``alerts_in_caught`` counts the alerts in caught segments'
    windows; ``delays`` are samples from each caught segment's start to its first alert.
    """

    points: int
    anomalous: int
    flagged: int
    flagged_anomalous: int
    segments: int
    caught: int
    alerts: int
    true_alerts: int
    alerts_in_caught: int
    service_days: float
    delays: tuple[int, ...]

    def __add__(self, other: AlertQuality) -> AlertQuality:
        return AlertQuality(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(AlertQuality))
        )

    @property
    def precision(self) -> float:
        """Point-wise precision (0.0 without a flag)."""
        return self.flagged_anomalous / self.flagged if self.flagged else 0.0

    @property
    def recall(self) -> float:
        """Point-wise recall (0.0 without an anomalous point)."""
        return self.flagged_anomalous / self.anomalous if self.anomalous else 0.0

    @property
    def f1(self) -> float:
        """Point-wise F1."""
        return _f1(self.precision, self.recall)

    @property
    def episode_precision(self) -> float:
        """Share of firing alerts inside some segment's window (0.0 without an alert)."""
        return self.true_alerts / self.alerts if self.alerts else 0.0

    @property
    def episode_recall(self) -> float:
        """Share of segments caught (0.0 without a segment)."""
        return self.caught / self.segments if self.segments else 0.0

    @property
    def episode_f1(self) -> float:
        """Episode-wise F1."""
        return _f1(self.episode_precision, self.episode_recall)

    @property
    def false_alerts(self) -> int:
        """Firing alerts outside every segment's window."""
        return self.alerts - self.true_alerts

    @property
    def false_per_service_day(self) -> float | None:
        """False alerts per service-day of data."""
        return self.false_alerts / self.service_days if self.service_days else None

    @property
    def alerts_per_caught(self) -> float | None:
        """Alerts per caught segment (None when none was caught)."""
        return self.alerts_in_caught / self.caught if self.caught else None

    @property
    def median_delay(self) -> float | None:
        """Median samples from a caught segment's start to its first alert."""
        return float(statistics.median(self.delays)) if self.delays else None

    def as_dict(self) -> dict[str, float | int | None]:
        """Counts and figures as plain values (delays as their median)."""
        counts = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "delays"}
        derived = (
            "precision recall f1 episode_precision episode_recall episode_f1 false_alerts "
            "false_per_service_day alerts_per_caught median_delay"
        )
        return {**counts, **{name: getattr(self, name) for name in derived.split()}}


def alert_quality(
    labels: npt.ArrayLike, spans: Sequence[Span], *, sample_s: float, tolerance: int = 3
) -> AlertQuality:
    """One service's alert spans against its labels, one sample every ``sample_s``.

    A span that began before the first labelled point (``first < 0``: an alert of a warm-up
    part that is not scored) flags the points it covers but is not a firing alert here.

    Examples:
        >>> q = alert_quality([0, 1, 1, 0, 0, 0, 0, 0, 1, 0], [(2, 2), (3, 3), (6, 6)],
        ...                   sample_s=43_200)
        >>> q.caught, q.true_alerts, q.false_alerts, q.alerts_per_caught, q.median_delay
        (1, 2, 1, 2.0, 1.0)
        >>> round(q.precision, 3), round(q.episode_f1, 3), q.false_per_service_day
        (0.333, 0.571, 0.2)
    """
    y = np.asarray(labels, dtype=bool)
    n = int(y.size)
    flags = span_flags(spans, n)
    firing = np.array([first for first, _ in spans if 0 <= first < n], dtype=np.int64)
    segments = [(a, b - 1) for a, b in anomaly_segments(y)]
    hits = segment_hits(segments, firing, tolerance=tolerance)
    windows = span_flags([(a, b + tolerance) for a, b in segments], n)
    return AlertQuality(
        points=n,
        anomalous=int(y.sum()),
        flagged=int(flags.sum()),
        flagged_anomalous=int((flags & y).sum()),
        segments=len(segments),
        caught=sum(delay is not None for _, delay in hits),
        alerts=int(firing.size),
        true_alerts=int(windows[firing].sum()),
        alerts_in_caught=sum(count for count, delay in hits if delay is not None),
        service_days=n * sample_s / 86_400.0,
        delays=tuple(delay for _, delay in hits if delay is not None),
    )
