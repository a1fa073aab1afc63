"""One service's anomaly model: robust scaling, Half-Space Trees, adaptive threshold, cooldown.

The model is pure: it is fed feature dicts with event times and returns a :class:`Verdict`
for each. The detector and ``vigil replay`` both drive it, so offline and live results agree.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from models.explain import FeatureContribution, top_contributions
from models.hst import AnomalyScorer, RiverHST
from models.scaling import RobustScaler
from models.threshold import AdaptiveThreshold

__all__ = ["AnomalyConfig", "ServiceAnomalyModel", "Verdict"]


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    """Everything that shapes a service's anomaly model, in one place.

    Attributes:
        n_trees: Half-Space Trees: number of trees.
        height: Half-Space Trees: tree height.
        window_size: Half-Space Trees: observations per mass window.
        seed: Base seed; each service's trees are seeded from it and the service name.
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
    """

    n_trees: int = 10
    height: int = 8
    window_size: int = 250
    seed: int = 42
    warmup_events: int = 500
    target_alert_rate: float = 0.001
    threshold_window: int = 10_000
    threshold_override: float | None = None
    cooldown_s: float = 300.0
    scaler_window: int = 1024
    top_k: int = 3
    critical_margin: float = 0.5


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


class _ScoringCore:
    """Trees and threshold over one fixed feature set."""

    __slots__ = ("feature_names", "generation", "learned", "scorer", "threshold")

    def __init__(
        self, feature_names: tuple[str, ...], generation: int, config: AnomalyConfig, seed: int
    ) -> None:
        self.feature_names = feature_names
        self.generation = generation
        self.scorer: AnomalyScorer = RiverHST(
            n_trees=config.n_trees,
            height=config.height,
            window_size=config.window_size,
            seed=seed + generation,
        )
        self.threshold = AdaptiveThreshold(
            target_rate=config.target_alert_rate,
            window=config.threshold_window,
            override=config.threshold_override,
        )
        self.learned = 0


def service_seed(base_seed: int, service: str) -> int:
    """A deterministic per-service seed (Python's ``hash`` is salted per process).

    Examples:
        >>> service_seed(42, "payments") == service_seed(42, "payments")
        True
    """
    return (base_seed * 1_000_003 + zlib.crc32(service.encode())) % (2**31)


class ServiceAnomalyModel:
    """The anomaly model of one service.

    Features are the service's metric names. The first event fixes the feature set; when new
    names appear later, a candidate model over the union learns alongside the current one and
    replaces it once warmed up, so new metrics are used without a blind spot. Names missing
    from an event are imputed at their baseline (a neutral value) and reported in the verdict.

    Args:
        service: The service this model belongs to (seeds its trees).
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
        self._seed = service_seed(config.seed, service)
        self._scaler = RobustScaler(window=config.scaler_window)
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
        return self._core.threshold.value if self._core is not None else float("inf")

    def observe(self, x: Mapping[str, float], ts_s: float, *, learn: bool = True) -> Verdict:
        """Score ``x`` (an event at event time ``ts_s``), then learn from it unless told not to.

        With ``learn=False`` nothing changes: not the models, the threshold nor the cooldown.
        """
        core = self._core
        if core is None:
            core = _ScoringCore(tuple(sorted(x)), 1, self.config, self._seed)
            if learn:
                self._core = core
        new = tuple(sorted(name for name in x if name not in core.feature_names))
        candidate_started = bool(new) and learn and self._grow_candidate(new)

        z = self._scaler.z_scores(x, core.feature_names)
        scaled = {name: self._scaler.squash_z(value) for name, value in z.items()}
        score = core.scorer.score_one(scaled)
        threshold = core.threshold.value
        warming_up = core.learned < self._warmup
        exceeded = not warming_up and core.threshold.is_exceeded(score)
        suppressed = (
            exceeded
            and self._last_alert_ts is not None
            and ts_s - self._last_alert_ts < self.config.cooldown_s
        )
        alert = exceeded and not suppressed
        missing = tuple(name for name in core.feature_names if name not in x)
        top: list[FeatureContribution] = []
        if exceeded:
            top = top_contributions(
                z,
                x,
                {name: self._scaler.baseline(name).median for name in z},
                k=self.config.top_k,
            )
        verdict = Verdict(
            score=score,
            threshold=threshold,
            alert=alert,
            severity=self._severity(score, threshold),
            warming_up=warming_up,
            suppressed=suppressed,
            model_version=str(core.generation),
            top_features=top,
            missing_features=missing,
            new_features=new,
            candidate_started=candidate_started,
        )
        if learn:
            self._learn(core, x, scaled, score)
            if alert:
                self._last_alert_ts = ts_s
        return verdict

    def _severity(self, score: float, threshold: float) -> str:
        critical_at = threshold + (1.0 - threshold) * self.config.critical_margin
        return "critical" if score >= critical_at else "warning"

    def _learn(
        self,
        core: _ScoringCore,
        x: Mapping[str, float],
        scaled: Mapping[str, float],
        score: float,
    ) -> None:
        self.events_seen += 1
        self._learn_core(core, scaled, score)
        candidate = self._candidate
        if candidate is not None:
            cand_scaled = self._scaler.transform_one(x, candidate.feature_names)
            self._learn_core(candidate, cand_scaled, candidate.scorer.score_one(cand_scaled))
            if candidate.learned >= self._warmup:
                self._core, self._candidate = candidate, None
        # The scaler learns last so an event is never scaled against its own value.
        self._scaler.learn_one(x)

    def _learn_core(self, core: _ScoringCore, scaled: Mapping[str, float], score: float) -> None:
        # Scores from HST's first window are all 0: they would drag the threshold to 0.
        if core.learned >= self.config.window_size:
            core.threshold.learn_one(score)
        core.scorer.learn_one(scaled)
        core.learned += 1

    def _grow_candidate(self, new: tuple[str, ...]) -> bool:
        """Start (or restart, wider) the candidate model; False if it already covers ``new``."""
        assert self._core is not None
        if self._candidate is not None and set(new) <= set(self._candidate.feature_names):
            return False
        base = self._candidate or self._core
        names = tuple(sorted({*base.feature_names, *new}))
        self._candidate = _ScoringCore(names, self._core.generation + 1, self.config, self._seed)
        return True
