"""What a service's anomaly model concluded: one :class:`Verdict`, or a batch as arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from models.anomaly.explain import FeatureContribution

__all__ = ["BatchVerdict", "Deviations", "Verdict", "empty_batch"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the model concluded about one observation."""

    score: float
    """Calibrated: ``1 - p``, the share of this service's normal scores below this one."""
    threshold: float
    """``1 - alpha``: the calibrated score at which the service alerts."""
    alert: bool
    """This observation opened an episode."""
    severity: str
    warming_up: bool
    suppressed: bool
    """Anomalous, but an episode was already open."""
    model_version: str
    top_features: list[FeatureContribution] = field(default_factory=list)
    missing_features: tuple[str, ...] = ()
    new_features: tuple[str, ...] = ()
    candidate_started: bool = False
    """True when this event's new features started a model over the grown feature set."""
    resolved: bool = False
    """This observation closed the open episode."""
    started_s: float | None = None
    """Event time the episode opened or closed here started (None otherwise)."""
    raw_score: float = 0.0
    """The detector's score before calibration."""
    p_value: float = 1.0
    """Tail probability of the raw score among the service's normal scores."""
    z_scores: dict[str, float] = field(default_factory=dict)
    """Every feature's robust z at an observation that opened an episode (empty elsewhere):
    how far each metric is from its expected value, for ranking root-cause suspects."""


@dataclass(frozen=True, slots=True)
class Deviations:
    """Rows ``start:end`` of a batch over one feature set: their robust z-scores (seasonal
    baseline removed; a missing value is 0, at the baseline) and the raw values they came from
    (NaN where missing). Incident risk reads the raw values, against its own trailing
    baseline (see ``stream.core.features.risk``), without decoding the events again.
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
    """Anomalous after warm-up: opened an episode, or belongs to an open one."""
    alerts: BoolArray
    """Opened an episode."""
    suppressed: BoolArray
    generation: npt.NDArray[np.int64]
    missing: list[tuple[str, ...]]
    new_features: list[tuple[str, ...]]
    candidate_started: BoolArray
    explanations: dict[int, list[FeatureContribution]]
    critical_margin: float
    resolved: BoolArray
    started_s: FloatArray
    raw_scores: FloatArray
    p_values: FloatArray
    alphas: FloatArray
    in_episode: BoolArray
    """An episode was open at the row (its opening row included, its resolving row not)."""
    deviations: list[Deviations] = field(default_factory=list)
    """The rows' robust z-scores, one entry per run of rows over the same feature set."""
    shifts: dict[int, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    """Rows after which features' baselines moved: (feature, delta) pairs."""
    z_at_open: dict[int, dict[str, float]] = field(default_factory=dict)
    """Every feature's robust z at rows that opened an episode."""

    def severity(self, i: int) -> str:
        """``critical`` when row ``i``'s surprise (``-log10 p``) is past its threshold's by
        ``critical_margin``, else ``warning``."""
        p, alpha = float(self.p_values[i]), float(self.alphas[i])
        if p <= 0.0:
            return "critical"
        needed = -math.log10(max(alpha, 1e-300)) * (1.0 + self.critical_margin)
        return "critical" if -math.log10(p) >= needed else "warning"

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
            resolved=bool(self.resolved[i]),
            started_s=None if math.isnan(self.started_s[i]) else float(self.started_s[i]),
            raw_score=float(self.raw_scores[i]),
            p_value=float(self.p_values[i]),
            z_scores=self.z_at_open.get(i, {}),
        )


def empty_batch(n: int, margin: float) -> BatchVerdict:
    """Verdicts of ``n`` rows before anything is known: warming up, nothing flagged."""
    flags = np.zeros((7, n), dtype=bool)  # one allocation per type
    flags[6] = True
    values = np.zeros((6, n))
    values[1] = values[4] = 1.0
    values[2] = np.nan
    return BatchVerdict(
        scores=values[0],
        thresholds=values[1],
        warming_up=flags[6],
        exceeded=flags[0],
        alerts=flags[1],
        suppressed=flags[2],
        generation=np.zeros(n, dtype=np.int64),
        missing=[()] * n,
        new_features=[()] * n,
        candidate_started=flags[3],
        explanations={},
        critical_margin=margin,
        resolved=flags[4],
        started_s=values[2],
        raw_scores=values[3],
        p_values=values[4],
        alphas=values[5],
        in_episode=flags[5],
    )
