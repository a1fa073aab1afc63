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
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from models.batch import RiskArtifact
from models.incident import (
    HorizonLabeler,
    IncidentRiskModel,
    LabelledVector,
    PrequentialTracker,
    RiskConfig,
    RiskThreshold,
)
from models.incident.budget import EpisodeBudget
from models.incident.config import state_id as risk_state_id
from models.incident.episodes import HELD, INCIDENT, EpisodeChange, RiskEpisodes
from stream.core.features.risk import RiskFeatureBuilder, RiskVector, ServiceBatch
from stream.core.pipeline import (
    BatchOutcome,
    Clock,
    EvidenceOf,
    alert_id_for,
    config_id_of,
    utc_now,
)
from stream.schemas import (
    Alert,
    AlertModelInfo,
    Explanation,
    Feedback,
    IncidentEvent,
    MetricSample,
    TopFeature,
)

if TYPE_CHECKING:
    from stream.settings import Settings

__all__ = [
    "FeedbackKind",
    "IncidentRiskPipeline",
    "RiskOutcome",
    "build_risk_pipeline",
    "group_function",
    "risk_pipeline",
]

FeedbackKind = str
"""What a feedback message was about: ``incident_risk``, ``anomaly`` or ``unknown``."""

_REMEMBERED_ALERTS = 20_000
_MIN_BASELINE_S = 1800.0  # trailing z-scores wait for half an hour of history
_REMEMBERED_GROUPS = 100_000  # service -> group memo, cleared past this many services
_DEPLOY_RECENT = operator.attrgetter("deploy_recent")
_EXPIRY_EVERY_S = 300.0
"""Within a batch, horizons are let pass every 5 minutes of event time (not at every vector:
each pass takes a service's due vectors out of its buffer at once)."""


def group_function(pattern: str | None) -> Callable[[str], str]:
    """The service → group mapping: the first capture group of ``pattern`` (or its whole
    match), ``"all"`` without a pattern, ``"other"`` when the pattern does not match.

    Examples:
        >>> group_function(r"([a-z]+)-")("payments-eu"), group_function(None)("payments-eu")
        ('payments', 'all')
        >>> group_function(r"([a-z]+)-")("API")
        'other'
    """
    if pattern is None:
        return lambda service: "all"
    compiled = re.compile(pattern)

    def group_of(service: str) -> str:
        match = compiled.match(service)
        if match is None:
            return "other"
        return match.group(1) if compiled.groups else match.group(0)

    return group_of


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


class _Group:
    """One service group: its risk model, in-progress model, threshold and prequential
    tracker."""

    __slots__ = ("budget", "in_progress", "model", "threshold", "tracker")

    def __init__(self, name: str, config: RiskConfig, step_s: float) -> None:
        self.model = IncidentRiskModel(name, config)
        self.in_progress = IncidentRiskModel(f"{name}:in_progress", config)
        """Is an incident of the service already under way (its label not yet arrived)?
        Learned from the vectors inside known incidents against every labelled vector."""
        self.threshold = RiskThreshold(config)
        self.budget = EpisodeBudget(config, step_s)
        """The ``episode_budget`` strategy's search (fed only under that strategy)."""
        self.tracker = PrequentialTracker(config)

    def reconfigure(self, config: RiskConfig) -> None:
        """Take ``config``'s decisions (it shapes state as this group's did)."""
        self.model.config = self.in_progress.config = self.tracker.config = config
        self.budget.config = config
        self.threshold.reconfigure(config)

    def under_way(
        self, names: tuple[str, ...], rows: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.bool_]:
        """Whether the in-progress model holds these vectors back (all False until it has
        learned from ``min_positives`` vectors inside incidents, or with the gate off)."""
        config = self.model.config
        if not config.in_progress_gate or self.in_progress.positives < config.min_positives:
            return np.zeros(len(rows), dtype=bool)
        held: npt.NDArray[np.bool_] = self.in_progress.predict_rows(names, rows) >= 0.5
        return held

    def score_rows(
        self, names: tuple[str, ...], rows: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The episode budget's scorer: the current models' view of recorded vectors."""
        return self.model.predict_rows(names, rows), self.under_way(names, rows)


class IncidentRiskPipeline:
    """Risk vectors, predictions, alerts and labels for every service of a detector.

    Args:
        config: The incident-risk configuration (horizon, strategy, ...).
        step_s: One risk vector per service per this much event time.
        trend_s: How far back trend features compare with (event seconds).
        smooth_s: ``sz:`` features average the z-scores of this much event time (0: none).
        baseline_s: How much history the trailing baseline holds (event seconds).
        group_pattern: Services are grouped by this regex (see :func:`group_function`); one
            model per group.
        clock: The time stamped on alerts as ``detected_at``.
        champion_of: The sidecar's champion of a group, when alerts follow it (attribute
            of the same name).
        on_labelled: Told of every labelled vector as it is learned (attribute of the same
            name).
    """

    model_name = "incident-risk"
    batch_model_name = "incident-risk-batch"

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
    ) -> None:
        self.config = config
        self.step_s = step_s
        self._group_function = group_function(group_pattern)
        self._group_names: dict[str, str] = {}
        self._group_pattern = group_pattern
        self._clock = clock
        baseline_steps = max(2, round(baseline_s / step_s))
        self.features = RiskFeatureBuilder(
            step_s=step_s,
            trend_steps=max(1, round(trend_s / step_s)),
            smooth_steps=round(smooth_s / step_s),
            baseline_steps=baseline_steps,
            min_baseline_steps=min(baseline_steps, max(1, round(_MIN_BASELINE_S / step_s))),
        )
        self.labeler = HorizonLabeler(config, keep_during=config.in_progress_gate)
        self._groups: dict[str, _Group] = {}
        self.episodes = RiskEpisodes(
            open_steps=config.open_steps, resolve_steps=config.resolve_steps
        )
        self._alert_kinds: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.latest_event_s = -math.inf
        self.vectors_total = 0
        self._next_expiry_s = -math.inf
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
        # Whole-batch arrays once; the builder takes every service's rows at once.
        usable = ~outcome.warming_up & np.isfinite(outcome.thresholds)
        ratios = np.zeros(len(events))
        np.divide(outcome.scores, np.maximum(outcome.thresholds, 1e-12), out=ratios, where=usable)
        deploys = np.fromiter(map(_DEPLOY_RECENT, events), np.bool_, len(events))
        batch = [
            ServiceBatch(rows.service, rows.indices, rows.ts_s, rows.verdict.deviations)
            for rows in outcome.by_service
        ]
        vectors = self.features.add_batch(batch, ratios, outcome.flagged, deploys, evidence)
        for rows in outcome.by_service:
            if len(rows.ts_s):
                self.latest_event_s = max(self.latest_event_s, float(max(rows.ts_s)))
        if vectors:
            self._predict(vectors, out)
        return out

    def on_log_window(self, service: str, ratio: float, new_error_templates: int) -> None:
        """A closed log window of ``service``: its features join the service's next vectors."""
        self.features.set_log_window(service, ratio, new_error_templates)

    def _group_of(self, service: str) -> str:
        """The service's group (the pattern is matched once per service)."""
        name = self._group_names.get(service)
        if name is None:
            name = self._group_names[service] = self._group_function(service)
            if len(self._group_names) > _REMEMBERED_GROUPS:
                self._group_names.clear()
        return name

    def _predict(self, vectors: list[RiskVector], out: RiskOutcome) -> None:
        # In event-time order, horizons that passed before each vector are settled first: a
        # batch may span more steps than a service's buffer holds (a replay, a backlog).
        predicted = sorted(self._predict_groups(vectors, out), key=_ts_of_predicted)
        for item in predicted:
            if not self.hold_labels and item[0].ts_s >= self._next_expiry_s:
                self._next_expiry_s = item[0].ts_s + _EXPIRY_EVERY_S
                expired = self.labeler.expire(item[0].ts_s)
                if expired:
                    self._learn(expired)
            self._decide(item, out)
        out.vectors += len(vectors)
        self.vectors_total += len(vectors)

    def _predict_groups(self, vectors: list[RiskVector], out: RiskOutcome) -> list[_Predicted]:
        """Each group's vectors predicted as one matrix, with what decides their alerts."""
        by_group: dict[str, list[RiskVector]] = {}
        for vector in vectors:
            by_group.setdefault(self._group_of(vector.service), []).append(vector)
        predicted: list[_Predicted] = []
        gate = self.config.in_progress_gate
        min_positives = self.config.min_positives
        for name, members in by_group.items():
            group = self._group(name)
            features = [v.features for v in members]
            probabilities = group.model.predict_many(features)
            out.probabilities.append(probabilities)
            # The alert budget is shared among vectors that could alert: not those of a
            # service whose incident is known to be open (they score high, and never alert),
            # nor those predicted before the model was ready (it then knows nothing of risk).
            alertable = [not self.labeler.in_incident(v.service, v.ts_s) for v in members]
            if group.model.positives >= min_positives:
                group.threshold.observe(probabilities[np.array(alertable, dtype=bool)])
            # An incident probably under way (its label not read yet) holds new episodes back.
            under_way = (
                (group.in_progress.predict_many(features) >= 0.5).tolist()
                if gate and group.in_progress.positives >= min_positives
                else itertools.repeat(False, len(members))
            )
            champion = self.champion_of(name) if self.champion_of is not None else None
            alert_ps = (
                probabilities
                if champion is None
                else champion.predict_mappings([v.features for v in members])
            )
            predicted += zip(
                members,
                probabilities.tolist(),
                itertools.repeat(group),
                itertools.repeat(name),
                alertable,
                under_way,
                itertools.repeat(champion),
                alert_ps.tolist(),
            )
        return predicted

    def _decide(self, item: _Predicted, out: RiskOutcome) -> None:
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
        key = (
            alert_id_for(
                "incident_risk", "metrics", service, _dt(vector.ts_s), vector.features.to_dict()
            )
            if firing
            else ""
        )
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
            alert = self._alert(name, group, vector, p, threshold, key, change)
        else:
            alert = self._champion_alert(name, champion, vector, alert_p, key, change)
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
            self._group(self._group_of(event.service)).tracker.incident(
                event.service, event.incident_id, ts_s
            )
        else:
            labelled = self.labeler.resolved(event.service, event.incident_id, ts_s)
        self._learn(labelled)

    def on_feedback(self, feedback: Feedback) -> FeedbackKind:
        """An operator's verdict: a label for an incident-risk alert's vector, if still held.
        Returns what kind of alert the feedback was about."""
        kind = self._alert_kinds.get(feedback.alert_id, "unknown")
        if kind == "incident_risk":
            item = self.labeler.feedback(
                feedback.alert_id, feedback.verdict == "true_positive", feedback.service
            )
            if item is not None:
                self._learn([item])
        return kind

    def remember_alerts(self, alerts: Iterable[Alert]) -> None:
        """Alerts published (any kind), so later feedback on them can be told apart."""
        kinds = self._alert_kinds
        for alert in alerts:
            kinds[alert.alert_id] = alert.kind
            if len(kinds) > _REMEMBERED_ALERTS:
                kinds.popitem(last=False)

    def advance(self, now_s: float | None = None) -> None:
        """Event time reached ``now_s`` (default: the latest metric event): vectors whose
        horizon and grace passed without an incident become negatives, and are learned."""
        now = self.latest_event_s if now_s is None else now_s
        if math.isfinite(now) and not self.hold_labels:
            self._learn(self.labeler.expire(now))

    def _learn(self, items: Sequence[LabelledVector]) -> None:
        """Learn labelled vectors, group by group, and score their predictions; the vectors
        found inside known incidents meanwhile teach the in-progress models."""
        by_group: dict[str, list[LabelledVector]] = {}
        for item in items:
            by_group.setdefault(self._group_of(item.service), []).append(item)
        during: dict[str, list[LabelledVector]] = {}
        for item in self.labeler.take_during():
            during.setdefault(self._group_of(item.service), []).append(item)
        for name, inside in during.items():
            self._group(name).in_progress.learn_many(
                [item.vector for item in inside], [True] * len(inside)
            )
        gate = self.config.in_progress_gate
        for name, members in by_group.items():
            group = self._group(name)
            labels = [item.label for item in members]
            vectors = [item.vector for item in members]
            group.model.learn_many(vectors, labels)
            # Risk labels are all "not inside an incident"; learned once the in-progress model
            # has seen an incident (before, it would learn one class and predict nothing).
            if gate and group.in_progress.positives:
                group.in_progress.learn_many(vectors, [False] * len(vectors))
            group.threshold.labelled_many(
                [item.probability for item in members],
                labels,
                [item.incident_id for item in members],
            )
            for item in members:
                group.tracker.labelled(item)
                if self.on_labelled is not None:
                    self.on_labelled(name, item)

    # -- state of a partition's services (snapshots, rebalances) ---------------------------

    @property
    def config_id(self) -> str:
        """A short id of everything that shapes the learned state (a snapshot taken under
        another is not loaded)."""
        return config_id_of(self.config) + f"-{self.step_s:g}-{self._group_pattern or ''}"

    @property
    def state_id(self) -> str:
        """A short id of what shapes the learned state: decisions (threshold, strategy,
        budgets, episode steps) are left out and apply to restored state at once."""
        return risk_state_id(self.config) + f"-{self.step_s:g}-{self._group_pattern or ''}"

    def export(self, services: Iterable[str]) -> dict[str, Any]:
        """These services' state, for a snapshot: feature history and open step, label
        buffer, episode; plus the group models (shared by every service of a group, so
        each partition's snapshot carries them). Live objects: pickle them, do not keep."""
        services = list(services)
        return {
            "features": self.features.export(services),
            "buffers": self.labeler.export(services),
            "episodes": self.episodes.export(services),
            "groups": dict(self._groups),
            "latest_event_s": self.latest_event_s,
            "next_expiry_s": self._next_expiry_s,
        }

    def install(self, state: Mapping[str, Any]) -> None:
        """Take over services' state from :meth:`export`. A group model is taken only if this
        detector has none for the group or one that learned less (after a restart, the
        snapshot's; after a rebalance, whichever learned more). Incidents this detector read
        after the snapshot was taken label the restored vectors they settle (learned once the
        group models are in place)."""
        self.features.install(state["features"])
        settled = self.labeler.install(state["buffers"])
        self.episodes.install(state["episodes"])
        # Event time only moves on: a restore must not make horizons pass early or late.
        self.latest_event_s = max(self.latest_event_s, state["latest_event_s"])
        self._next_expiry_s = max(self._next_expiry_s, state["next_expiry_s"])
        for name, group in state["groups"].items():
            mine = self._groups.get(name)
            if mine is None or mine.model.updates < group.model.updates:
                group.reconfigure(self.config)
                self._groups[name] = group
        self._learn(settled)

    def forget(self, services: Iterable[str]) -> None:
        """Drop services' state (their partition went to another detector)."""
        services = list(services)
        for service in services:
            self.features.forget(service)
        self.episodes.forget(services)
        self.labeler.forget(services)

    # -- alerts and views -------------------------------------------------------------------

    def _group(self, name: str) -> _Group:
        group = self._groups.get(name)
        if group is None:
            group = self._groups[name] = _Group(name, self.config, self.step_s)
        return group

    def _alert(
        self,
        name: str,
        group: _Group,
        vector: RiskVector,
        p: float,
        threshold: float,
        key: str,
        change: EpisodeChange,
    ) -> Alert:
        contributions = [
            (c.name, c.value, c.baseline, c.contribution)
            for c in group.model.explain(vector.features, k=5)
        ]
        model = AlertModelInfo(name=self.model_name, version=f"{name}-{group.model.version}")
        return self._risk_alert(
            vector, p, threshold, group.threshold.strategy, model, contributions, key, change
        )

    def _champion_alert(
        self,
        name: str,
        champion: RiskArtifact,
        vector: RiskVector,
        p: float,
        key: str,
        change: EpisodeChange,
    ) -> Alert:
        contributions = [
            (feature, value, mean, contribution)
            for feature, value, _, contribution, mean in champion.contributions(
                vector.features, k=5
            )
        ]
        model = AlertModelInfo(name=self.batch_model_name, version=f"{name}-{champion.version}")
        return self._risk_alert(
            vector, p, champion.threshold, champion.strategy, model, contributions, key, change
        )

    def _risk_alert(
        self,
        vector: RiskVector,
        p: float,
        threshold: float,
        strategy: str,
        model: AlertModelInfo,
        contributions: list[tuple[str, float, float, float]],
        key: str,
        change: EpisodeChange,
    ) -> Alert:
        """An incident-risk alert that opens (``key``: its id) or resolves an episode;
        ``contributions``: (feature, value, baseline, contribution)."""
        critical_at = threshold + (1.0 - threshold) / 2
        firing = change.status == "firing"
        alert = Alert(
            alert_id=key if firing else _resolved_id(change.episode_id),
            kind="incident_risk",
            source="metrics",
            service=vector.service,
            event_ts=_dt(vector.ts_s),
            detected_at=self._clock(),
            score=round(p, 6),
            threshold=round(threshold, 6),
            severity="critical" if firing and p >= critical_at else "warning",
            model=model,
            explanation=Explanation(
                top_features=[
                    TopFeature(
                        name=feature,
                        value=round(value, 6),
                        baseline=round(baseline, 6),
                        contribution=round(contribution, 6),
                    )
                    for feature, value, baseline, contribution in contributions
                ]
            ),
            evidence=vector.evidence,
            threshold_strategy=strategy,
            horizon_s=self.config.horizon_s,
            status=change.status,
            episode_id=change.episode_id,
            started_at=_dt(change.started_s),
        )
        self.remember_alerts([alert])
        return alert

    def thresholds(self) -> dict[str, tuple[float, str]]:
        """Each group's threshold in force and the strategy that set it."""
        return {
            name: (group.threshold.value, group.threshold.strategy)
            for name, group in sorted(self._groups.items())
        }

    def summaries(self) -> dict[str, dict[str, Any]]:
        """Prequential quality per group (see :class:`~models.incident.PrequentialTracker`),
        over the incidents of the services this detector holds."""
        return {
            name: group.tracker.summary(group.threshold.value, self.features)
            for name, group in sorted(self._groups.items())
        }

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` shows for incident risk."""
        return {
            "name": self.model_name,
            "config": asdict(self.config),
            "step_s": self.step_s,
            "group_pattern": self._group_pattern,
            "vectors": self.vectors_total,
            "labels": dict(self.labeler.counts),
            "buffered_vectors": len(self.labeler),
            "episodes_open": len(self.episodes),
            "buffer_bytes": self.labeler.nbytes(),
            "groups": {
                name: {
                    "version": group.model.version,
                    "threshold": _finite_or_none(group.threshold.value),
                    "strategy": group.threshold.strategy,
                    "positives": group.model.positives,
                    "negatives": group.model.negatives,
                    "prequential": group.tracker.summary(group.threshold.value, self.features),
                }
                for name, group in sorted(self._groups.items())
            },
        }


def risk_pipeline(
    settings: Settings,
    clock: Clock = utc_now,
    *,
    champion_of: Callable[[str], RiskArtifact | None] | None = None,
    on_labelled: Callable[[str, LabelledVector], None] | None = None,
) -> IncidentRiskPipeline | None:
    """The incident-risk pipeline the settings ask for (None when it is switched off); see
    :class:`IncidentRiskPipeline` for ``champion_of`` and ``on_labelled``."""
    if not settings.incident_risk:
        return None
    return build_risk_pipeline(settings, clock, champion_of=champion_of, on_labelled=on_labelled)


def build_risk_pipeline(
    settings: Settings,
    clock: Clock = utc_now,
    *,
    champion_of: Callable[[str], RiskArtifact | None] | None = None,
    on_labelled: Callable[[str, LabelledVector], None] | None = None,
) -> IncidentRiskPipeline:
    """The incident-risk pipeline configured by ``settings``, whether or not it is on."""
    return IncidentRiskPipeline(
        settings.risk_config(),
        step_s=settings.incident_step_s,
        group_pattern=settings.incident_group_pattern,
        clock=clock,
        champion_of=champion_of,
        on_labelled=on_labelled,
    )


_Predicted = tuple[RiskVector, float, _Group, str, bool, bool, RiskArtifact | None, float]
"""A vector, its online probability, group and group name, whether it may alert (no incident
of its service known to be open), whether an incident is probably under way (held back),
the group's champion (when alerts follow one) and the probability that decides its alert."""


def _ts_of_predicted(item: _Predicted) -> float:
    return item[0].ts_s


def _resolved_id(episode_id: str) -> str:
    """The stable id of an episode's resolved alert."""
    return hashlib.sha256(f"{episode_id}|resolved".encode()).hexdigest()[:32]


def _dt(ts_s: float) -> datetime:
    return datetime.fromtimestamp(ts_s, UTC)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
