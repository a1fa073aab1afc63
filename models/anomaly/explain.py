"""Explanations: which features made an observation unusual, in an operator's units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["FeatureContribution", "top_contributions"]


@dataclass(frozen=True, slots=True)
class FeatureContribution:
    """One feature's part in an anomaly: its value, its baseline and its share of the deviation."""

    name: str
    value: float
    baseline: float
    contribution: float


def top_contributions(
    z_scores: Mapping[str, float],
    values: Mapping[str, float],
    baselines: Mapping[str, float],
    k: int = 3,
) -> list[FeatureContribution]:
    """The ``k`` features that deviate most from their baselines, as shares of the deviation.

    Each feature's contribution is its absolute robust z-score divided by the sum over all
    features, so contributions are in [0, 1] and comparable across metrics of any scale.
    Features absent from ``values`` (imputed at their baseline) contribute nothing.

    Examples:
        >>> top = top_contributions(
        ...     {"latency_p95": 8.0, "cpu_p95": 1.0, "err_5xx": -1.0},
        ...     {"latency_p95": 1830.0, "cpu_p95": 71.0, "err_5xx": 2.0},
        ...     {"latency_p95": 410.0, "cpu_p95": 70.0, "err_5xx": 3.0},
        ...     k=2,
        ... )
        >>> [(c.name, c.contribution) for c in top]
        [('latency_p95', 0.8), ('cpu_p95', 0.1)]
    """
    present = {name: abs(z) for name, z in z_scores.items() if name in values}
    total = sum(present.values())
    if total <= 0.0:
        return []
    ranked = sorted(present.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [
        FeatureContribution(
            name=name,
            value=float(values[name]),
            baseline=float(baselines[name]),
            contribution=round(deviation / total, 4),
        )
        for name, deviation in ranked
        if deviation > 0.0
    ]
