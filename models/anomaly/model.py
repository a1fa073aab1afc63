"""One service's anomaly model: baselines, a raw score, its calibration, and episodes.

Per row of metric values: seasonal baseline and robust scaling give each metric's robust z
(:mod:`models.seasonal`, :mod:`models.scaling`), measured from the nearer of its current and
previous level (:mod:`models.anomaly.shifts`) and kept only in the directions that can alert
(:class:`~models.anomaly.config.AnomalyConfig.direction_of`); the detector turns the row into a
raw score (:mod:`models.scoring`), the calibrator into a tail probability ``p`` among the
service's normal scores (:mod:`models.anomaly.calibration`). A row is anomalous when
``p <= alpha`` (the budget of false episodes per day, at the service's own cadence) and some
metric is at least ``min_effect`` robust sds off; anomalous rows open and feed episodes
(:mod:`models.anomaly.episodes`), which decide what is learned.

The model is pure and works on micro-batches: every stateful part changes only at known row
counts, so a batch is processed in segments between those points, each segment scored in one
go, then its rows learned (those not withheld by an episode). A level shift ends a segment
at its row. The verdicts are exactly those of one row at a time, whatever the batches.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from models.anomaly.calibration import ScoreCalibrator
from models.anomaly.config import AnomalyConfig, state_id
from models.anomaly.counters import CounterRates
from models.anomaly.episodes import EpisodeMarks, EpisodeTracker
from models.anomaly.jumps import Jumps
from models.anomaly.shifts import LevelShifts, ShiftScan
from models.anomaly.verdicts import BatchVerdict, Verdict, empty_batch
from models.anomaly.verdicts import Deviations as Deviations
from models.explain import FeatureContribution, top_contributions
from models.scaling import RobustScaler
from models.scoring import PendingRows, RowScorer
from models.seasonal import SeasonalBaseline
from models.trees import Steps, run_steps, run_together

__all__ = ["ServiceAnomalyModel", "episodes_per_service_day", "observe_together"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_DAY_S = 86_400.0
_CADENCE_ROWS = 65  # event times kept to estimate a service's cadence (64 gaps)
_DEFAULT_CADENCE_S = 60.0  # until a service has two distinct event times
_SIGN = {"up": 1.0, "down": -1.0, "both": 0.0}
_TINY = 1e-300  # a p-value of 0 (past a point-mass tail) still has a finite inverse


def _matrix(rows: Sequence[Mapping[str, float]], names: tuple[str, ...]) -> FloatArray:
    """Rows as a float matrix over ``names``; a name missing from a row is NaN.

    Examples:
        >>> _matrix([{"a": 1, "b": 2}, {"b": 3}], ("a", "b")).tolist()
        [[1.0, 2.0], [nan, 3.0]]
    """
    pick = operator.itemgetter(*names)
    try:  # the common case, every name present: picked in C
        picked = [pick(row) for row in rows]
    except KeyError:
        picked = [[row.get(n, math.nan) for n in names] for row in rows]
    return np.array(picked, dtype=np.float64).reshape(len(rows), len(names))


def _first_with_unknown(rows: Sequence[Mapping[str, float]], start: int, known: set[str]) -> int:
    """The index of the first row from ``start`` with a name outside ``known`` (or the end).

    Examples:
        >>> _first_with_unknown([{"a": 1}, {"a": 1, "b": 2}, {"c": 3}], 0, {"a", "b"})
        2
        >>> _first_with_unknown([{"a": 1}], 0, {"a"})
        1
    """
    within = map(known.issuperset, itertools.islice(rows, start, None))
    return next(itertools.compress(itertools.count(start), map(operator.not_, within)), len(rows))


def directional(z: FloatArray, signs: FloatArray) -> FloatArray:
    """Keep deviations in the directions that alert: rises (+1), drops (-1), or both (0).

    Examples:
        >>> z = np.array([[4.0, 4.0, 4.0], [-4.0, -4.0, -4.0]])
        >>> directional(z, np.array([1.0, -1.0, 0.0])).tolist()
        [[4.0, 0.0, 4.0], [0.0, -4.0, -4.0]]
    """
    if not signs.any():
        return z
    out: FloatArray = np.where(z * signs[None, :] < 0.0, 0.0, z)
    return out


def _refresh_every(config: AnomalyConfig) -> int:
    """One refresh period for every windowed statistic: twice the trees' mass window (the
    same without trees). They all count learned rows, so their refreshes fall on the trees'
    window ends (past the powers of two of their youth), and a segment of constant state runs
    from one window end to the next rather than between two schedules (an offline run of
    100,000 events: 1,062 segments, against 3,272 with each statistic on its own schedule)."""
    return 2 * config.window_size


def _row_max(a: FloatArray) -> FloatArray:
    """The largest value of each row (0 for rows of no columns)."""
    out: FloatArray = a.max(axis=1) if a.shape[1] else np.zeros(a.shape[0])
    return out


class _ScoringCore:
    """Trees and calibration over one fixed feature set."""

    __slots__ = ("calibrator", "channels", "feature_names", "generation", "learned", "scorer")

    def __init__(
        self, feature_names: tuple[str, ...], generation: int, config: AnomalyConfig
    ) -> None:
        self.feature_names = feature_names
        self.generation = generation
        self.scorer = RowScorer(
            config.detector,
            config.engine,
            n_trees=config.n_trees,
            height=config.height,
            window_size=config.window_size,
            seed=config.seed,
            n_features=len(feature_names),
        )
        self.channels = (*self.scorer.channels, "jump")
        self.calibrator = ScoreCalibrator(
            window=config.calibration_window,
            refresh_every=_refresh_every(config),
            channels=len(self.channels),
        )
        self.learned = 0

    @property
    def calibrated(self) -> int:
        """Scores the calibration is taken over (0: nothing is called rare yet)."""
        return self.calibrator.size

    @property
    def refreshes(self) -> int:
        return self.calibrator.refreshes

    def rows_to_change(self) -> int:
        if self.scorer.in_first_window:  # the calibration learns nothing before it ends
            return self.scorer.rows_to_window_end()
        return min(self.scorer.rows_to_window_end(), self.calibrator.rows_to_refresh())

    def p_values(self, channels: FloatArray) -> FloatArray:
        """The row's tail probability: the harmonic mean of its channels' (Wilson, "The
        harmonic mean p-value for combining dependent tests", PNAS 2019). The channels read
        one row, so they are far from independent: Fisher's method would count one deviation
        several times, and Bonferroni's ``L * min p`` pays for independence that is not there
        (measured, held-out ASD episode F1 0.592 with Bonferroni, 0.612 with the harmonic
        mean; KPI 0.328 and 0.331)."""
        p = self.calibrator.p_values(channels)
        inverse = (1.0 / np.maximum(p, _TINY)).sum(axis=1)
        out: FloatArray = np.minimum(1.0, p.shape[1] / inverse)
        return out

    def learn(
        self,
        raw: FloatArray,
        pending: PendingRows,
        keep: BoolArray,
        once: BoolArray,
        alpha: float,
    ) -> None:
        """Learn the kept rows; the calibration also takes ``once`` rows (episode openings),
        at most at the score the threshold stands at: an episode counts once, as one
        exceedance, and its magnitude (a 1e9 spike) does not bend the fitted tail."""
        first_window = self.scorer.in_first_window  # scores were 0 from the trees: not learned
        self.scorer.learn(pending, keep)
        if not first_window:
            counted = keep | once
            taken = raw[counted]
            capped = once[counted]
            if capped.any():
                cap = self.calibrator.score_at(alpha / len(self.channels))
                taken = np.where(capped[:, None], np.minimum(taken, cap[None, :]), taken)
            self.calibrator.learn(taken, unscheduled=int(np.count_nonzero(capped)))
        self.learned += int(np.count_nonzero(keep))


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
        every = _refresh_every(config)
        self._scaler = RobustScaler(window=config.scaler_window, refresh_every=every)
        self._seasonal = (
            SeasonalBaseline(
                config.season_s,
                config.season_buckets,
                config.season_alpha,
                # Folds on each window end, and once an hour of event time is buffered: a
                # 5-minute metric would otherwise fold its 250 samples 21 hours apart.
                fold_every=_refresh_every(config) // 2,
                fold_span_s=config.season_s / 24,
            )
            if config.season_s > 0
            else None
        )
        self._core: _ScoringCore | None = None
        self._candidate: _ScoringCore | None = None
        self._episodes = EpisodeTracker(config.resolve_after, config.max_withheld)
        self._shifts = LevelShifts(config.shift_after, config.min_effect)
        self._counters = CounterRates()
        self._episode_moves: dict[str, tuple[float, float]] = {}
        """Features whose level moved during the open episode: (level before, level now)."""
        self._jumps = Jumps(window=config.scaler_window, refresh_every=every)
        self._set_floors({})
        self._signs: dict[tuple[str, ...], FloatArray] = {}
        # HST scores 0 until its first mass window is complete: never alert before that.
        self._warmup = max(config.warmup_events, config.window_size)
        self.budget_per_day = config.budget_for(service)
        self._recent_ts = np.full(_CADENCE_ROWS, np.nan)
        self._refreshes = -1
        self.cadence_s = _DEFAULT_CADENCE_S
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
        seasonal = self._seasonal.nbytes() if self._seasonal is not None else 0
        return (
            self._scaler.nbytes()
            + self._jumps.nbytes()
            + seasonal
            + sum(c.scorer.nbytes + c.calibrator.nbytes() for c in cores)
        )

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
        """:meth:`observe_batch` as steps: the trees ask for their rows' paths (``models.trees``).

        :func:`observe_together` runs the steps of many services at once; alone, they are
        :meth:`observe_batch`.
        """
        n = len(rows)
        out = empty_batch(n, self.config.critical_margin)
        if n == 0:
            return out
        if self._core is None:
            core = _ScoringCore(tuple(sorted(rows[0])), 1, self.config)
            if not learn:
                yield from self._run(core, rows, ts_s, 0, n, out, learn=False)
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
        known = set(core.feature_names)
        if self._candidate is not None:
            known |= set(self._candidate.feature_names)
        end = _first_with_unknown(rows, start, known)
        new: tuple[str, ...] = ()
        if end == start:  # this row brings new names (the rows before it were processed first)
            new = tuple(sorted(set(rows[start]) - known))
            end += 1
        if not new and learn and self._candidate is not None:
            # Rows up to a candidate's promotion use the current core.
            end = min(end, start + self._warmup - self._candidate.learned)
        if new and learn:
            out.candidate_started[start] = self._grow_candidate(new)
        if new:
            out.new_features[start] = tuple(sorted(set(rows[start]) - set(core.feature_names)))
        return (yield from self._run(core, rows, ts_s, start, end, out, learn=learn))

    def _run(
        self,
        core: _ScoringCore,
        rows: Sequence[Mapping[str, float]],
        ts_s: Sequence[float],
        start: int,
        end: int,
        out: BatchVerdict,
        *,
        learn: bool,
    ) -> Steps[int]:
        """Rows ``start:end`` over ``core``'s features, in segments of constant state; returns
        where it stopped (a candidate's promotion ends a run early)."""
        candidate = self._candidate if learn else None
        all_names = core.feature_names if candidate is None else candidate.feature_names
        X = _matrix(rows[start:end], all_names)
        ts = np.asarray(ts_s[start:end], dtype=np.float64)
        at = 0
        while at < X.shape[0]:
            m = X.shape[0] - at
            if learn:
                m = min(m, self._rows_to_change(core, candidate, ts[at:]))
            at += yield from self._segment(
                core, candidate, X[at : at + m], ts[at : at + m], start + at, out, learn
            )
            if learn and self._core is not core:  # the candidate took over
                break
        return start + at

    def _rows_to_change(
        self, core: _ScoringCore, candidate: _ScoringCore | None, ts: FloatArray
    ) -> int:
        """Rows (of those at event times ``ts``) that can go through before some learned
        state changes (at least 1)."""
        limits = [
            self._scaler.rows_to_refresh(),
            self._jumps.rows_to_refresh(),
            core.rows_to_change(),
        ]
        if self._seasonal is not None:
            limits.append(self._seasonal.rows_to_fold(ts))
        if candidate is not None:
            limits.append(candidate.rows_to_change())
        return min(limits)

    # -- one segment: score all, decide, learn --------------------------------------------------

    def _segment(
        self,
        core: _ScoringCore,
        candidate: _ScoringCore | None,
        X_all: FloatArray,
        ts: FloatArray,
        row0: int,
        out: BatchVerdict,
        learn: bool,
    ) -> Steps[int]:
        names = core.feature_names
        all_names_t = candidate.feature_names if candidate is not None else names
        n = int(X_all.shape[0])
        raw_values = X_all
        X_all = self._counters.transform(raw_values, ts, all_names_t, commit=False)
        seasonal = self._seasonal.baselines(ts, all_names_t) if self._seasonal is not None else None
        residual = X_all if seasonal is None else X_all - seasonal
        z_raw_all, medians = self._scaler.scale(residual, all_names_t)
        steps_all = self._jumps.steps(X_all, all_names_t)
        jump_z_all, _ = self._jumps.z(steps_all, all_names_t)
        expected_all = medians if seasonal is None else seasonal + medians
        scales = self._scaler.scales(all_names_t)
        z_eff_all, z_prev_all = self._shifts.effective(z_raw_all, all_names_t, scales)
        signs_all = self._signs_of(all_names_t)
        zd_all = directional(z_eff_all, signs_all)
        if all_names_t == names:
            cols: list[int] | slice = slice(None)
        else:
            cols = [all_names_t.index(f) for f in names]
        zd, values = zd_all[:, cols], X_all[:, cols]
        # A step counts when it lands off the expected value on its own side: a step back
        # towards the baseline is a recovery, not a new problem.
        # (Same signs, without their product: 1e300-sized values would overflow it.)
        away = ((jump_z_all > 0.0) & (z_eff_all > 0.0)) | ((jump_z_all < 0.0) & (z_eff_all < 0.0))
        jumps_all = np.where(away, np.abs(directional(jump_z_all, signs_all)), 0.0)
        raw, pending = yield from core.scorer.score_keep_steps(zd)
        raw = np.column_stack([raw, _row_max(jumps_all[:, cols])])
        c_raw: FloatArray | None = None
        c_pending: PendingRows | None = None
        if candidate is not None:
            c_raw, c_pending = yield from candidate.scorer.score_keep_steps(zd_all)
            c_raw = np.column_stack([c_raw, _row_max(jumps_all)])

        alpha = self.alpha
        p = core.p_values(raw)
        # A step counts in robust sds of single values: a step between two noisy samples
        # spreads sqrt(2) times wider.
        effect = np.maximum(_row_max(np.abs(zd)), _row_max(jumps_all[:, cols]) / math.sqrt(2.0))
        ready = not core.scorer.in_first_window and core.calibrated > 0
        warming = np.arange(n) < self._warmup - core.learned
        if not ready:
            warming[:] = True
        big = effect >= self.config.min_effect
        anomalous = ~warming & (p <= alpha) & big
        normal = warming | (p > math.sqrt(alpha)) | ~big

        if not learn:
            marks = _preview(anomalous, self._episodes.episode is not None, ts)
            scan: ShiftScan | None = None
            end = n
        else:
            marks = self._episodes.run(anomalous, normal, ts, commit=False)
            scan = self._shifts.scan(
                z_eff_all, z_raw_all, z_prev_all, marks.open, signs_all,
                X_all - expected_all, all_names_t,
            )  # fmt: skip
            end = n if scan is None else scan.row + 1
            if end < n:
                marks = self._episodes.run(anomalous[:end], normal[:end], ts[:end])
            else:
                self._episodes.episode = marks.end
            keep = np.zeros(n, dtype=bool)
            keep[:end] = ~marks.withheld[:end]
            opened = np.zeros(n, dtype=bool)
            opened[:end] = marks.opened[:end]
            self._learn_rows(X_all, residual, ts, keep, all_names_t)
            self._jumps.learn(steps_all if keep.all() else steps_all[keep], all_names_t)
            self._jumps.advance(X_all[:end], all_names_t)
            core.learn(raw, pending, keep, opened, alpha)
            if candidate is not None:
                assert c_raw is not None
                assert c_pending is not None
                candidate.learn(c_raw, c_pending, keep, opened, alpha)
            self._shifts.advance(
                z_eff_all[:end], z_raw_all[:end], z_prev_all[:end] if z_prev_all is not None
                else None, marks.open[:end], signs_all, (X_all - expected_all)[:end],
                all_names_t, scan,
            )  # fmt: skip
            explained = self._note_moves(marks, end, scan, expected_all, all_names_t)
            if explained is not None:
                row, contributions = explained
                out.explanations[row0 + row] = contributions
            if scan is not None:
                self._move(scan)
            self._counters.transform(raw_values[:end], ts[:end], all_names_t)
            self._note_times(ts[:end], core)
            self.events_seen += end
            self.episodes_opened += int(np.count_nonzero(marks.opened[:end]))
            if candidate is not None and candidate.learned >= self._warmup:
                self._core, self._candidate = candidate, None

        sl = slice(row0, row0 + end)
        out.raw_scores[sl] = core.scorer.display_score(raw[:end])
        out.p_values[sl] = p[:end]
        out.scores[sl] = 1.0 - p[:end]
        out.thresholds[sl], out.alphas[sl] = 1.0 - alpha, alpha
        out.warming_up[sl] = warming[:end]
        out.exceeded[sl] = anomalous[:end]
        out.alerts[sl] = marks.opened[:end]
        out.resolved[sl] = marks.resolved[:end]
        out.suppressed[sl] = anomalous[:end] & ~marks.opened[:end]
        out.in_episode[sl] = marks.open[:end]
        out.started_s[sl] = marks.started_s[:end]
        out.generation[sl] = core.generation
        out.deviations.append(
            Deviations(row0, row0 + end, names, z_raw_all[:end, cols], values[:end])
        )
        if scan is not None:
            out.shifts[row0 + scan.row] = scan.moves
        missing = np.isnan(raw_values[:end, cols])
        if missing.any():
            for i in np.flatnonzero(missing.any(axis=1)).tolist():
                out.missing[row0 + i] = tuple(
                    f for f, m in zip(names, missing[i], strict=True) if m
                )
        for i in np.flatnonzero(marks.opened[:end]).tolist():
            out.explanations[row0 + i] = top_contributions(
                dict(zip(names, zd[i].tolist(), strict=True)),
                {f: v for f, v in zip(names, values[i].tolist(), strict=True) if v == v},
                dict(zip(names, expected_all[i, cols].tolist(), strict=True)),
                k=self.config.top_k,
            )
        return end

    def _learn_rows(
        self,
        X: FloatArray,
        residual: FloatArray,
        ts: FloatArray,
        keep: BoolArray,
        names: tuple[str, ...],
    ) -> None:
        """The baselines learn the kept rows (values; residuals for the scaler)."""
        whole = bool(keep.all())
        X_kept = X if whole else X[keep]
        if self._seasonal is not None:
            folds = self._seasonal.folds
            self._seasonal.learn(X_kept, ts if whole else ts[keep], names)
            if self._seasonal.folds != folds:
                self._set_floors(self._seasonal.quanta())
        self._scaler.learn(residual if whole else residual[keep], names)

    def _set_floors(self, quanta: Mapping[str, float]) -> None:
        """Spreads never below a feature's resolution: the declared one, or the smallest step
        seen between its values if larger."""
        floors = dict(self.config.resolutions)
        for name, step in quanta.items():
            floors[name] = max(step, floors.get(name, 0.0))
        self._scaler.set_floors(floors)
        self._jumps.set_floors(floors)

    def _note_moves(
        self,
        marks: EpisodeMarks,
        end: int,
        scan: ShiftScan | None,
        expected: FloatArray,
        names: tuple[str, ...],
    ) -> tuple[int, list[FeatureContribution]] | None:
        """Keep the levels that moved during the open episode; the row that resolves it (if
        one of these rows does) explains itself by them: the new normal, from and to."""
        explained = None
        resolved = np.flatnonzero(marks.resolved[:end])
        opened = np.flatnonzero(marks.opened[:end])
        # Moves are noted only at a scan, which ends a segment: an episode that opened in
        # this segment has none, one that resolves before any opening has them all.
        if resolved.size and self._episode_moves and not (opened.size and opened[0] < resolved[0]):
            moved = self._episode_moves
            total = sum(abs(after - before) for before, after in moved.values()) or 1.0
            contributions = [
                FeatureContribution(name, after, before, round(abs(after - before) / total, 4))
                for name, (before, after) in sorted(moved.items())
            ]
            explained = (int(resolved[0]), contributions)
        if resolved.size or opened.size:
            self._episode_moves = {}
        if scan is not None and marks.open[scan.row]:
            for name, delta in scan.moves:
                level = float(expected[scan.row, names.index(name)])
                before, _ = self._episode_moves.get(name, (level, level))
                if abs(level + delta - before) < 1e-9:
                    self._episode_moves.pop(name, None)  # back where it was
                else:
                    self._episode_moves[name] = (before, level + delta)
        return explained

    def _move(self, scan: ShiftScan) -> None:
        """Move features' baselines to their new (or back to their old) level."""
        for name, delta in scan.moves:
            if self._seasonal is not None:
                self._seasonal.shift(name, delta)
            else:
                self._scaler.shift(name, delta)

    def _note_times(self, ts: FloatArray, core: _ScoringCore) -> None:
        """Keep recent event times; re-estimate the cadence when the calibration refreshed."""
        if ts.size == 0:
            return
        if math.isnan(self.first_ts_s):
            self.first_ts_s = float(ts[0])
        self.last_ts_s = float(ts[-1])
        recent = self._recent_ts
        k = min(ts.size, recent.size)
        recent[:-k] = recent[k:].copy()
        recent[-k:] = ts[-k:]
        refreshes = core.refreshes
        if refreshes != self._refreshes:
            self._refreshes = refreshes
            gaps = np.diff(recent[~np.isnan(recent)])
            gaps = gaps[gaps > 0]
            if gaps.size:
                half = gaps.size // 2  # the median, without np.median's wrapper
                ordered = np.partition(gaps, [half - 1, half] if gaps.size % 2 == 0 else half)
                low = ordered[half - 1] if gaps.size % 2 == 0 else ordered[half]
                self.cadence_s = float(0.5 * (low + ordered[half]))

    def _signs_of(self, names: tuple[str, ...]) -> FloatArray:
        signs = self._signs.get(names)
        if signs is None:
            signs = np.array([_SIGN[self.config.direction_of(n)] for n in names])
            self._signs[names] = signs
        return signs

    def _grow_candidate(self, new: tuple[str, ...]) -> bool:
        """Start (or restart, wider) the candidate model; False if it already covers ``new``."""
        assert self._core is not None
        if self._candidate is not None and set(new) <= set(self._candidate.feature_names):
            return False
        base = self._candidate or self._core
        names = tuple(sorted({*base.feature_names, *new}))
        self._candidate = _ScoringCore(names, self._core.generation + 1, self.config)
        return True


def _preview(anomalous: BoolArray, episode_open: bool, ts: FloatArray) -> EpisodeMarks:
    """Marks without learning: each row on its own against the episode state as it is."""
    n = anomalous.size
    opened = anomalous & (not episode_open)
    return EpisodeMarks(
        opened=opened,
        resolved=np.zeros(n, dtype=bool),
        open=np.full(n, episode_open),
        withheld=np.zeros(n, dtype=bool),
        started_s=np.where(opened, ts, np.nan),
    )


def observe_together(
    batches: Sequence[tuple[ServiceAnomalyModel, Sequence[Mapping[str, float]], Sequence[float]]],
    *,
    learn: bool = True,
) -> list[BatchVerdict]:
    """``model.observe_batch(rows, ts_s)`` for each ``(model, rows, ts_s)``, models distinct.

    The verdicts are those of calling each in turn; the numpy trees' walks are shared: the
    rows of all services on the same trees go through them in one walk per round (see
    ``models.trees``). A walk costs about as much for one row as for a hundred, and was a
    fifth to a quarter of a small batch's cost per service.

    Examples:
        >>> config = AnomalyConfig(warmup_events=50, window_size=50)
        >>> apart = [ServiceAnomalyModel(s, config) for s in ("a", "b")]
        >>> together = [ServiceAnomalyModel(s, config) for s in ("a", "b")]
        >>> for t in range(120):
        ...     rows = [{"cpu": float(t % 7)}]
        ...     expected = [m.observe_batch(rows, [t]).scores for m in apart]
        ...     got = observe_together([(m, rows, [t]) for m in together])
        ...     assert [v.scores.tolist() for v in got] == [e.tolist() for e in expected]
    """
    return run_together([model.observe_steps(rows, ts, learn=learn) for model, rows, ts in batches])


def episodes_per_service_day(models: Iterable[ServiceAnomalyModel]) -> float:
    """Episodes opened per service-day of event time, over these models (NaN before any span).

    Examples:
        >>> episodes_per_service_day([])
        nan
    """
    opened = 0
    days = 0.0
    for model in models:
        span = model.last_ts_s - model.first_ts_s
        if span > 0:
            opened += model.episodes_opened
            days += span / _DAY_S
    return opened / days if days > 0 else math.nan
