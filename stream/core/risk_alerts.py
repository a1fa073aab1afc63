"""Incident-risk alerts: the alert that opens a risk episode (its id the opening vector's key)
or resolves it, with the model that decided it (the online model of the service's group, or
the sidecar's champion) and the features that contributed most to its probability. Its labels
are those of the event its evidence points at, the step's last metric event (``region``,
``host``, ``deploy_recent``), as a metric anomaly alert's are its event's."""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from models.batch import RiskArtifact
from models.incident import IncidentRiskModel
from models.incident.episodes import EpisodeChange
from stream.core.features.risk_vectors import RiskVector
from stream.core.pipeline import Clock, alert_id_for
from stream.schemas import Alert, AlertModelInfo, Explanation, TopFeature

__all__ = [
    "BATCH_MODEL_NAME",
    "MODEL_NAME",
    "AlertKinds",
    "RiskAlerts",
    "alert_key",
    "event_datetime",
]

MODEL_NAME = "incident-risk"
"""The online model's alerts."""
BATCH_MODEL_NAME = "incident-risk-batch"
"""The sidecar's champion's alerts."""


class RiskAlerts:
    """Builds incident-risk alerts.

    Args:
        clock: The time stamped on alerts as ``detected_at``.
        horizon_s: The horizon the alerts predict an incident within.
    """

    def __init__(self, clock: Clock, horizon_s: float) -> None:
        self._clock = clock
        self.horizon_s = horizon_s

    def online(
        self,
        name: str,
        model: IncidentRiskModel,
        strategy: str,
        vector: RiskVector,
        p: float,
        threshold: float,
        key: str,
        change: EpisodeChange,
    ) -> Alert:
        """The alert of group ``name``'s online ``model`` (its threshold set by ``strategy``)."""
        contributions = [
            (c.name, c.value, c.baseline, c.contribution)
            for c in model.explain(vector.features, k=5)
        ]
        info = AlertModelInfo(name=MODEL_NAME, version=f"{name}-{model.version}")
        return self._alert(vector, p, threshold, strategy, info, contributions, key, change)

    def champion(
        self,
        name: str,
        champion: RiskArtifact,
        vector: RiskVector,
        p: float,
        key: str,
        change: EpisodeChange,
    ) -> Alert:
        """The alert of group ``name``'s champion (its own threshold and strategy)."""
        contributions = [
            (feature, value, mean, contribution)
            for feature, value, _, contribution, mean in champion.contributions(
                vector.features, k=5
            )
        ]
        info = AlertModelInfo(name=BATCH_MODEL_NAME, version=f"{name}-{champion.version}")
        return self._alert(
            vector, p, champion.threshold, champion.strategy, info, contributions, key, change
        )

    def _alert(
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
        return Alert(
            alert_id=key if firing else _resolved_id(change.episode_id),
            kind="incident_risk",
            source="metrics",
            service=vector.service,
            event_ts=event_datetime(vector.ts_s),
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
            labels=vector.labels,
            threshold_strategy=strategy,
            horizon_s=self.horizon_s,
            status=change.status,
            episode_id=change.episode_id,
            started_at=event_datetime(change.started_s),
        )


def event_datetime(ts_s: float) -> datetime:
    """Epoch seconds of event time as a UTC datetime."""
    return datetime.fromtimestamp(ts_s, UTC)


def _resolved_id(episode_id: str) -> str:
    """The stable id of an episode's resolved alert."""
    return hashlib.sha256(f"{episode_id}|resolved".encode()).hexdigest()[:32]


class AlertKinds:
    """The kinds of the last ``capacity`` alerts published (any kind), so that feedback on
    one can be told apart: only a risk alert's feedback labels a vector.

    Examples:
        >>> kinds = AlertKinds(capacity=1)
        >>> kinds.remember([Alert.model_construct(alert_id="a", kind="anomaly")])
        >>> kinds.kind_of("a"), kinds.kind_of("b")
        ('anomaly', 'unknown')
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._kinds: collections.OrderedDict[str, str] = collections.OrderedDict()

    def remember(self, alerts: Iterable[Alert]) -> None:
        """Alerts published, the oldest forgotten past the capacity."""
        kinds = self._kinds
        for alert in alerts:
            kinds[alert.alert_id] = alert.kind
            if len(kinds) > self.capacity:
                kinds.popitem(last=False)

    def kind_of(self, alert_id: str) -> str:
        """``incident_risk``, ``anomaly``, or ``unknown`` (never seen, or forgotten)."""
        return self._kinds.get(alert_id, "unknown")


def alert_key(vector: RiskVector) -> str:
    """The id of the risk alert an episode opening on ``vector`` raises: feedback on the
    alert finds the vector by it."""
    features = vector.features.to_dict()
    return alert_id_for(
        "incident_risk", "metrics", vector.service, event_datetime(vector.ts_s), features
    )
