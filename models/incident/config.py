"""The incident-risk configuration, shared by the labeler, model, threshold and tracker."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Final, Literal

from models.fingerprint import short_id

__all__ = [
    "DECISION_FIELDS",
    "STRATEGIES",
    "ClassWeight",
    "RiskConfig",
    "Strategy",
    "state_id",
]

ClassWeight = Literal["sqrt_balanced", "balanced", "none"]
"""How labelled vectors are weighted against the class imbalance (see
:class:`~models.incident.risk.IncidentRiskModel`)."""

Strategy = Literal["episode_budget", "max_f1", "recall_at_least", "alert_budget"]
"""How the alert threshold is tuned: a budget of risk alerts (episodes) per service-day, best
F1, the highest threshold keeping a target recall, or a fixed share of vectors alerting."""

STRATEGIES: tuple[Strategy, ...] = ("episode_budget", "max_f1", "recall_at_least", "alert_budget")


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """How incident risk is labelled, learned and turned into alerts.

    Args:
        horizon_s: H: a vector is positive when an incident of its service opens within H
            seconds after it.
        label_grace_s: How long past its horizon a vector waits for a late incident label
            before it becomes a negative.
        incident_max_s: An opened incident with no ``resolved`` is treated as over after this.
        max_vectors_per_service: Buffer bound per service; when full, the oldest vector is
            labelled negative early ("evicted").
        learning_rate: SGD step of the logistic regression.
        average_decay: Predictions use an exponential moving average of the SGD weights
            with this decay per update (0: the last weights as they are).
        l2: L2 penalty of the logistic regression.
        class_weight: ``balanced`` weighs each class by ``n / (2 n_y)``, ``sqrt_balanced`` by
            its square root, ``none`` not at all.
        negative_sampling: The share of negatives the model learns from (each with weight
            ``1 / negative_sampling``, so the class balance is unchanged); 1 learns every one.
            Negatives are ~97 % of labels and alike, and learning is most of a vector's cost.
        strategy: How the threshold is tuned (see :data:`Strategy`).
        episode_budget: ``episode_budget``'s risk alerts (episodes opened) per service-day.
        target_recall: ``recall_at_least``'s target.
        alert_budget: ``alert_budget``'s share of vectors that may alert.
        open_steps: An episode opens after this many consecutive vectors at or over the
            threshold (see :mod:`~models.incident.episodes`).
        resolve_steps: It resolves after this many consecutive vectors under the resolve
            level.
        in_progress_gate: No episode opens while the group's in-progress model (vectors
            inside known incidents against the rest) says an incident is more likely under
            way than not: its label has not arrived yet, and a warning would come too late.
        threshold_override: A fixed threshold in [0, 1] that replaces any strategy.
        tuning_window: How many recent labelled predictions thresholds are tuned on.
        min_positives: Below this many labelled positives in the tuning window, the
            label-based strategies fall back to ``alert_budget``.
        seed: Seed for anything random.

    Examples:
        >>> RiskConfig().horizon_s
        900.0
        >>> RiskConfig(target_recall=1.5)
        Traceback (most recent call last):
        ...
        ValueError: target_recall must be in (0, 1], got 1.5
    """

    horizon_s: float = 900.0
    label_grace_s: float = 900.0
    incident_max_s: float = 14_400.0
    max_vectors_per_service: int = 64
    learning_rate: float = 0.001
    average_decay: float = 0.999
    l2: float = 1e-4
    class_weight: ClassWeight = "sqrt_balanced"
    negative_sampling: float = 0.1
    strategy: Strategy = "episode_budget"
    episode_budget: float = 2.5
    target_recall: float = 0.80
    alert_budget: float = 0.01
    open_steps: int = 3
    resolve_steps: int = 5
    in_progress_gate: bool = True
    threshold_override: float | None = None
    tuning_window: int = 5_000
    min_positives: int = 10
    seed: int = 42

    def __post_init__(self) -> None:
        _check(
            math.isfinite(self.horizon_s) and self.horizon_s > 0, "horizon_s", "> 0", self.horizon_s
        )
        _check(
            math.isfinite(self.label_grace_s) and self.label_grace_s >= 0,
            "label_grace_s",
            ">= 0",
            self.label_grace_s,
        )
        _check(
            math.isfinite(self.incident_max_s) and self.incident_max_s > 0,
            "incident_max_s",
            "> 0",
            self.incident_max_s,
        )
        _check(
            self.max_vectors_per_service >= 1,
            "max_vectors_per_service",
            ">= 1",
            self.max_vectors_per_service,
        )
        _check(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            "learning_rate",
            "> 0",
            self.learning_rate,
        )
        _check(math.isfinite(self.l2) and self.l2 >= 0, "l2", ">= 0", self.l2)
        _check(0.0 <= self.average_decay < 1.0, "average_decay", "in [0, 1)", self.average_decay)
        _check(
            0.0 < self.negative_sampling <= 1.0,
            "negative_sampling",
            "in (0, 1]",
            self.negative_sampling,
        )
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        _check(
            math.isfinite(self.episode_budget) and self.episode_budget > 0,
            "episode_budget",
            "> 0",
            self.episode_budget,
        )
        _check(self.open_steps >= 1, "open_steps", ">= 1", self.open_steps)
        _check(self.resolve_steps >= 1, "resolve_steps", ">= 1", self.resolve_steps)
        _check(0.0 < self.target_recall <= 1.0, "target_recall", "in (0, 1]", self.target_recall)
        _check(0.0 < self.alert_budget < 1.0, "alert_budget", "in (0, 1)", self.alert_budget)
        if self.threshold_override is not None:
            _check(
                0.0 <= self.threshold_override <= 1.0,
                "threshold_override",
                "in [0, 1]",
                self.threshold_override,
            )
        _check(self.tuning_window >= 1, "tuning_window", ">= 1", self.tuning_window)
        _check(self.min_positives >= 1, "min_positives", ">= 1", self.min_positives)


def _check(ok: bool, name: str, requirement: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{name} must be {requirement}, got {value!r}")


DECISION_FIELDS: Final = (
    "threshold_override",
    "strategy",
    "episode_budget",
    "target_recall",
    "alert_budget",
    "open_steps",
    "resolve_steps",
)
"""The parameters that decide when learned risk alerts (threshold, strategy, budgets, episode
steps): they apply to restored state at once. Every other one shapes what is learned."""


STATE_FORMAT = 2
"""The shape of the risk family's state: bumped when it changes, so an older snapshot's risk
part starts fresh instead of meeting code that reads it otherwise (2: the prequential tracker
keeps each incident's service)."""


def state_id(config: RiskConfig) -> str:
    """A short id of the parameters outside :data:`DECISION_FIELDS`, and :data:`STATE_FORMAT`.

    Examples:
        >>> state_id(RiskConfig()) == state_id(RiskConfig(threshold_override=0.9))
        True
        >>> state_id(RiskConfig()) == state_id(RiskConfig(horizon_s=600.0))
        False
    """
    fields = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name not in DECISION_FIELDS
    }
    return short_id({**fields, "state_format": STATE_FORMAT})
