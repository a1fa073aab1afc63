"""One service's anomaly model: baselines, a raw score, its calibration, and episodes.

Per row of metric values: seasonal baseline and robust scaling give each metric's robust z
(:mod:`~models.anomaly.seasonal`, :mod:`~models.anomaly.scaling`), measured from the nearer of
its current and previous level (:mod:`~models.anomaly.shifts`) and kept only in the directions
that can alert (:class:`~models.anomaly.config.AnomalyConfig.direction_of`); the detector turns
the row into a raw score (:mod:`~models.anomaly.scoring`), the calibrator into a tail
probability ``p`` among the service's normal scores (:mod:`~models.anomaly.calibration`). A row
is anomalous when ``p <= alpha`` (the budget of false episodes per day, at the service's own
cadence) and some metric is at least ``min_effect`` robust sds off; anomalous rows open and
feed episodes (:mod:`~models.anomaly.episodes`), which decide what is learned.

The model is pure and works on micro-batches: every stateful part changes only at known row
counts, so a batch is processed in segments between those points, each segment scored in one
go, then its rows learned (those not withheld by an episode). A level shift ends a segment
at its row. The verdicts are exactly those of one row at a time, whatever the batches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from models.anomaly.cadence import CADENCE_ROWS, DEFAULT_CADENCE_S, median_gap, remember
from models.anomaly.config import AnomalyConfig, state_id
from models.anomaly.core import ScoringCore, refresh_every
from models.anomaly.counters import CounterRates
from models.anomaly.episodes import EpisodeMarks, EpisodeTracker, preview_marks
from models.anomaly.feature_sets import grown_candidate, plan_run
from models.anomaly.jumps import Jumps
from models.anomaly.reading import Reading, SegmentRows, read_rows
from models.anomaly.rows import matrix, row_max
from models.anomaly.scaling import RobustScaler
from models.anomaly.scoring import PendingRows
from models.anomaly.seasonal import SeasonalBaseline
from models.anomaly.segment import (
    Decision,
    decide,
    floors,
    kept_rows,
    learn_baselines,
    move_levels,
    rows_to_change,
    run_episodes,
    write_verdicts,
)
from models.anomaly.shifts import EpisodeMoves, LevelShifts, ShiftScan, note_episode_moves
from models.anomaly.trees import Steps, run_steps
from models.anomaly.verdicts import BatchVerdict, Verdict, empty_batch

__all__ = ["ServiceAnomalyModel"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_DAY_S = 86_400.0
_SIGN = {"up": 1.0, "down": -1.0, "both": 0.0}


class ServiceAnomalyModel:
    """The anomaly model of one service (one source: metrics, or log windows).

    Features are the service's metric names. The first event fixes the feature set; when new
    names appear later, a candidate model over the union learns alongside the current one and
    replaces it once warmed up, so new metrics are used without a blind spot. Names missing
    from an event are imputed at their baseline (a neutral value) and reported in the verdict.

    Args:
        service: The service this model belongs to.
        config: The model's configuration.

    Examples:
        >>> import random
        >>> rng = random.Random(0)
        >>> model = ServiceAnomalyModel("api", AnomalyConfig(warmup_events=300, window_size=100))
        >>> for t in range(3000):
        ...     v = model.observe({"latency": rng.gauss(100, 5), "cpu": rng.gauss(50, 2)}, 60.0 * t)
        >>> spike = model.observe({"latency": 400.0, "cpu": 50.0}, 60.0 * 3000)
        >>> spike.alert, spike.top_features[0].name
        (True, 'latency')
        >>> later = model.observe({"latency": 410.0, "cpu": 50.0}, 60.0 * 3001)
        >>> later.alert, later.suppressed  # the same episode: no second alert
        (False, True)
    """

    def __init__(self, service: str, config: AnomalyConfig) -> None:
        self.service = service
        self.config = config
        every = refresh_every(config)
        self._scaler = RobustScaler(window=config.scaler_window, refresh_every=every)
        self._seasonal = (
            SeasonalBaseline(
                config.season_s,
                config.season_buckets,
                config.season_alpha,
                # Folds on each window end, and once an hour of event time is buffered: a
                # 5-minute metric would otherwise fold its 250 samples 21 hours apart.
                fold_every=refresh_every(config) // 2,
                fold_span_s=config.season_s / 24,
            )
            if config.season_s > 0
            else None
        )
        self._core: ScoringCore | None = None
        self._candidate: ScoringCore | None = None
        self._episodes = EpisodeTracker(config.resolve_after, config.max_withheld)
        self._shifts = LevelShifts(config.shift_after, config.min_effect)
        self._counters = CounterRates()
        self._episode_moves: EpisodeMoves = {}
        self._jumps = Jumps(window=config.scaler_window, refresh_every=every)
        self._scaler.set_floors(floors(config.resolutions, {}))
        self._jumps.set_floors(floors(config.resolutions, {}))
        self._signs: dict[tuple[str, ...], FloatArray] = {}
        # HST scores 0 until its first mass window is complete: never alert before that.
        self._warmup = max(config.warmup_events, config.window_size)
        self.budget_per_day = config.budget_for(service)
        self._recent_ts = np.full(CADENCE_ROWS, np.nan)
        self._refreshes = -1
        self.cadence_s = DEFAULT_CADENCE_S
        self.events_seen = 0
        self.episodes_opened = 0
        self.first_ts_s = math.nan
        self.last_ts_s = math.nan

    def reconfigure(self, config: AnomalyConfig) -> None:
        """Apply ``config``'s decisions (budget, threshold, directions, episodes, level
        shifts, warm-up, explanations) to this model's learned state, at once.

        Raises:
            ValueError: ``config`` shapes state differently (:func:`state_id`): the state
                learned under this model's configuration would not fit it.
        """
        if state_id(config) != state_id(self.config):
            raise ValueError("the configuration shapes learned state differently")
        self.config = config
        self._episodes.resolve_after = config.resolve_after
        self._episodes.max_withheld = config.max_withheld
        self._shifts.shift_after = config.shift_after
        self._shifts.min_effect = config.min_effect
        self._signs.clear()
        self._warmup = max(config.warmup_events, config.window_size)
        self.budget_per_day = config.budget_for(self.service)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features the current model scores."""
        return self._core.feature_names if self._core is not None else ()

    @property
    def version(self) -> str:
        """The model generation, bumped when the feature set changes."""
        return f"{self._core.generation if self._core is not None else 0}"

    @property
    def alpha(self) -> float:
        """The tail probability at or below which a row is rare enough to alert."""
        override = self.config.threshold_override
        if override is not None:
            return max(0.0, 1.0 - override)
        return min(0.5, self.budget_per_day * self.cadence_s / _DAY_S)

    @property
    def threshold(self) -> float:
        """The alert threshold in force, on the calibrated score ``1 - p``."""
        return 1.0 - self.alpha

    @property
    def episode_open(self) -> bool:
        """Whether an episode of this service is open."""
        return self._episodes.episode is not None

    def episodes_per_day(self) -> float:
        """Episodes opened per day of event time seen (NaN before a day's worth of span)."""
        span = self.last_ts_s - self.first_ts_s
        return self.episodes_opened * _DAY_S / span if span > 0 else math.nan

    def nbytes(self) -> int:
        """Bytes of array state held (scaler windows, HST masses, calibration history)."""
        cores = [c for c in (self._core, self._candidate) if c is not None]
        held = sum(c.scorer.nbytes + c.calibrator.nbytes() for c in cores)
        held += self._seasonal.nbytes() if self._seasonal is not None else 0
        return held + self._scaler.nbytes() + self._jumps.nbytes()

    def observe(self, x: Mapping[str, float], ts_s: float, *, learn: bool = True) -> Verdict:
        """Score one event at event time ``ts_s``, then learn from it unless told not to."""
        return self.observe_batch([x], [ts_s], learn=learn).verdict(0)

    def observe_batch(
        self, rows: Sequence[Mapping[str, float]], ts_s: Sequence[float], *, learn: bool = True
    ) -> BatchVerdict:
        """Score each row (then learn it unless ``learn`` is false), in order.

        With ``learn=False`` nothing changes: not the models, the calibration nor episodes.
        """
        return run_steps(self.observe_steps(rows, ts_s, learn=learn))

    def observe_steps(
        self, rows: Sequence[Mapping[str, float]], ts_s: Sequence[float], *, learn: bool = True
    ) -> Steps[BatchVerdict]:
        """:meth:`observe_batch` as steps: the trees ask for rows' paths (``anomaly.trees``).

        :func:`observe_together` runs the steps of many services at once; alone, they are
        :meth:`observe_batch`.
        """
        n = len(rows)
        out = empty_batch(n, self.config.critical_margin)
        if n == 0:
            return out
        if self._core is None:
            core = ScoringCore(tuple(sorted(rows[0])), 1, self.config)
            if not learn:
                yield from self._run(core, rows, ts_s, 0, n, out, None, learn=False)
                return out
            self._core = core
        start = 0
        while start < n:
            start = yield from self._run_segment(rows, ts_s, start, out, learn)
        return out

    # -- runs of rows over one feature set ------------------------------------------------------

    def _run_segment(
        self,
        rows: Sequence[Mapping[str, float]],
        ts_s: Sequence[float],
        start: int,
        out: BatchVerdict,
        learn: bool,
    ) -> Steps[int]:
        """Process rows from ``start`` up to the next feature-set change; return where it ended."""
        core = self._core
        assert core is not None
        plan = plan_run(rows, start, core, self._candidate, warmup=self._warmup, learn=learn)
        if plan.new and learn:
            grown = grown_candidate(core, self._candidate, plan.new, self.config)
            if grown is not None:
                self._candidate = grown
            out.candidate_started[start] = grown is not None
        if plan.new:
            out.new_features[start] = plan.new_to_core
        return (yield from self._run(core, rows, ts_s, start, plan.end, out, plan.matrix, learn))

    def _run(
        self,
        core: ScoringCore,
        rows: Sequence[Mapping[str, float]],
        ts_s: Sequence[float],
        start: int,
        end: int,
        out: BatchVerdict,
        X: FloatArray | None,
        learn: bool,
    ) -> Steps[int]:
        """Rows ``start:end`` (``X``, over the run's features, if built already) over
        ``core``'s features, in segments of constant state; returns where it stopped (a
        candidate's promotion ends a run early)."""
        candidate = self._candidate if learn else None
        all_names = core.feature_names if candidate is None else candidate.feature_names
        ts = np.asarray(ts_s[start:end], dtype=np.float64)
        X = matrix(rows[start:end], all_names) if X is None else X
        run = SegmentRows.of_run(X, ts, self._seasonal)
        at = 0
        while at < ts.shape[0]:
            m = ts.shape[0] - at
            if learn:
                cores = (core,) if candidate is None else (core, candidate)
                m = min(m, rows_to_change(
                    ts[at:], cores, seasonal=self._seasonal, scaler=self._scaler, jumps=self._jumps
                ))  # fmt: skip
            part = run.part(at, at + m)
            at += yield from self._segment(core, candidate, part, start + at, out, learn)
            if learn and self._core is not core:  # the candidate took over
                break
        return start + at

    # -- one segment: score all, decide, learn --------------------------------------------------

    def _segment(
        self,
        core: ScoringCore,
        candidate: ScoringCore | None,
        rows: SegmentRows,
        row0: int,
        out: BatchVerdict,
        learn: bool,
    ) -> Steps[int]:
        """Score rows over which no learned state changes, decide, learn what the episodes
        keep, and write the verdicts; returns the rows done (a level shift ends a segment at
        its row)."""
        names = core.feature_names
        all_names = candidate.feature_names if candidate is not None else names
        reading = read_rows(
            rows, all_names, self._signs_of(all_names),
            counters=self._counters, seasonal=self._seasonal, scaler=self._scaler,
            jumps=self._jumps, shifts=self._shifts,
        )  # fmt: skip
        cols: list[int] | slice = (
            slice(None) if all_names == names else [all_names.index(f) for f in names]
        )
        zd = reading.z[:, cols]
        raw, pending = yield from core.scorer.score_keep_steps(zd, row_max(reading.jumps[:, cols]))
        alpha = self.alpha
        decision = decide(
            core, raw, zd,
            alpha=alpha, warmup_left=self._warmup - core.learned,
            min_effect=self.config.min_effect,
        )  # fmt: skip
        if learn:
            c_scores = None
            if candidate is not None:
                c_scores = yield from candidate.scorer.score_keep_steps(
                    reading.z, row_max(reading.jumps)
                )
            marks, scan, end = self._learn_segment(
                core, raw, pending, candidate, c_scores, reading, rows, decision, alpha, row0,
                out,
            )  # fmt: skip
        else:
            marks = preview_marks(decision.anomalous, self._episodes.episode is not None, rows.ts)
            scan, end = None, rows.raw.shape[0]
        write_verdicts(
            out, row0, end,
            core=core, channels=raw, alpha=alpha, decision=decision, marks=marks,
            reading=reading, cols=cols, scan=scan, top_k=self.config.top_k,
            complete=rows.complete,
        )  # fmt: skip
        return end

    def _learn_segment(
        self,
        core: ScoringCore,
        raw: FloatArray,
        pending: PendingRows,
        candidate: ScoringCore | None,
        c_scores: tuple[FloatArray, PendingRows] | None,
        reading: Reading,
        rows: SegmentRows,
        decision: Decision,
        alpha: float,
        row0: int,
        out: BatchVerdict,
    ) -> tuple[EpisodeMarks, ShiftScan | None, int]:
        """Run the episodes over the segment, up to its first level shift if any, and learn
        the rows they keep; returns the marks, the shift and the rows done."""
        ts = rows.ts
        names = candidate.feature_names if candidate is not None else core.feature_names
        marks, scan, end = run_episodes(self._episodes, self._shifts, decision, reading, ts, names)
        keep, opened, opened_count = kept_rows(marks, end, rows.ts.shape[0])
        learn_baselines(
            reading, rows, keep, end, names, self.config.resolutions,
            seasonal=self._seasonal, scaler=self._scaler, jumps=self._jumps,
        )  # fmt: skip
        core.learn(raw, pending, keep, opened, alpha, self.cadence_s)
        if candidate is not None and c_scores is not None:
            candidate.learn(*c_scores, keep, opened, alpha, self.cadence_s)
        if self._shifts.quiet(None if marks.quiet else marks.open[:end]):
            self._shifts.rest()
        else:
            z_prev = reading.z_prev[:end] if reading.z_prev is not None else None
            self._shifts.advance(
                reading.z_eff[:end], reading.z_raw[:end], z_prev, marks.open[:end],
                reading.signs, reading.deviations[:end], names, scan,
            )  # fmt: skip
        if self._episode_moves or scan is not None:
            self._episode_moves, explained = note_episode_moves(
                self._episode_moves, marks, end, scan, reading.expected, names
            )
            if explained is not None:
                out.explanations[row0 + explained[0]] = explained[1]
        if scan is not None:
            move_levels(scan, self._seasonal, self._scaler)
        self._counters.transform(reading.raw[:end], ts[:end], names)
        self._note_times(ts[:end], core)
        self.events_seen += end
        self.episodes_opened += opened_count
        if candidate is not None and candidate.learned >= self._warmup:
            self._core, self._candidate = candidate, None
        return marks, scan, end

    def _note_times(self, ts: FloatArray, core: ScoringCore) -> None:
        """Keep recent event times; re-estimate the cadence when the calibration refreshed."""
        if ts.size == 0:
            return
        if math.isnan(self.first_ts_s):
            self.first_ts_s = float(ts[0])
        self.last_ts_s = float(ts[-1])
        remember(self._recent_ts, ts)
        if core.refreshes != self._refreshes:
            self._refreshes = core.refreshes
            gap = median_gap(self._recent_ts)
            if gap is not None:
                self.cadence_s = gap

    def _signs_of(self, names: tuple[str, ...]) -> FloatArray:
        if names not in self._signs:
            self._signs[names] = np.array([_SIGN[self.config.direction_of(n)] for n in names])
        return self._signs[names]
