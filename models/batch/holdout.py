"""A risk model's holdout, thinned to what its timeline figure needs, and that figure's marks.

The holdout (the newest labelled rows, see :func:`~models.batch.fit_risk_model`) can hold
hundreds of thousands of rows, and every detector loads the artifact it travels in. So the
artifact keeps a :class:`HoldoutSample`: every positive row and at most ``max_negatives``
negatives, evenly spaced in time, as float32. :func:`timeline_marks` derives what the figure
marks (alerts, one span per incident) from it; :mod:`stream.offline.holdout_figures` draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from models.batch._shared import BoolArray, FloatArray

__all__ = [
    "HoldoutSample",
    "IncidentMark",
    "TimelineMarks",
    "thin_holdout",
    "timeline_marks",
]

MAX_NEGATIVES = 2_000
"""Negatives kept by default: enough for the figure's cloud, 26 kB (13 bytes a row)."""


@dataclass(frozen=True, eq=False)
class HoldoutSample:
    """Thinned holdout rows of a risk model, in event-time order (picklable, small).

    Attributes:
        origin_s: Event time of the holdout's first row; ``offset_s`` counts from it.
        offset_s: Per kept row, seconds after ``origin_s`` (float32: to ~8 ms over a day,
            0.25 s over a month; ample for a figure).
        probability: Per kept row, the model's probability (float32, rounded away from the
            model's threshold, so ``probability >= threshold`` is what it was in float64).
        positive: Per kept row, its label.
        incident: Per kept row, a code per distinct incident id (in order of first
            appearance), -1 for negatives and for positives without an id.
        rows: Rows in the holdout.
        negatives: Negatives in the holdout (kept: ``(~positive).sum()``).

    Examples:
        >>> sample = thin_holdout([5.0, 6.0, 7.0, 8.0], [0.1, 0.9, 0.2, 0.3], [0, 1, 0, 0],
        ...                       [None, "i1", None, None], threshold=0.5, max_negatives=2)
        >>> sample.offset_s.tolist(), sample.positive.tolist(), sample.incident.tolist()
        ([0.0, 1.0, 2.0], [False, True, False], [-1, 0, -1])
        >>> sample.rows, sample.negatives, sample.probability.dtype.name
        (4, 3, 'float32')
    """

    origin_s: float
    offset_s: npt.NDArray[np.float32]
    probability: npt.NDArray[np.float32]
    positive: BoolArray
    incident: npt.NDArray[np.int32]
    rows: int
    negatives: int


def thin_holdout(
    ts_s: npt.ArrayLike,
    probabilities: npt.ArrayLike,
    labels: npt.ArrayLike,
    incident_ids: Sequence[str | None] | None,
    threshold: float,
    *,
    max_negatives: int = MAX_NEGATIVES,
) -> HoldoutSample:
    """Keep every positive row and ``max_negatives`` negatives evenly spaced in time order
    (deterministic: the same holdout gives the same sample).

    Args:
        ts_s: The holdout rows' event times, ascending.
        probabilities: The model's probability per row.
        labels: Per row, truthy when positive.
        incident_ids: Per row, the incident that made it positive (else None).
        threshold: The model's threshold: float32 rounding never moves a row across it.
        max_negatives: The most negatives kept.
    """
    times = np.asarray(ts_s, np.float64).ravel()
    p = np.asarray(probabilities, np.float64).ravel()
    positive = np.asarray(labels).ravel().astype(bool)
    if not times.size == p.size == positive.size:
        raise ValueError("ts_s, probabilities and labels must have the same length")
    if incident_ids is not None and len(incident_ids) != times.size:
        raise ValueError("incident_ids must have one entry per row")
    if max_negatives < 0:
        raise ValueError(f"max_negatives must be >= 0, got {max_negatives}")
    negatives = np.flatnonzero(~positive)
    kept = min(max_negatives, negatives.size)
    # Integer spacing: strictly increasing, so no negative is picked twice.
    chosen = negatives[(np.arange(kept) * negatives.size) // max(kept, 1)]
    rows = np.sort(np.concatenate([np.flatnonzero(positive), chosen]))
    codes: dict[str, int] = {}
    incident = np.full(rows.size, -1, np.int32)
    if incident_ids is not None:
        for j, i in enumerate(rows.tolist()):
            incident_id = incident_ids[i]
            if positive[i] and incident_id is not None:
                incident[j] = codes.setdefault(incident_id, len(codes))
    origin_s = float(times[0]) if times.size else 0.0
    return HoldoutSample(
        origin_s=origin_s,
        offset_s=(times[rows] - origin_s).astype(np.float32),
        probability=_float32_keeping_side(p[rows], threshold),
        positive=positive[rows],
        incident=incident,
        rows=int(times.size),
        negatives=int(negatives.size),
    )


def _float32_keeping_side(p: FloatArray, threshold: float) -> npt.NDArray[np.float32]:
    """``p`` as float32, each value rounded towards its own side of ``threshold``.

    Thresholds are tuned to observed probabilities: the row at the threshold would otherwise
    round below it about half the time, and lose its alert mark."""
    out = p.astype(np.float32)
    alerting = p >= threshold
    up = alerting & (out.astype(np.float64) < threshold)
    down = ~alerting & (out.astype(np.float64) >= threshold)
    out[up] = np.nextafter(out[up], np.float32(np.inf))
    out[down] = np.nextafter(out[down], np.float32(-np.inf))
    return out


class IncidentMark(NamedTuple):
    """One incident's positive rows in a holdout: first and last (seconds after the origin),
    and whether any of them reached the threshold (the incident was warned of)."""

    first_s: float
    last_s: float
    caught: bool


@dataclass(frozen=True)
class TimelineMarks:
    """What the timeline figure marks, from a :class:`HoldoutSample`.

    Attributes:
        alert: Per sample row: ``probability >= threshold``.
        incidents: One per incident id, by first positive row.
    """

    alert: BoolArray
    incidents: list[IncidentMark]


def timeline_marks(sample: HoldoutSample, threshold: float) -> TimelineMarks:
    """The alerts and incident spans drawn over ``sample`` at ``threshold``.

    Examples:
        >>> sample = thin_holdout([0.0, 60.0, 120.0, 180.0, 240.0], [0.2, 0.6, 0.3, 0.1, 0.4],
        ...                       [0, 1, 1, 0, 1], [None, "a", "a", None, "b"], threshold=0.5)
        >>> marks = timeline_marks(sample, 0.5)
        >>> marks.alert.tolist()
        [False, True, False, False, False]
        >>> [tuple(m) for m in marks.incidents]
        [(60.0, 120.0, True), (240.0, 240.0, False)]
    """
    p = sample.probability.astype(np.float64)
    alert = p >= threshold
    rows = np.flatnonzero(sample.incident >= 0)
    order = rows[np.argsort(sample.incident[rows], kind="stable")]
    if order.size == 0:
        return TimelineMarks(alert, [])
    _, starts = np.unique(sample.incident[order], return_index=True)
    offsets = sample.offset_s[order].astype(np.float64)
    first = np.minimum.reduceat(offsets, starts)
    last = np.maximum.reduceat(offsets, starts)
    caught = np.logical_or.reduceat(alert[order], starts)
    marks = [
        IncidentMark(float(a), float(b), bool(c))
        for a, b, c in zip(first, last, caught, strict=True)
    ]
    return TimelineMarks(alert, sorted(marks))
