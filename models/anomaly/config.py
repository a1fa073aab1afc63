"""What shapes a service's anomaly model: sizes, budget, episodes and per-metric direction."""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass
from typing import Final, Literal

from models.anomaly.hst import Engine
from models.anomaly.scoring import Detector
from models.fingerprint import short_id

__all__ = [
    "DEFAULT_DIRECTIONS",
    "STATE_FIELDS",
    "AnomalyConfig",
    "Direction",
    "DirectionRule",
    "ServiceRule",
    "state_id",
]

Direction = Literal["up", "down", "both"]
"""Which deviations of a metric are anomalies: rises, drops, or either."""


@dataclass(frozen=True, slots=True)
class DirectionRule:
    """Metrics whose name matches ``metric`` (a glob, case-insensitive) alert on ``direction``.

    Examples:
        >>> DirectionRule("err_*", "up").matches("ERR_5XX")
        True
    """

    metric: str
    direction: Direction

    def matches(self, name: str) -> bool:
        """Whether ``name`` matches this rule's pattern."""
        return _glob(self.metric).match(name) is not None


@dataclass(frozen=True, slots=True)
class ServiceRule:
    """Services whose name matches ``service`` (a glob) spend ``budget_per_day`` instead."""

    service: str
    budget_per_day: float

    def matches(self, name: str) -> bool:
        """Whether ``name`` matches this rule's pattern."""
        return _glob(self.service).match(name) is not None


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE)


_UP = (
    "*err*", "*fail*", "*5xx*", "*4xx*", "*exception*", "*timeout*", "*fatal*", "*warn*",
    "*latency*", "*duration*", "*_p50", "*_p9*", "*cpu*", "*mem*", "*queue*", "*lag*",
    "*restart*", "*retr*", "*reject*", "*throttl*", "*saturation*", "templates_new",
)  # fmt: skip
_DOWN = ("*success*", "*availability*", "*hit_rat*", "*apdex*", "*uptime*")

DEFAULT_DIRECTIONS: tuple[DirectionRule, ...] = (
    *(DirectionRule(p, "up") for p in _UP),
    *(DirectionRule(p, "down") for p in _DOWN),
)
"""Applied after the operator's own rules: errors, failures, latency and saturation alert on
rises only (errors dropping to 0 is good news); success rates and availability on drops only;
every other metric (traffic, sizes, unnamed ones) on both."""


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
        budget_per_day: False episodes a service may open per day of its own samples: the
            calibrated threshold is ``alpha = budget_per_day * cadence_s / 86_400`` per sample.
        calibration_window: Recent raw scores the calibration is taken over.
        threshold_override: A fixed threshold on the calibrated score ``1 - p``.
        resolve_after: Normal samples (of the service's own cadence) that close an episode: the
            cooldown, counted in samples.
        max_withheld: Samples of one open episode withheld from learning, at most: a state
            that lasts longer is learned (it becomes the new normal).
        shift_after: Samples of an episode in which a metric stays at least ``min_effect``
            robust sds off, on one side, before its baseline moves there (a level shift); 0
            turns level shifts off.
        min_effect: An alert needs a metric at least this many robust sds from its expected
            value (rarity alone is not enough: a flat gauge's float jitter is rare).
        scaler_window: Recent values per feature that define the robust baseline.
        top_k: How many contributing features an explanation lists.
        critical_margin: ``critical`` when ``-log10 p`` is past the threshold's by this share.
        detector: How a row of robust z-scores becomes a raw score: ``hst`` (Half-Space Trees),
            ``robust_z`` (mean absolute z-score) or ``ensemble`` (their mean).
        season_s: Length of the seasonal cycle in event-time seconds (86,400: daily; 604,800:
            weekly); features are scored as residuals against their seasonal baseline. 0 turns
            seasonal baselines off (raw values are scored).
        season_buckets: Buckets per season (288 over a day: five-minute buckets).
        season_alpha: Share of the way a season bucket moves towards newly seen values per fold.
        directions: The operator's direction rules, tried before :data:`DEFAULT_DIRECTIONS`.
        services: Per-service budgets (first match wins; others use ``budget_per_day``).
        resolutions: Features whose resolution is known before any of their values differ
            (a count moves by whole units), as ``(name, step)`` pairs: their spreads never go
            below it. Other features learn theirs from the values seen, so until a feature
            first moves its spread is unknown and that first move looks huge.
    """

    n_trees: int = 10
    height: int = 8
    window_size: int = 250
    seed: int = 42
    engine: Engine = "numpy"
    warmup_events: int = 500
    budget_per_day: float = 0.25
    calibration_window: int = 4096
    threshold_override: float | None = None
    resolve_after: int = 5
    max_withheld: int = 120
    shift_after: int = 5
    min_effect: float = 3.0
    scaler_window: int = 1024
    top_k: int = 3
    critical_margin: float = 0.5
    detector: Detector = "ensemble"
    season_s: float = 86_400.0
    season_buckets: int = 288
    season_alpha: float = 0.2
    directions: tuple[DirectionRule, ...] = ()
    services: tuple[ServiceRule, ...] = ()
    resolutions: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.budget_per_day <= 0:
            raise ValueError("budget_per_day must be positive")
        if self.resolve_after < 1 or self.shift_after < 0 or self.max_withheld < 0:
            raise ValueError("resolve_after must be at least 1, shift_after at least 0")
        if any(not step > 0 for _, step in self.resolutions):
            raise ValueError("resolutions must be positive")
        for rule in self.services:
            if rule.budget_per_day <= 0:
                raise ValueError(f"budget_per_day of {rule.service!r} must be positive")

    def direction_of(self, metric: str) -> Direction:
        """The direction of ``metric``: the first matching rule's, or ``both``.

        Examples:
            >>> config = AnomalyConfig(directions=(DirectionRule("cpu_*", "both"),))
            >>> [config.direction_of(m) for m in ("err_5xx", "cpu_p95", "req_rate")]
            ['up', 'both', 'both']
        """
        for rule in (*self.directions, *DEFAULT_DIRECTIONS):
            if rule.matches(metric):
                return rule.direction
        return "both"

    def budget_for(self, service: str) -> float:
        """False episodes per day ``service`` may open.

        Examples:
            >>> AnomalyConfig(services=(ServiceRule("pay*", 2.0),)).budget_for("payments")
            2.0
        """
        for rule in self.services:
            if rule.matches(service):
                return rule.budget_per_day
        return self.budget_per_day


STATE_FIELDS: Final = (
    "n_trees",
    "height",
    "window_size",
    "seed",
    "engine",
    "calibration_window",
    "scaler_window",
    "detector",
    "season_s",
    "season_buckets",
    "season_alpha",
    "resolutions",
)
"""The parameters that shape a model's learned state (tree shape and seed, windows, the
channels the calibration holds, the seasonal profile, feature resolutions). The others decide
what the state says (budgets, thresholds, directions, episodes, warm-up, explanations) and
apply to a restored model at once (:meth:`ServiceAnomalyModel.reconfigure`)."""


def state_id(config: AnomalyConfig) -> str:
    """A short id of the parameters in :data:`STATE_FIELDS`: a snapshot learned under another
    is not loaded; one that differs only in decisions is.

    Examples:
        >>> state_id(AnomalyConfig()) == state_id(AnomalyConfig(budget_per_day=5.0))
        True
        >>> state_id(AnomalyConfig()) == state_id(AnomalyConfig(scaler_window=512))
        False
    """
    fields = {name: getattr(config, name) for name in STATE_FIELDS}
    return short_id(fields)
