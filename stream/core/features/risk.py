"""Incident-risk feature vectors: one per service per step of event time (pure).

A risk vector summarises one service's step (default one minute) of metric events:

- ``z:<metric>``: the step's mean value against the service's own trailing baseline (median
  and MAD of its last ``baseline_steps`` step means, default six hours), as a robust z-score,
  log-compressed (``sign(z)·log1p(|z|)``: an incident's z of 200 should not swamp a
  precursor's 3 in a linear model). 0 until ``min_baseline_steps`` steps are known;
- ``dz:<metric>``: that value now minus ``trend_steps`` steps ago: slow creep and drift;
- ``anomaly_ratio``: the step's highest anomaly score over its threshold (0 while warming up);
- ``anomaly_flagged``: the share of the step's events that reached their threshold;
- ``deploy_recent``: the share of the step's events sent with ``deploy_recent``;
- ``log_ratio``, ``log_new_error_templates``: the service's latest closed log window, if any.

Why a trailing baseline rather than the anomaly model's z-scores: that model keeps learning
and its seasonal baseline needs a day per bucket, so a drift that builds over half an hour (the
usual precursor) fades from its z while it builds. Measured on the incident simulator (12
services, 3 days, prequential, see docs/incident_risk.md), the trailing z-scores carry the
signal; the anomaly model's z-scores as extra features added PR-AUC 0.161 → 0.167 at a
third more cost per vector, so they are left out (its score ratio stays).

A step's vector is emitted when the service's first event of a later step arrives, so
vectors follow event time alone: replay and live detection build the same ones.

Cost: :meth:`RiskFeatureBuilder.add_batch` takes every service's rows of a batch at once, so
its numpy calls are per batch and per feature set, not per service: one pass sums each run
of rows that share a service, feature set and step, a Python loop per run folds it into the
service's open step, and the steps closed are turned into vectors together (the trailing
baseline is kept step by step, since each step's refresh must see the steps before it; the
z-scores, trends and shares are then computed as matrices). Vectors are
:class:`~models.incident.FeatureRow` rows, not dicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from models.anomaly import Deviations
from stream.core.features.risk_runs import ServiceBatch, fold_runs, layout_of, runs_of
from stream.core.features.risk_steps import Located, ServiceSteps, labels_at
from stream.core.features.risk_vectors import RiskVector, StepVectors
from stream.schemas import Evidence

__all__ = ["RiskFeatureBuilder", "ServiceBatch"]

FloatArray = npt.NDArray[np.float64]


class RiskFeatureBuilder:
    """Builds risk vectors from the metric pipeline's per-service verdicts.

    Args:
        step_s: Event-time length of a step; one vector per service per step.
        trend_steps: How many steps back ``dz:`` features compare with.
        folded: Sum a step's values left to right, so that its vector is the same floats
            however batches cut its events (:mod:`~stream.core.features.risk_sums`; else
            batch by batch, equal to within rounding).

    Examples:
        >>> builder = RiskFeatureBuilder(step_s=60.0, trend_steps=2)
        >>> ev = Evidence(topic="t", partition=0, offset=0)
        >>> def rows(t, z, value):
        ...     dev = Deviations(0, 1, ("cpu",), np.array([[z]]), np.array([[value]]))
        ...     return builder.add("api", np.array([t]), [dev], np.array([0.5]),
        ...                        np.array([False]), np.array([False]), lambda i: ev)
        >>> [rows(t, z, 50.0) for t, z in [(0, 1.0), (30, 1.0), (60, 3.0)]][:2]
        [[], []]
        >>> (vector,) = rows(120, 9.0, 50.0)
        >>> vector.ts_s, vector.features["z:cpu"], vector.features["anomaly_ratio"]
        (60.0, 0.0, 0.5)
    """

    def __init__(
        self,
        *,
        step_s: float = 60.0,
        trend_steps: int = 15,
        smooth_steps: int = 5,
        baseline_steps: int = 360,
        min_baseline_steps: int = 30,
        folded: bool = False,
    ) -> None:
        if step_s <= 0 or trend_steps < 1 or not 1 <= min_baseline_steps <= baseline_steps:
            raise ValueError(
                "need step_s > 0, trend_steps >= 1 and 1 <= min_baseline_steps <= baseline_steps"
            )
        self.step_s = step_s
        self.trend_steps = trend_steps
        self.smooth_steps = max(0, min(smooth_steps, trend_steps))
        self.baseline_steps = baseline_steps
        self.min_baseline_steps = min_baseline_steps
        self.folded = folded
        self._services: dict[str, ServiceSteps] = {}
        self._vectors = StepVectors(
            trend_steps, self.smooth_steps, baseline_steps, min_baseline_steps
        )

    def __len__(self) -> int:
        return len(self._services)

    def __contains__(self, service: object) -> bool:
        """Whether this builder holds ``service`` (saw its metrics, and it was not forgotten)."""
        return service in self._services

    def add(
        self,
        service: str,
        ts_s: FloatArray,
        deviations: Sequence[Deviations],
        ratios: FloatArray,
        flagged: npt.NDArray[np.bool_],
        deploys: npt.NDArray[np.bool_],
        evidence: Callable[[int], Evidence],
    ) -> list[RiskVector]:
        """Fold one service's rows of a batch in; return the vectors of the steps they closed.

        Args:
            service: The service.
            ts_s: Event time of each row, in order.
            deviations: The rows' z-scores (row ranges relative to these rows).
            ratios: Each row's anomaly score over its threshold (0 while warming up).
            flagged: Whether each row's score reached its threshold.
            deploys: Whether each row was sent with ``deploy_recent``.
            evidence: Where row ``i`` is stored (asked only for a step's last row, and only if
                its vector alerts: it must stay valid until then).
        """
        ts = np.asarray(ts_s, dtype=np.float64)
        rows = ServiceBatch(service, np.arange(ts.size), ts, deviations)
        return self.add_batch([rows], ratios, flagged, deploys, evidence)

    def add_batch(
        self,
        batch: Sequence[ServiceBatch],
        ratios: FloatArray,
        flagged: npt.NDArray[np.bool_],
        deploys: npt.NDArray[np.bool_],
        evidence: Callable[[int], Evidence],
    ) -> list[RiskVector]:
        """Fold every service's rows of a batch in; return the vectors of the steps they closed
        (service by service in ``batch`` order, each service's in step order): the same
        vectors as :meth:`add` service by service.

        Args:
            batch: Each service's rows (a service at most once).
            ratios: Each batch row's anomaly score over its threshold (0 while warming up).
            flagged: Whether each batch row's score reached its threshold.
            deploys: Whether each batch row was sent with ``deploy_recent``.
            evidence: Where batch row ``i`` is stored (asked only for a step's last row, and
                only if its vector alerts: it must stay valid until then).
        """
        layout = layout_of(self._services, batch)
        if layout is None:
            return []
        runs = runs_of(batch, layout, ratios, flagged, deploys, self.step_s, folded=self.folded)
        closes = fold_runs(layout, runs, evidence)
        return self._vectors.close_all(closes) if closes else []

    def set_log_window(self, service: str, ratio: float, new_error_templates: int) -> None:
        """The service's latest closed log window: its score over threshold and new errors."""
        state = self._services.get(service)
        if state is None:
            state = self._services[service] = ServiceSteps()
        state.log = {
            "log_ratio": min(ratio, 10.0) if math.isfinite(ratio) else 0.0,
            "log_new_error_templates": float(new_error_templates),
        }

    def forget(self, service: str) -> None:
        """Drop a service's state (its partition went to another detector)."""
        self._services.pop(service, None)

    def export(self, services: Iterable[str]) -> dict[str, ServiceSteps]:
        """These services' state, for a snapshot (live objects: pickle them). An open step's
        evidence (and its event's labels) is looked up now: the batch it points into is gone
        once the snapshot is."""
        out: dict[str, ServiceSteps] = {}
        for service in services:
            state = self._services.get(service)
            if state is None:
                continue
            step = state.step
            if step is not None and step.locate is not None and type(step.locate) is not Located:
                step.locate = Located(
                    step.locate(step.last_row), labels_at(step.locate, step.last_row)
                )
            out[service] = state
        return out

    def install(self, states: Mapping[str, ServiceSteps]) -> None:
        """Take over services' state from :meth:`export` (replacing their own)."""
        self._services.update(states)
