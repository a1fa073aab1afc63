"""The steps of one segment (rows over which no learned state changes): read the rows
against the baselines, decide which are anomalous, and write the verdicts.

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
from models.anomaly.counters import CounterRates
from models.anomaly.episodes import EpisodeMarks, EpisodeTracker
from models.anomaly.explain import top_contributions
from models.anomaly.jumps import Jumps
from models.anomaly.rows import directional, row_max
from models.anomaly.scaling import RobustScaler
from models.anomaly.seasonal import SeasonalBaseline
from models.anomaly.shifts import LevelShifts, ShiftScan
from models.anomaly.verdicts import BatchVerdict, Deviations

__all__ = [
    "Decision",
    "Reading",
    "decide",
    "floors",
    "learn_baselines",
    "move_levels",
    "read_rows",
    "rows_to_change",
    "run_episodes",
    "write_verdicts",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Reading:
    """A segment's rows against the baselines, rows by features (all of the model's
    features, a candidate's included)."""

    raw: FloatArray
    """The values as they came (NaN where missing)."""
    values: FloatArray
    """As scored: monotone counters as rates."""
    residual: FloatArray
    """``values`` minus their seasonal baselines (``values`` without seasons)."""
    expected: FloatArray
    """Each value's expected value: seasonal baseline plus the residuals' median."""
    z_raw: FloatArray
    """Robust z from the current level."""
    z_eff: FloatArray
    """Robust z from the nearer of the current and the remembered previous level."""
    z_prev: FloatArray | None
    """Robust z from the previous level (NaN where none), None when none is remembered."""
    steps: FloatArray
    """Each value minus the feature's previous one."""
    signs: FloatArray
    """The direction that alerts, per feature: +1 rises, -1 drops, 0 both."""
    z: FloatArray
    """``z_eff`` in the directions that alert (0 against them)."""
    jumps: FloatArray
    """Steps in robust sds of the feature's steps, where they land off the expected value on
    their own side and in a direction that alerts (0 elsewhere)."""
    deviations: FloatArray
    """Each value's distance from its expected value, in the metric's units."""


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


def read_rows(
    raw: FloatArray,
    ts: FloatArray,
    names: tuple[str, ...],
    signs: FloatArray,
    *,
    counters: CounterRates,
    seasonal: SeasonalBaseline | None,
    scaler: RobustScaler,
    jumps: Jumps,
    shifts: LevelShifts,
) -> Reading:
    """Read rows ``raw`` (over ``names``, at event times ``ts``) against the baselines as
    they stand; nothing is learned."""
    values = counters.transform(raw, ts, names, commit=False)
    baselines = seasonal.baselines(ts, names) if seasonal is not None else None
    residual = values if baselines is None else values - baselines
    z_raw, medians = scaler.scale(residual, names)
    steps = jumps.steps(values, names)
    jump_z, _ = jumps.z(steps, names)
    expected = medians if baselines is None else baselines + medians
    z_eff, z_prev = shifts.effective(z_raw, names, scaler.scales(names))
    # A step counts when it lands off the expected value on its own side: a step back
    # towards the baseline is a recovery, not a new problem.
    # (Same signs, without their product: 1e300-sized values would overflow it.)
    away = ((jump_z > 0.0) & (z_eff > 0.0)) | ((jump_z < 0.0) & (z_eff < 0.0))
    return Reading(
        raw=raw,
        values=values,
        residual=residual,
        expected=expected,
        z_raw=z_raw,
        z_eff=z_eff,
        z_prev=z_prev,
        steps=steps,
        signs=signs,
        z=directional(z_eff, signs),
        jumps=np.where(away, np.abs(directional(jump_z, signs)), 0.0),
        deviations=values - expected,
    )


@dataclass(frozen=True, slots=True)
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


def decide(
    core: ScoringCore,
    channels: FloatArray,
    z: FloatArray,
    jumps: FloatArray,
    *,
    alpha: float,
    warmup_left: int,
    min_effect: float,
) -> Decision:
    """Rows whose ``channels`` (raw scores) are rare under ``core``'s calibration and whose
    largest deviation (``z``, or a step in ``jumps``) is at least ``min_effect``."""
    n = channels.shape[0]
    p = core.p_values(channels)
    # A step counts in robust sds of single values: a step between two noisy samples
    # spreads sqrt(2) times wider.
    effect = np.maximum(row_max(np.abs(z)), row_max(jumps) / math.sqrt(2.0))
    ready = not core.scorer.in_first_window and core.calibrated > 0
    warming = np.arange(n) < warmup_left
    if not ready:
        warming[:] = True
    big = effect >= min_effect
    anomalous = ~warming & (p <= alpha) & big
    normal = warming | (p > math.sqrt(alpha)) | ~big
    return Decision(p=p, warming=warming, anomalous=anomalous, normal=normal)


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
    ts: FloatArray,
    keep: BoolArray,
    end: int,
    names: tuple[str, ...],
    resolutions: Iterable[tuple[str, float]],
    *,
    seasonal: SeasonalBaseline | None,
    scaler: RobustScaler,
    jumps: Jumps,
) -> None:
    """The baselines learn the kept rows (values; residuals for the scaler; steps for the
    jumps), and the jumps move on to row ``end - 1`` as the last value seen. Spread floors
    follow the seasonal profile's quanta when it folds."""
    whole = bool(keep.all())
    if seasonal is not None:
        folds = seasonal.folds
        seasonal.learn(reading.values if whole else reading.values[keep], ts[keep], names)
        if seasonal.folds != folds:
            floor = floors(resolutions, seasonal.quanta())
            scaler.set_floors(floor)
            jumps.set_floors(floor)
    scaler.learn(reading.residual if whole else reading.residual[keep], names)
    jumps.learn(reading.steps if whole else reading.steps[keep], names)
    jumps.advance(reading.values[:end], names)


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
) -> None:
    """Write the verdicts of a segment's first ``end`` rows (batch rows ``row0`` on)."""
    names = core.feature_names
    p, anomalous = decision.p, decision.anomalous
    sl = slice(row0, row0 + end)
    out.raw_scores[sl] = core.scorer.display_score(channels[:end])
    out.p_values[sl] = p[:end]
    out.scores[sl] = 1.0 - p[:end]
    out.thresholds[sl], out.alphas[sl] = 1.0 - alpha, alpha
    out.warming_up[sl] = decision.warming[:end]
    out.exceeded[sl] = anomalous[:end]
    out.alerts[sl] = marks.opened[:end]
    out.resolved[sl] = marks.resolved[:end]
    out.suppressed[sl] = anomalous[:end] & ~marks.opened[:end]
    out.in_episode[sl] = marks.open[:end]
    out.started_s[sl] = marks.started_s[:end]
    out.generation[sl] = core.generation
    values = reading.values[:, cols]
    out.deviations.append(
        Deviations(row0, row0 + end, names, reading.z_raw[:end, cols], values[:end])
    )
    if scan is not None:
        out.shifts[row0 + scan.row] = scan.moves
    missing = np.isnan(reading.raw[:end, cols])
    if missing.any():
        for i in np.flatnonzero(missing.any(axis=1)).tolist():
            out.missing[row0 + i] = tuple(f for f, m in zip(names, missing[i], strict=True) if m)
    z, expected = reading.z[:, cols], reading.expected[:, cols]
    z_raw = np.nan_to_num(reading.z_raw[:, cols], nan=0.0)
    for i in np.flatnonzero(marks.opened[:end]).tolist():
        out.z_at_open[row0 + i] = dict(zip(names, np.round(z_raw[i], 4).tolist(), strict=True))
        out.explanations[row0 + i] = top_contributions(
            dict(zip(names, z[i].tolist(), strict=True)),
            {f: v for f, v in zip(names, values[i].tolist(), strict=True) if v == v},
            dict(zip(names, expected[i].tolist(), strict=True)),
            k=top_k,
        )
