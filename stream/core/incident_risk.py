"""Incident risk, the pure core shared by the detector and ``vigil replay``.

Metric verdicts become one risk vector per service per step (:mod:`stream.core.features.risk`);
each is given a probability of "an incident opens for this service within the horizon" by
its service group's model, alerts when that reaches the group's tuned threshold (once the
model has learned from ``min_positives`` positives: before, it has nothing to rank risk by,
and services in an open incident are not warned of it), and waits in
the :class:`~models.incident.labels.HorizonLabeler` for its label: positive when an incident
opens within the horizon after it, negative when the horizon (and a grace period for late
labels) passes without one, or whatever an operator's feedback says first. Every labelled
vector is learned once, and its prediction (made before any learning on it) is scored, so
all quality figures are prequential.

No I/O: the caller brings decoded events and tells event time to move on (:meth:`advance`).

Cost: a batch's vectors are built for all services at once, predicted per group as one
matrix, and held and learned as rows: no dict per vector unless it alerts (its alert id and
explanation) or negative sampling has the model learn it.

State shared by services is pooled per detector (``state="detector"``: a group's models
serve every service of the group this detector owns, :class:`~stream.core.risk_scope.PooledScope`)
or kept per input partition (``"partition"``: :mod:`stream.core.risk_lanes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.batch import RiskArtifact
from models.incident import HorizonLabeler, LabelledVector, RiskConfig
from models.incident.config import state_id as risk_state_id
from models.incident.episodes import HELD, INCIDENT, RiskEpisodes
from stream.core.features.risk import RiskFeatureBuilder
from stream.core.features.risk_vectors import RiskVector
from stream.core.pipeline import (
    BatchOutcome,
    Clock,
    EvidenceOf,
    config_id_of,
    utc_now,
)
from stream.core.risk_alerts import (
    BATCH_MODEL_NAME,
    MODEL_NAME,
    AlertKinds,
    RiskAlerts,
    alert_key,
)
from stream.core.risk_batch import BatchRows, add_metric_batch
from stream.core.risk_groups import Predicted, _Group
from stream.core.risk_lanes import PartitionLanes
from stream.core.risk_scope import PooledScope, RiskScope, StateScope
from stream.schemas import Alert, Feedback, IncidentEvent, MetricSample

__all__ = [
    "BatchRows",
    "FeedbackKind",
    "IncidentRiskPipeline",
    "RiskOutcome",
    "StateScope",
]

FeedbackKind = str
"""What a feedback message was about: ``incident_risk``, ``anomaly`` or ``unknown``."""

_MIN_BASELINE_S = 1800.0  # trailing z-scores wait for half an hour of history


@dataclass
class RiskOutcome:
    """What a metric batch did: alerts raised (firing and resolved), vectors predicted, and
    vectors over the threshold that raised nothing (their service's episode was open).

    Labels learned are counted by the labeler (``labeler.counts``)."""

    alerts: list[Alert] = field(default_factory=list)
    vectors: int = 0
    suppressed: int = 0
    probabilities: list[npt.NDArray[np.float64]] = field(default_factory=list)
    """The online models' probabilities of the vectors, an array per group."""


class IncidentRiskPipeline:
    """Risk vectors, predictions, alerts and labels for every service of a detector.

    Args:
        config: The incident-risk configuration (horizon, strategy, ...).
        step_s: One risk vector per service per this much event time.
        trend_s: How far back trend features compare with (event seconds).
        smooth_s: ``sz:`` features average the z-scores of this much event time (0: none).
        baseline_s: How much history the trailing baseline holds (event seconds).
        group_pattern: Services are grouped by this regex (see
            :func:`~stream.core.risk_groups.group_function`); one model per group.
        clock: The time stamped on alerts as ``detected_at``.
        champion_of: The sidecar's champion of a group, when alerts follow it (attribute
            of the same name).
        on_labelled: Told of every labelled vector as it is learned (attribute of the same
            name).
        state: ``detector``: one state per group, pooled over the detector's services;
            ``partition``: one per group and input partition (the evidence's), each vector
            predicted with the models of its own moment in its partition's order.
    """

    model_name = MODEL_NAME
    batch_model_name = BATCH_MODEL_NAME

    def __init__(
        self,
        config: RiskConfig,
        *,
        step_s: float = 60.0,
        trend_s: float = 900.0,
        smooth_s: float = 300.0,
        baseline_s: float = 21_600.0,
        group_pattern: str | None = None,
        clock: Clock = utc_now,
        champion_of: Callable[[str], RiskArtifact | None] | None = None,
        on_labelled: Callable[[str, LabelledVector], None] | None = None,
        state: StateScope = "detector",
    ) -> None:
        self.config = config
        self.state = state
        self.step_s = step_s
        self._group_pattern = group_pattern
        # The pipeline's own part of the state ids: state kept per partition is another.
        scope = "" if state == "detector" else f"-{state}"
        self._shape = f"-{step_s:g}-{group_pattern or ''}{scope}"
        self._alerts = RiskAlerts(clock, config.horizon_s)
        baseline_steps = max(2, round(baseline_s / step_s))
        self.features = RiskFeatureBuilder(
            step_s=step_s,
            trend_steps=max(1, round(trend_s / step_s)),
            smooth_steps=round(smooth_s / step_s),
            baseline_steps=baseline_steps,
            min_baseline_steps=min(baseline_steps, max(1, round(_MIN_BASELINE_S / step_s))),
            folded=state == "partition",
        )
        self.labeler = HorizonLabeler(config, keep_during=config.in_progress_gate)
        self._lanes: PartitionLanes | None = None
        self._scope: RiskScope
        if state == "partition":
            self._scope = self._lanes = PartitionLanes(config, step_s, group_pattern, self.labeler)
        else:
            self._scope = pooled = PooledScope(config, step_s, group_pattern, self.labeler)
            self._groups = pooled.groups
        self.episodes = RiskEpisodes(
            open_steps=config.open_steps, resolve_steps=config.resolve_steps
        )
        self._alert_kinds = AlertKinds()
        self.latest_event_s = -math.inf
        self.vectors_total = 0
        self.hold_labels = False
        """True while incident labels may be waiting unread (the detector's incidents topic
        has a backlog): no vector becomes a negative meanwhile."""
        self.champion_of = champion_of
        """The sidecar's champion for a group, when alerts should follow it
        (``VIGIL_INCIDENT_SCORER=champion``): it then decides which vectors alert, with its
        own holdout-tuned threshold and explanation; the online model keeps learning (and
        its quality figures are the online model's)."""
        self.on_labelled = on_labelled
        """Told of every labelled vector as it is learned, with its group (evaluation)."""
        self.on_predicted: Callable[[str, float, float, float], None] | None = None
        """Told of every vector as it is predicted: service, event time, the probability that
        decides its alert and the threshold in force (evaluation's timeline)."""
        self.on_incident_event: Callable[[IncidentEvent], None] | None = None
        """Told of every IncidentEvent applied (evaluation's timeline)."""

    # -- metric events ----------------------------------------------------------------------

    def on_metrics(
        self, events: Sequence[MetricSample], outcome: BatchOutcome, evidence: EvidenceOf
    ) -> RiskOutcome:
        """Fold a scored metric batch in; predict (and maybe alert) on the steps it closed."""
        out = RiskOutcome()
        vectors = add_metric_batch(self.features, events, outcome, evidence)
        for rows in outcome.by_service:
            if len(rows.ts_s):
                self.latest_event_s = max(self.latest_event_s, float(max(rows.ts_s)))
                if self._lanes is not None:
                    self._lanes.assign(rows.service, evidence(int(rows.indices[0])).partition)
        if vectors:
            self._predict(vectors, out)
        return out

    def on_log_window(self, service: str, ratio: float, new_error_templates: int) -> None:
        """A closed log window of ``service``: its features join the service's next vectors."""
        self.features.set_log_window(service, ratio, new_error_templates)

    def _predict(self, vectors: list[RiskVector], out: RiskOutcome) -> None:
        """Predict and decide vectors in event-time order, horizons passed before each
        learned first (where and how: the scope's)."""
        self._scope.predict(
            vectors,
            probabilities=out.probabilities,
            hold=self.hold_labels,
            learn=self._learn,
            decide=lambda item: self._decide(item, out),
            champion_of=self.champion_of,
        )
        out.vectors += len(vectors)
        self.vectors_total += len(vectors)

    def _decide(self, item: Predicted, out: RiskOutcome) -> None:
        """One predicted vector: its threshold, its episode's change (and alert), its label
        buffer entry."""
        vector, p, group, name, could_alert, held, champion, alert_p = item
        service = vector.service
        if champion is None:
            ready = group.model.positives >= self.config.min_positives
            if self.config.strategy == "episode_budget" and ready:
                self._budget(group, vector, could_alert)
            threshold = group.threshold.value
        else:  # the sidecar's champion decides; the online model still learns
            threshold = champion.threshold
            ready = True
        flags = 0 if could_alert else INCIDENT
        if held or not ready:
            flags |= HELD
        if self.on_predicted is not None:
            self.on_predicted(service, vector.ts_s, alert_p, threshold)
        change = self.episodes.step(
            service,
            vector.ts_s,
            alert_p,
            threshold=threshold,
            base_rate=group.threshold.base_rate,
            flags=flags,
        )
        firing = change is not None and change.status == "firing"
        # Only an alert can get feedback, so only an opening vector needs its key.
        key = alert_key(vector) if firing else ""
        labelled = self.labeler.add(
            service, vector.ts_s, vector.features, p, key, expire=not self.hold_labels
        )
        if labelled or self.labeler.holds_during:
            self._learn(labelled)
        if change is None:
            if could_alert and alert_p >= threshold and self.episodes.is_open(service):
                out.suppressed += 1
            return
        if firing:
            group.tracker.alert(service, vector.ts_s)
        else:
            group.tracker.resolved(service, vector.ts_s)
        if champion is None:
            strategy = group.threshold.strategy
            alert = self._alerts.online(
                name, group.model, strategy, vector, p, threshold, key, change
            )
        else:
            alert = self._alerts.champion(name, champion, vector, alert_p, key, change)
        self.remember_alerts([alert])
        out.alerts.append(alert)

    def _budget(self, group: _Group, vector: RiskVector, could_alert: bool) -> None:
        """Feed ``episode_budget``'s search, and search again when due."""
        group.budget.record(vector.service, vector.features, incident=not could_alert)
        if group.budget.due:
            found = group.budget.search(group.score_rows, group.threshold.base_rate)
            if found is not None:
                group.threshold.set_episode_threshold(found)

    # -- labels -----------------------------------------------------------------------------

    def on_incident(self, event: IncidentEvent) -> None:
        """An incident opened or resolved: label the vectors it settles and learn them."""
        if self.on_incident_event is not None:
            self.on_incident_event(event)
        ts_s = event.ts.timestamp()
        if event.status == "opened":
            labelled = self.labeler.opened(event.service, event.incident_id, ts_s)
            tracker = self._scope.tracker_of(event.service)
            if tracker is not None:  # None: a partition's, told once the service has one
                tracker.incident(event.service, event.incident_id, ts_s)
        else:
            labelled = self.labeler.resolved(event.service, event.incident_id, ts_s)
        self._learn(labelled)

    def on_feedback(self, feedback: Feedback) -> FeedbackKind:
        """An operator's verdict: a label for an incident-risk alert's vector, if still held.
        Returns what kind of alert the feedback was about."""
        kind = self._alert_kinds.kind_of(feedback.alert_id)
        if kind == "incident_risk" and feedback.verdict != "expected":
            item = self.labeler.feedback(
                feedback.alert_id, feedback.verdict == "true_positive", feedback.service
            )
            if item is not None:
                self._learn([item])
        return kind

    def remember_alerts(self, alerts: Iterable[Alert]) -> None:
        """Alerts published (any kind), so later feedback on them can be told apart."""
        self._alert_kinds.remember(alerts)

    def advance(self, now_s: float | None = None) -> None:
        """Event time reached ``now_s`` (default: the latest metric event): vectors whose
        horizon and grace passed without an incident become negatives, and are learned.
        Per partition, horizons pass only on each partition's grid as its vectors come (the
        latest event of a batch would make them depend on where fetches cut): then only an
        explicit ``now_s`` lets them pass, in every partition."""
        now = self.latest_event_s if now_s is None else now_s
        if math.isfinite(now) and not self.hold_labels:
            for expired in self._scope.expire(now, now_s is not None):
                self._learn(expired)

    def _learn(self, items: Sequence[LabelledVector]) -> None:
        """Learn labelled vectors, group by group, and score their predictions; the vectors
        found inside known incidents meanwhile teach the in-progress models."""
        self._scope.learn(items, self.labeler.take_during(), self.on_labelled)

    # -- state of a partition's services (snapshots, rebalances) ---------------------------

    @property
    def config_id(self) -> str:
        """A short id of everything that shapes the learned state (a snapshot taken under
        another is not loaded)."""
        return config_id_of(self.config) + self._shape

    @property
    def state_id(self) -> str:
        """A short id of what shapes the learned state: decisions (threshold, strategy,
        budgets, episode steps) are left out and apply to restored state at once."""
        return risk_state_id(self.config) + self._shape

    def export(self, services: Iterable[str], partition: int = 0) -> dict[str, Any]:
        """These services' state (those of input partition ``partition``), for a snapshot:
        feature history and open step, label buffer, episode; plus the group models (pooled:
        every group's, shared by the partitions' services; per partition: the partition's).
        Live objects: pickle them, do not keep."""
        services = list(services)
        return {
            "features": self.features.export(services),
            "buffers": self.labeler.export(services),
            "episodes": self.episodes.export(services),
            **self._scope.export(partition, self.latest_event_s),
        }

    def install(self, state: Mapping[str, Any], partition: int = 0) -> None:
        """Take over a partition's services' state from :meth:`export` (the group models:
        see :meth:`PooledScope.install` and :meth:`PartitionLanes.install`). Incidents this
        detector read after the snapshot was taken label the restored vectors they settle
        (learned once the group models are in place)."""
        self.features.install(state["features"])
        services = [*state["features"], *state["buffers"], *state["episodes"]]
        self._scope.install(partition, services, state)  # a partition's lanes come first
        settled = self.labeler.install(state["buffers"])
        self.episodes.install(state["episodes"])
        # Event time only moves on: a restore must not make horizons pass early or late.
        self.latest_event_s = max(self.latest_event_s, state["latest_event_s"])
        self._learn(settled)

    def forget(self, services: Iterable[str], partitions: Iterable[int] = ()) -> None:
        """Drop services' state (their partition went to another detector)."""
        services = list(services)
        for service in services:
            self.features.forget(service)
        self.episodes.forget(services)
        self.labeler.forget(services)
        self._scope.forget(partitions, services)

    # -- alerts and views -------------------------------------------------------------------

    def thresholds(self) -> dict[str, tuple[float, str]]:
        """Each group's threshold in force and the strategy that set it."""
        return self._scope.thresholds()

    def summaries(self) -> dict[str, dict[str, Any]]:
        """Prequential quality per group (see :class:`~models.incident.PrequentialTracker`),
        over the incidents of the services this detector holds."""
        return self._scope.summaries(self.features)

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` shows for incident risk."""
        return {
            "name": self.model_name,
            "config": asdict(self.config),
            "state": self.state,
            "step_s": self.step_s,
            "group_pattern": self._group_pattern,
            "vectors": self.vectors_total,
            "labels": dict(self.labeler.counts),
            "buffered_vectors": len(self.labeler),
            "episodes_open": len(self.episodes),
            "buffer_bytes": self.labeler.nbytes(),
            "groups": self._scope.describe(self.features),
        }
