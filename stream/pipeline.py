"""The pure core shared by the live detector and ``vigil replay``: event -> model -> Alert.

No I/O here: the caller brings decoded events, where they came from, and a clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from models.anomaly import AnomalyConfig, ServiceAnomalyModel, Verdict
from stream.features.metrics import metric_features
from stream.schemas import (
    Alert,
    AlertModelInfo,
    Evidence,
    Explanation,
    MetricEvent,
    TopFeature,
)

__all__ = ["MetricPipeline", "Outcome", "alert_id_for"]

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime."""


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one event: the model's verdict and the alert it raised, if any."""

    service: str
    verdict: Verdict
    alert: Alert | None


def alert_id_for(
    kind: str, source: str, service: str, event_ts: datetime, features: dict[str, float]
) -> str:
    """A stable alert id: the same input gives the same id, so consumers can de-duplicate.

    Examples:
        >>> ts = datetime(2026, 11, 23, tzinfo=UTC)
        >>> alert_id_for("anomaly", "metrics", "api", ts, {"cpu": 1.0}) == alert_id_for(
        ...     "anomaly", "metrics", "api", ts, {"cpu": 1.0})
        True
    """
    payload = orjson.dumps([kind, source, service, event_ts.isoformat(), sorted(features.items())])
    return hashlib.sha256(payload).hexdigest()[:32]


class MetricPipeline:
    """Per-service anomaly models over metric events.

    Args:
        config: The anomaly model configuration shared by every service.
        clock: The time stamped on alerts as ``detected_at``.
    """

    model_name = "hst-metrics"
    engine = "river"

    def __init__(self, config: AnomalyConfig, clock: Clock = utc_now) -> None:
        self.config = config
        self._clock = clock
        self._models: dict[str, ServiceAnomalyModel] = {}
        self.config_id = hashlib.sha256(orjson.dumps(asdict(config))).hexdigest()[:8]

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[ServiceAnomalyModel]:
        return iter(self._models.values())

    def process(self, event: MetricEvent, evidence: Evidence, *, learn: bool = True) -> Outcome:
        """Score one event (and learn from it unless ``learn`` is false)."""
        model = self._models.get(event.service)
        if model is None:
            model = ServiceAnomalyModel(event.service, self.config)
            if learn:
                self._models[event.service] = model
        features = metric_features(event)
        verdict = model.observe(features, event.ts.timestamp(), learn=learn)
        alert = self._alert(event, features, verdict, evidence) if verdict.alert else None
        return Outcome(service=event.service, verdict=verdict, alert=alert)

    def model_version(self, generation: str) -> str:
        """The version string alerts carry: engine, configuration and generation."""
        return f"{self.engine}-{self.config_id}-g{generation}"

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` shows for this pipeline."""
        return {
            "name": self.model_name,
            "engine": self.engine,
            "config_id": self.config_id,
            "config": asdict(self.config),
            "services": {
                m.service: {
                    "version": self.model_version(m.version),
                    "features": list(m.feature_names),
                    "events_seen": m.events_seen,
                    "threshold": m.threshold,
                }
                for m in self._models.values()
            },
        }

    def _alert(
        self, event: MetricEvent, features: dict[str, float], verdict: Verdict, evidence: Evidence
    ) -> Alert:
        return Alert(
            alert_id=alert_id_for("anomaly", "metrics", event.service, event.ts, features),
            kind="anomaly",
            source="metrics",
            service=event.service,
            event_ts=event.ts,
            detected_at=self._clock(),
            score=round(verdict.score, 6),
            threshold=round(verdict.threshold, 6),
            severity="critical" if verdict.severity == "critical" else "warning",
            model=AlertModelInfo(
                name=self.model_name, version=self.model_version(verdict.model_version)
            ),
            explanation=Explanation(
                top_features=[
                    TopFeature(
                        name=c.name,
                        value=c.value,
                        baseline=round(c.baseline, 6),
                        contribution=c.contribution,
                    )
                    for c in verdict.top_features
                ],
                missing_features=list(verdict.missing_features),
            ),
            evidence=evidence,
        )
