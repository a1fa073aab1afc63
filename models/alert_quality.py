"""Alert quality: alerts, as an on-call engineer meets them, against labelled segments (pure).

An alert covers a span of samples (one sample, or an episode from its firing to its resolved
alert, :func:`alert_spans`); :func:`alert_quality` turns one service's spans and labels into
counts that add up over services (:class:`AlertQuality`): point-wise and episode-wise
precision, recall and F1, point-adjusted F1, alerts per caught segment, false alerts per
service-day and delay.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from models.evaluation import anomaly_segments, f1_of, point_adjust

__all__ = ["AlertQuality", "Span", "alert_quality", "alert_spans", "segment_hits", "span_flags"]

BoolArray = npt.NDArray[np.bool_]


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

    Point-wise, a point is flagged when an alert's span covers it; point-adjusted (the
    convention of published ASD results, :func:`models.evaluation.point_adjust`), a segment
    with a flagged point counts as flagged whole. Episode-wise, a segment (a run of
    anomalous points) is caught when a firing alert falls in its window
    ``[start, end + tolerance]``; a firing alert is true when it falls in some segment's
    window, false otherwise. ``alerts_in_caught`` counts the alerts in caught segments'
    windows; ``delays`` are samples from each caught segment's start to its first alert.
    """

    points: int
    anomalous: int
    flagged: int
    flagged_anomalous: int
    adjusted_flagged: int
    """Flagged points once each segment with a flag is flagged whole."""
    adjusted_anomalous: int
    """Anomalous points of segments with a flag."""
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
        return f1_of(self.precision, self.recall)

    @property
    def adjusted_f1(self) -> float:
        """Point-adjusted F1, of the precision and recall of the flags with every segment that
        has one flagged whole: it flatters detectors, and is reported next to point-wise F1."""
        flagged, hit = self.adjusted_flagged, self.adjusted_anomalous
        return f1_of(
            hit / flagged if flagged else 0.0, hit / self.anomalous if self.anomalous else 0.0
        )

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
        return f1_of(self.episode_precision, self.episode_recall)

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
            "precision recall f1 adjusted_f1 episode_precision episode_recall episode_f1 "
            "false_alerts false_per_service_day alerts_per_caught median_delay"
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
    adjusted = point_adjust(flags, y)
    firing = np.array([first for first, _ in spans if 0 <= first < n], dtype=np.int64)
    segments = [(a, b - 1) for a, b in anomaly_segments(y)]
    hits = segment_hits(segments, firing, tolerance=tolerance)
    windows = span_flags([(a, b + tolerance) for a, b in segments], n)
    return AlertQuality(
        points=n,
        anomalous=int(y.sum()),
        flagged=int(flags.sum()),
        flagged_anomalous=int((flags & y).sum()),
        adjusted_flagged=int(adjusted.sum()),
        adjusted_anomalous=int((adjusted & y).sum()),
        segments=len(segments),
        caught=sum(delay is not None for _, delay in hits),
        alerts=int(firing.size),
        true_alerts=int(windows[firing].sum()),
        alerts_in_caught=sum(count for count, delay in hits if delay is not None),
        service_days=n * sample_s / 86_400.0,
        delays=tuple(delay for _, delay in hits if delay is not None),
    )
