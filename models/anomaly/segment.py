"""The steps of one segment (rows over which no learned state changes) once its rows are
read (:mod:`~models.anomaly.reading`): decide which are anomalous, run the episodes, learn,
and write the verdicts.

:class:`~models.anomaly.model.ServiceAnomalyModel` conducts them: between deciding and
writing it runs the episodes and learns the rows they keep.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.anomaly.core import ScoringCore
from models.anomaly.episodes import EpisodeMarks, EpisodeTracker
from models.anomaly.explain import top_contributions
from models.anomaly.jumps import Jumps
from models.anomaly.reading import Reading, SegmentRows
from models.anomaly.rows import row_max
from models.anomaly.scaling import RobustScaler
from models.anomaly.seasonal import SeasonalBaseline
from models.anomaly.shifts import LevelShifts, ShiftScan
from models.anomaly.verdicts import BatchVerdict, Deviations

__all__ = [
    "Decision",
    "decide",
    "floors",
    "kept_rows",
    "learn_baselines",
    "move_levels",
    "rows_to_change",
    "run_episodes",
    "write_verdicts",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def rows_to_change(
    ts: FloatArray,
    cores: Iterable[ScoringCore],
    *,
    seasonal: SeasonalBaseline | None,
    scaler: RobustScaler,
    jumps: Jumps,
) -> int:
    """Rows (of those at event times ``ts``) that can go through before some learned state
    changes (at least 1): the length of the next segment."""
    limits = [scaler.rows_to_refresh(), jumps.rows_to_refresh()]
    limits += [core.rows_to_change() for core in cores]
    if seasonal is not None:
        limits.append(seasonal.rows_to_fold(ts))
    return min(limits)


@dataclass(slots=True)
class Decision:
    """Which rows of a segment are anomalous, and which count as normal."""

    p: FloatArray
    """Each row's tail probability."""
    warming: BoolArray
    """Rows that cannot alert yet."""
    anomalous: BoolArray
    """Rare enough (``p <= alpha``) and far enough off (``min_effect``)."""
    normal: BoolArray
    """Clearly not anomalous (``p > sqrt(alpha)`` or nothing far off): an episode resolves
    after enough of these in a row."""
    flagged: int = 1
    """How many rows are anomalous (when not known: 1)."""


def decide(
    core: ScoringCore,
    channels: FloatArray,
    z: FloatArray,
    *,
    alpha: float,
    warmup_left: int,
    min_effect: float,
) -> Decision:
    """Rows whose ``channels`` (raw scores, the jumps' last) are rare under ``core``'s
    calibration and whose largest deviation (``z``, or a step) is at least ``min_effect``."""
    n = channels.shape[0]
    p = core.p_values(channels)
    # The largest |z| of each row: the ``max`` channel when there is one.
    peak = (
        channels[:, core.channels.index("max")]
        if "max" in core.channels and z.shape[1]
        else row_max(np.abs(z))
    )
    # A step counts in robust sds of single values: a step between two noisy samples
    # spreads sqrt(2) times wider.
    effect = np.maximum(peak, channels[:, -1] / math.sqrt(2.0))
    ready = not core.scorer.in_first_window and core.calibrated > 0
    big = effect >= min_effect
    if ready and warmup_left <= 0:  # the common case: no row is warming up
        warming = np.zeros(n, dtype=bool)
        anomalous = (p <= alpha) & big
        normal = (p > math.sqrt(alpha)) | ~big
    elif not ready or warmup_left >= n:
        warming = np.ones(n, dtype=bool)
        anomalous, normal = ~warming, warming.copy()
    else:
        warming = np.arange(n) < warmup_left
        anomalous = ~warming & (p <= alpha) & big
        normal = warming | (p > math.sqrt(alpha)) | ~big
    flagged = int(np.count_nonzero(anomalous))
    return Decision(p=p, warming=warming, anomalous=anomalous, normal=normal, flagged=flagged)


def run_episodes(
    episodes: EpisodeTracker,
    shifts: LevelShifts,
    decision: Decision,
    reading: Reading,
    ts: FloatArray,
    names: tuple[str, ...],
) -> tuple[EpisodeMarks, ShiftScan | None, int]:
    """Run the episodes over the segment's rows, up to and including its first level shift
    if any (the segment ends there: the baselines move); returns the marks, the shift and
    the rows done."""
    n = ts.shape[0]
    marks = episodes.run(decision.anomalous, decision.normal, ts, commit=False)
    scan = None
    if not shifts.quiet(None if marks.quiet else marks.open):
        scan = shifts.scan(
            reading.z_eff, reading.z_raw, reading.z_prev, marks.open, reading.signs,
            reading.deviations, names,
        )  # fmt: skip
    end = n if scan is None else scan.row + 1
    if end < n:
        marks = episodes.run(decision.anomalous[:end], decision.normal[:end], ts[:end])
    else:
        episodes.episode = marks.end
    return marks, scan, end


def kept_rows(
    marks: EpisodeMarks, end: int, n: int
) -> tuple[BoolArray | None, BoolArray | None, int]:
    """Of a segment's ``n`` rows, those the baselines learn (None: every row, the common
    case), the episode openings the calibration takes too (None: none), and how many those
    are; rows past ``end`` (a level shift) neither."""
    opened_count = int(np.count_nonzero(marks.opened[:end]))
    if end == n and not opened_count and not np.count_nonzero(marks.withheld):
        return None, None, 0
    keep, opened = np.zeros((2, n), dtype=bool)
    keep[:end], opened[:end] = ~marks.withheld[:end], marks.opened[:end]
    return keep, opened, opened_count


def floors(
    resolutions: Iterable[tuple[str, float]], quanta: Mapping[str, float]
) -> dict[str, float]:
    """Spreads never below a feature's resolution: the declared one, or the smallest step
    seen between its values (its quantum) if larger.

    Examples:
        >>> floors([("count", 1.0)], {"count": 0.5, "cpu": 0.25})
        {'count': 1.0, 'cpu': 0.25}
    """
    out = dict(resolutions)
    for name, step in quanta.items():
        out[name] = max(step, out.get(name, 0.0))
    return out


def learn_baselines(
    reading: Reading,
    rows: SegmentRows,
    keep: BoolArray | None,
    end: int,
    names: tuple[str, ...],
    resolutions: Iterable[tuple[str, float]],
    *,
    seasonal: SeasonalBaseline | None,
    scaler: RobustScaler,
    jumps: Jumps,
) -> None:
    """The baselines learn the kept rows (``keep``; None: every row), values; residuals for
    the scaler; steps for the jumps), and the jumps move on to row ``end - 1`` as the last
    value seen. Spread floors follow the seasonal profile's quanta when it folds."""
    values_complete, residual_complete, steps_complete = reading.complete
    if seasonal is not None:
        assert rows.buckets is not None
        folds = seasonal.folds
        if keep is None:
            seasonal.learn(reading.values, rows.ts, names, buckets=rows.buckets)
        else:
            seasonal.learn(reading.values[keep], rows.ts[keep], names, buckets=rows.buckets[keep])
        if seasonal.folds != folds:
            floor = floors(resolutions, seasonal.quanta())
            scaler.set_floors(floor)
            jumps.set_floors(floor)
    if keep is None:
        scaler.learn(reading.residual, names, complete=residual_complete)
        jumps.learn(reading.steps, names, complete=steps_complete)
    else:
        scaler.learn(reading.residual[keep], names, complete=residual_complete)
        jumps.learn(reading.steps[keep], names, complete=steps_complete)
    jumps.advance(reading.values[:end], names, complete=values_complete)


def move_levels(scan: ShiftScan, seasonal: SeasonalBaseline | None, scaler: RobustScaler) -> None:
    """Move features' baselines (the seasonal profile, or without seasons the scaler's
    window) to their new (or back to their old) level."""
    for name, delta in scan.moves:
        if seasonal is not None:
            seasonal.shift(name, delta)
        else:
            scaler.shift(name, delta)


def write_verdicts(
    out: BatchVerdict,
    row0: int,
    end: int,
    *,
    core: ScoringCore,
    channels: FloatArray,
    alpha: float,
    decision: Decision,
    marks: EpisodeMarks,
    reading: Reading,
    cols: list[int] | slice,
    scan: ShiftScan | None,
    top_k: int,
    complete: bool = False,
) -> None:
    """Write the verdicts of a segment's first ``end`` rows (batch rows ``row0`` on);
    ``complete``: no value of the rows is missing."""
    names = core.feature_names
    p, anomalous = decision.p, decision.anomalous
    sl = slice(row0, row0 + end)
    out.raw_scores[sl] = core.scorer.display_score(channels[:end])
    out.p_values[sl] = p[:end]
    out.scores[sl] = 1.0 - p[:end]
    out.thresholds[sl], out.alphas[sl] = 1.0 - alpha, alpha
    out.warming_up[sl] = decision.warming[:end]
    # Each row is written once: what is still as empty_batch left it needs no writing.
    if decision.flagged:
        out.exceeded[sl] = anomalous[:end]
        out.suppressed[sl] = anomalous[:end] & ~marks.opened[:end]
    if not marks.quiet:
        out.alerts[sl] = marks.opened[:end]
        out.resolved[sl] = marks.resolved[:end]
        out.in_episode[sl] = marks.open[:end]
        out.started_s[sl] = marks.started_s[:end]
    out.generation[sl] = core.generation
    values = reading.values[:, cols]
    out.deviations.append(
        Deviations(row0, row0 + end, names, reading.z_raw[:end, cols], values[:end])
    )
    if scan is not None:
        out.shifts[row0 + scan.row] = scan.moves
    missing = None if complete else np.isnan(reading.raw[:end, cols])
    if missing is not None and np.count_nonzero(missing):
        for i in np.flatnonzero(missing.any(axis=1)).tolist():
            out.missing[row0 + i] = tuple(f for f, m in zip(names, missing[i], strict=True) if m)
    opened = marks.opened[:end].nonzero()[0]
    if not opened.size:
        return
    z, expected = reading.z[:, cols], reading.expected[:, cols]
    z_raw = np.nan_to_num(reading.z_raw[:, cols], nan=0.0)
    for i in opened.tolist():
        out.z_at_open[row0 + i] = dict(zip(names, np.round(z_raw[i], 4).tolist(), strict=True))
        out.explanations[row0 + i] = top_contributions(
            dict(zip(names, z[i].tolist(), strict=True)),
            {f: v for f, v in zip(names, values[i].tolist(), strict=True) if v == v},
            dict(zip(names, expected[i].tolist(), strict=True)),
            k=top_k,
        )
