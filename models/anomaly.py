"""One service's anomaly model: robust scaling, Half-Space Trees, adaptive threshold, cooldown.

The model is pure: it is fed rows of feature values with event times and returns a verdict
for each. It works on micro-batches: every stateful part (scaler baselines, HST mass windows,
threshold quantile) changes only at known event counts, so a batch is processed in segments
between those points and gives exactly the verdicts of processing its rows one at a time. The
detector and ``vigil replay`` both drive it, so offline and live results agree whatever the
batch boundaries.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from models.explain import FeatureContribution, top_contributions
from models.hst import Engine
from models.scaling import RobustScaler
from models.scoring import Detector, RowScorer
from models.seasonal import SeasonalBaseline
from models.threshold import AdaptiveThreshold
from models.trees import Steps, run_steps, run_together

__all__ = [
    "AnomalyConfig",
    "BatchVerdict",
    "Deviations",
    "ServiceAnomalyModel",
    "Verdict",
    "observe_together",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    """Everything that shapes a service's anomaly model, in one place.

    Attributes:
        n_trees: Half-Space Trees: number of trees.
        height: Half-Space Trees: tree height.
        window_size: Half-Space Trees: observations per mass window.
        seed: Seed of the trees' random splits (shared by every service, so services with the
            same number of features share one tree structure).
        engine: ``numpy`` (micro-batches) or ``river`` (the per-event reference); same scores.
        warmup_events: Events a (re)built model learns before it may alert (at least one
            HST window: HST scores 0 until its first window is complete).
        target_alert_rate: Share of events that should alert once warmed up.
        threshold_window: Recent scores the adaptive threshold is taken over.
        threshold_override: A fixed threshold, replacing the adaptive one.
        cooldown_s: After an alert, further anomalies of the service within this many seconds
            of event time belong to the same episode and are suppressed.
        scaler_window: Recent values per feature that define the robust baseline.
        top_k: How many contributing features an explanation lists.
        critical_margin: A score this far from the threshold towards 1 (as a share of the
            gap) is critical rather than a warning.
        detector: How a row of robust z-scores becomes a score: ``hst`` (Half-Space Trees),
            ``robust_z`` (mean absolute z-score) or ``ensemble`` (their mean).
        season_s: Length of the seasonal cycle in event-time seconds (86,400: daily; 604,800:
            weekly); features are scored as residuals against their seasonal baseline. 0 turns
            seasonal baselines off (raw values are scored).
        season_buckets: Buckets per season (288 over a day: five-minute buckets).
        season_alpha: Share of the way a season bucket moves towards newly seen values per fold.
    """

    n_trees: int = 10
    height: int = 8
    window_size: int = 250
    seed: int = 42
    engine: Engine = "numpy"
    warmup_events: int = 500
    target_alert_rate: float = 0.001
    threshold_window: int = 10_000
    threshold_override: float | None = None
    cooldown_s: float = 300.0
    scaler_window: int = 1024
    top_k: int = 3
    critical_margin: float = 0.5
    detector: Detector = "ensemble"
    season_s: float = 86_400.0
    season_buckets: int = 288
    season_alpha: float = 0.2


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the model concluded about one observation."""

    score: float
    threshold: float
    alert: bool
    severity: str
    warming_up: bool
    suppressed: bool
    model_version: str
    top_features: list[FeatureContribution] = field(default_factory=list)
    missing_features: tuple[str, ...] = ()
    new_features: tuple[str, ...] = ()
    candidate_started: bool = False
    """True when this event's new features started a model over the grown feature set."""


@dataclass(frozen=True, slots=True)
class Deviations:
    """Rows ``start:end`` of a batch over one feature set: their robust z-scores (seasonal
    baseline removed; a missing value is 0, at the baseline) and the raw values they came from
    (NaN where missing). Incident risk reads the raw values, against its own trailing
    baseline (see ``stream.features.risk``), without decoding the events again.
    """

    start: int
    end: int
    names: tuple[str, ...]
    z: FloatArray
    values: FloatArray
    """The raw values the z-scores came from (NaN where a value was missing)."""


@dataclass
class BatchVerdict:
    """Verdicts for a batch of rows, as arrays; :meth:`verdict` builds one row's Verdict."""

    scores: FloatArray
    thresholds: FloatArray
    warming_up: BoolArray
    exceeded: BoolArray
    alerts: BoolArray
    suppressed: BoolArray
    generation: npt.NDArray[np.int64]
    missing: list[tuple[str, ...]]
    new_features: list[tuple[str, ...]]
    candidate_started: BoolArray
    explanations: dict[int, list[FeatureContribution]]
    critical_margin: float
    deviations: list[Deviations] = field(default_factory=list)
    """The rows' robust z-scores, one entry per run of rows over the same feature set."""

    def severity(self, i: int) -> str:
        """``critical`` when row ``i``'s score is far past its threshold, else ``warning``."""
        threshold = float(self.thresholds[i])
        critical_at = threshold + (1.0 - threshold) * self.critical_margin
        return "critical" if self.scores[i] >= critical_at else "warning"

    def verdict(self, i: int) -> Verdict:
        """Row ``i`` as a :class:`Verdict`."""
        return Verdict(
            score=float(self.scores[i]),
            threshold=float(self.thresholds[i]),
            alert=bool(self.alerts[i]),
            severity=self.severity(i),
            warming_up=bool(self.warming_up[i]),
            suppressed=bool(self.suppressed[i]),
            model_version=str(int(self.generation[i])),
            top_features=self.explanations.get(i, []),
            missing_features=self.missing[i],
            new_features=self.new_features[i],
            candidate_started=bool(self.candidate_started[i]),
        )


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

    The scan runs in C (lazy iterators), stopping at the first such row.

    Examples:
        >>> _first_with_unknown([{"a": 1}, {"a": 1, "b": 2}, {"c": 3}], 0, {"a", "b"})
        2
        >>> _first_with_unknown([{"a": 1}], 0, {"a"})
        1
    """
    within = map(known.issuperset, itertools.islice(rows, start, None))
    return next(itertools.compress(itertools.count(start), map(operator.not_, within)), len(rows))


def _empty_batch(n: int, margin: float) -> BatchVerdict:
    thresholds = np.empty(n)
    thresholds.fill(math.inf)
    exceeded, alerts, suppressed, candidate_started = np.zeros((4, n), dtype=bool)  # one alloc
    return BatchVerdict(
        scores=np.zeros(n),
        thresholds=thresholds,
        warming_up=np.ones(n, dtype=bool),
        exceeded=exceeded,
        alerts=alerts,
        suppressed=suppressed,
        generation=np.zeros(n, dtype=np.int64),
        missing=[()] * n,
        new_features=[()] * n,
        candidate_started=candidate_started,
        explanations={},
        critical_margin=margin,
    )


class _ScoringCore:
    """Trees and threshold over one fixed feature set."""

    __slots__ = ("feature_names", "generation", "learned", "scorer", "threshold")

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
        )
        self.threshold = AdaptiveThreshold(
            target_rate=config.target_alert_rate,
            window=config.threshold_window,
            override=config.threshold_override,
        )
        self.learned = 0


class ServiceAnomalyModel:
    """The anomaly model of one service.

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
        >>> for t in range(2000):
        ...     v = model.observe({"latency": rng.gauss(100, 5), "cpu": rng.gauss(50, 2)}, t)
        >>> spike = model.observe({"latency": 400.0, "cpu": 50.0}, 9999)
        >>> spike.alert, spike.top_features[0].name
        (True, 'latency')
    """

    def __init__(self, service: str, config: AnomalyConfig) -> None:
        self.service = service
        self.config = config
        self._scaler = RobustScaler(window=config.scaler_window)
        self._seasonal = (
            SeasonalBaseline(config.season_s, config.season_buckets, config.season_alpha)
            if config.season_s > 0
            else None
        )
        self._core: _ScoringCore | None = None
        self._candidate: _ScoringCore | None = None
        self._last_alert_ts: float | None = None
        # HST scores 0 until its first mass window is complete: never alert before that.
        self._warmup = max(config.warmup_events, config.window_size)
        self.events_seen = 0

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features the current model scores."""
        return self._core.feature_names if self._core is not None else ()

    @property
    def version(self) -> str:
        """The model generation, bumped when the feature set changes."""
        return f"{self._core.generation if self._core is not None else 0}"

    @property
    def threshold(self) -> float:
        """The alert threshold in force."""
        return self._core.threshold.value if self._core is not None else math.inf

    def nbytes(self) -> int:
        """Bytes of array state held (scaler windows, HST masses, threshold window)."""
        cores = [c for c in (self._core, self._candidate) if c is not None]
        seasonal = self._seasonal.nbytes() if self._seasonal is not None else 0
        return (
            self._scaler.nbytes()
            + seasonal
            + sum(c.scorer.nbytes + c.threshold.nbytes() for c in cores)
        )

    def observe(self, x: Mapping[str, float], ts_s: float, *, learn: bool = True) -> Verdict:
        """Score one event at event time ``ts_s``, then learn from it unless told not to."""
        return self.observe_batch([x], [ts_s], learn=learn).verdict(0)

    def observe_batch(
        self, rows: Sequence[Mapping[str, float]], ts_s: Sequence[float], *, learn: bool = True
    ) -> BatchVerdict:
        """Score each row (then learn it unless ``learn`` is false), in order.

        With ``learn=False`` nothing changes: not the models, the threshold nor the cooldown.
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
        out = _empty_batch(n, self.config.critical_margin)
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

    # -- segments -------------------------------------------------------------------------------

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
        yield from self._run(core, rows, ts_s, start, end, out, learn=learn)
        return end

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
    ) -> Steps[None]:
        names = core.feature_names
        candidate = self._candidate if learn else None
        all_names = names if candidate is None else candidate.feature_names
        X = _matrix(rows[start:end], all_names)
        expected_all, z_all = self._deviations(X, ts_s[start:end], all_names, learn=learn)
        if all_names == names:
            z, expected, values = z_all, expected_all, X
        else:
            columns = [all_names.index(n) for n in names]
            z, expected, values = z_all[:, columns], expected_all[:, columns], X[:, columns]
        out.deviations.append(Deviations(start, end, names, z, values))
        scores = yield from core.scorer.score_steps(z, learn=learn)
        warming = np.arange(end - start) < self._warmup - core.learned
        thresholds = np.empty(end - start)
        thresholds.fill(core.threshold.value)
        if learn:
            # Scores from HST's first window are all 0: they would drag the threshold to 0.
            first = max(0, self.config.window_size - core.learned)
            if first < end - start:
                thresholds[first:] = core.threshold.thresholds_learn(scores[first:])
            core.learned += end - start
            self.events_seen += end - start
            if candidate is not None:
                yield from self._learn_candidate(candidate, z_all)
        exceeded = ~warming & (scores >= thresholds)
        sl = slice(start, end)
        out.scores[sl], out.thresholds[sl], out.warming_up[sl] = scores, thresholds, warming
        out.exceeded[sl] = exceeded
        out.generation[sl] = core.generation
        missing = np.isnan(values)
        if missing.any():
            for i in np.flatnonzero(missing.any(axis=1)):
                out.missing[start + int(i)] = tuple(
                    n for n, m in zip(names, missing[i], strict=True) if m
                )
        for i in np.flatnonzero(exceeded) if exceeded.any() else ():
            row = start + int(i)
            ts = float(ts_s[row])
            in_cooldown = (
                self._last_alert_ts is not None
                and ts - self._last_alert_ts < self.config.cooldown_s
            )
            out.suppressed[row] = in_cooldown
            out.alerts[row] = not in_cooldown
            if not in_cooldown and learn:
                self._last_alert_ts = ts
            out.explanations[row] = top_contributions(
                dict(zip(names, z[i].tolist(), strict=True)),
                {n: v for n, v in zip(names, values[i].tolist(), strict=True) if v == v},
                dict(zip(names, expected[i].tolist(), strict=True)),
                k=self.config.top_k,
            )

    def _deviations(
        self, X: FloatArray, ts_s: Sequence[float], names: tuple[str, ...], *, learn: bool
    ) -> tuple[FloatArray, FloatArray]:
        """Expected values (seasonal baseline plus the residuals' median) and robust z-scores.

        Without seasonality the expected value is the running median of the raw values.
        """
        if self._seasonal is None:
            z, medians = self._scaler.scale_batch(X, names, learn=learn)
            return medians, z
        seasonal = self._seasonal.baselines_learn(
            X, np.asarray(ts_s, dtype=np.float64), names, learn=learn
        )
        # No baseline yet (NaN): the residual is missing, imputed neutral and not learned.
        z, medians = self._scaler.scale_batch(X - seasonal, names, learn=learn)
        return seasonal + medians, z

    def _learn_candidate(self, candidate: _ScoringCore, z: FloatArray) -> Steps[None]:
        scores = yield from candidate.scorer.score_steps(z, learn=True)
        first = max(0, self.config.window_size - candidate.learned)
        if first < len(scores):
            candidate.threshold.thresholds_learn(scores[first:])
        candidate.learned += len(scores)
        if candidate.learned >= self._warmup:
            self._core, self._candidate = candidate, None

    def _grow_candidate(self, new: tuple[str, ...]) -> bool:
        """Start (or restart, wider) the candidate model; False if it already covers ``new``."""
        assert self._core is not None
        if self._candidate is not None and set(new) <= set(self._candidate.feature_names):
            return False
        base = self._candidate or self._core
        names = tuple(sorted({*base.feature_names, *new}))
        self._candidate = _ScoringCore(names, self._core.generation + 1, self.config)
        return True


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
