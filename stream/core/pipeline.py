"""The pure core shared by the live detector and ``vigil replay``: event -> model -> Alert.

No I/O here: the caller brings decoded events, where they came from, and a clock.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from models.anomaly import (
    AnomalyConfig,
    BatchVerdict,
    ServiceAnomalyModel,
    Verdict,
    episodes_per_service_day,
    observe_together,
    state_id,
)
from stream.core.features.metrics import metric_features
from stream.schemas import (
    Alert,
    AlertModelInfo,
    Evidence,
    Explanation,
    MetricSample,
    TopFeature,
)

__all__ = [
    "BatchOutcome",
    "MetricPipeline",
    "Outcome",
    "ServiceRows",
    "alert_id_for",
    "config_id_of",
    "episode_fields",
    "episode_id_for",
    "model_version_string",
    "top_features",
]

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime."""

EvidenceOf = Callable[[int], Evidence]
"""Where the event at a batch index is stored; asked only for events that alert."""


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


def episode_id_for(kind: str, source: str, service: str, started_at: datetime) -> str:
    """A stable episode id: its firing and resolved alerts carry the same one.

    Examples:
        >>> ts = datetime(2026, 11, 23, tzinfo=UTC)
        >>> episode_id_for("anomaly", "metrics", "api", ts)
        'ep-...'
    """
    payload = orjson.dumps(["episode", kind, source, service, started_at.isoformat()])
    return "ep-" + hashlib.sha256(payload).hexdigest()[:24]


def episode_fields(
    kind: str, source: str, service: str, started_s: float | None, resolved: bool
) -> dict[str, Any]:
    """The episode fields of an alert that opens (or resolves) the episode started at
    ``started_s``."""
    assert started_s is not None, "an alert opens or resolves an episode"
    started_at = datetime.fromtimestamp(started_s, UTC)
    return {
        "status": "resolved" if resolved else "firing",
        "episode_id": episode_id_for(kind, source, service, started_at),
        "started_at": started_at,
    }


def config_id_of(config: Any) -> str:
    """A short stable id of a (dataclass) configuration, carried in model versions."""
    return hashlib.sha256(orjson.dumps(asdict(config))).hexdigest()[:8]


def model_version_string(engine: str, config_id: str, generation: str) -> str:
    """The version string alerts carry: engine, configuration and model generation.

    Examples:
        >>> model_version_string("numpy", "0a1b2c3d", "2")
        'numpy-0a1b2c3d-g2'
    """
    return f"{engine}-{config_id}-g{generation}"


def top_features(verdict: Verdict) -> list[TopFeature]:
    """A verdict's contributing features as the alert explanation lists them."""
    return [
        TopFeature(
            name=c.name, value=c.value, baseline=round(c.baseline, 6), contribution=c.contribution
        )
        for c in verdict.top_features
    ]


@dataclass
class BatchOutcome:
    """What happened to a batch of events, in batch order."""

    scores: npt.NDArray[np.float64]
    thresholds: npt.NDArray[np.float64]
    warming_up: npt.NDArray[np.bool_]
    flagged: npt.NDArray[np.bool_]
    """Anomalous after warm-up (opened an episode, or belongs to an open one)."""
    suppressed: npt.NDArray[np.bool_]
    alerts: list[tuple[int, Alert]]
    """Each alert (firing or resolved) with the index of its event in the batch."""
    missing_features: int = 0
    grown: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    """(service, new feature names) for each model that started learning a grown set."""
    verdicts: dict[int, Verdict] = field(default_factory=dict)
    """Full verdicts, for the indices asked for (``process`` asks for its one event)."""
    by_service: list[ServiceRows] = field(default_factory=list)
    """Each service's rows: their batch indices and its model's verdicts (incident risk reads
    the deviations there)."""


@dataclass(frozen=True, slots=True)
class ServiceRows:
    """One service's events in a batch: their indices, in order, and the model's verdicts."""

    service: str
    indices: npt.NDArray[np.intp]
    ts_s: list[float]
    """The events' event times, in seconds."""
    verdict: BatchVerdict


class MetricPipeline:
    """Per-service anomaly models over metric events.

    Args:
        config: The anomaly model configuration shared by every service.
        clock: The time stamped on alerts as ``detected_at``.
    """

    model_name = "hst-metrics"

    def __init__(self, config: AnomalyConfig, clock: Clock = utc_now) -> None:
        self.config = config
        self.engine = config.engine
        self._clock = clock
        self._models: dict[str, ServiceAnomalyModel] = {}
        self.config_id = config_id_of(config)
        self.state_id = state_id(config)
        """What snapshots are checked against: only parameters that shape learned state."""

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[ServiceAnomalyModel]:
        return iter(self._models.values())

    def process(self, event: MetricSample, evidence: Evidence, *, learn: bool = True) -> Outcome:
        """Score one event (and learn from it unless ``learn`` is false)."""
        batch = self.process_batch([event], lambda _: evidence, learn=learn, verdicts=True)
        alert = batch.alerts[0][1] if batch.alerts else None
        return Outcome(service=event.service, verdict=batch.verdicts[0], alert=alert)

    def process_batch(
        self,
        events: Sequence[MetricSample],
        evidence: EvidenceOf,
        *,
        learn: bool = True,
        verdicts: bool = False,
    ) -> BatchOutcome:
        """Score a batch (learning from it unless ``learn`` is false), service by service.

        Each service's events keep their batch order, so the result is the same as processing
        the events one at a time, whatever the batch boundaries.
        """
        n = len(events)
        out = BatchOutcome(
            scores=np.zeros(n),
            thresholds=np.full(n, np.inf),
            warming_up=np.ones(n, dtype=bool),
            flagged=np.zeros(n, dtype=bool),
            suppressed=np.zeros(n, dtype=bool),
            alerts=[],
        )
        by_service: dict[str, list[int]] = {}
        group = by_service.get
        for i, event in enumerate(events):
            indices = group(event.service)
            if indices is None:
                by_service[event.service] = [i]
            else:
                indices.append(i)
        calls = []
        ts_of: dict[str, list[float]] = {}
        for service, indices in by_service.items():
            model = self._models.get(service)
            if model is None:
                model = ServiceAnomalyModel(service, self.config)
                if learn:
                    self._models[service] = model
            rows = [events[i].metrics for i in indices]
            ts_of[service] = [events[i].ts.timestamp() for i in indices]
            calls.append((model, rows, ts_of[service]))
        # All services at once: their trees' walks are shared (same verdicts as one by one).
        results = observe_together(calls, learn=learn)
        rows_of = [np.asarray(indices) for indices in by_service.values()]
        if rows_of:  # every service's rows at once (each event is one service's)
            order = np.concatenate(rows_of)
            for column, array in (
                ("scores", out.scores), ("thresholds", out.thresholds),
                ("warming_up", out.warming_up), ("exceeded", out.flagged),
                ("suppressed", out.suppressed),
            ):  # fmt: skip
                array[order] = np.concatenate([getattr(result, column) for result in results])
        grouped = zip(by_service.items(), rows_of, results, strict=True)
        for (service, indices), idx, result in grouped:
            out.by_service.append(ServiceRows(service, idx, ts_of[service], result))
            out.missing_features += sum(map(len, result.missing))
            if np.count_nonzero(result.candidate_started):
                for row in np.flatnonzero(result.candidate_started).tolist():
                    out.grown.append((service, result.new_features[row]))
            if np.count_nonzero(result.alerts) or np.count_nonzero(result.resolved):
                for row in np.flatnonzero(result.alerts | result.resolved).tolist():
                    i = indices[row]
                    alert = self._alert(events[i], result.verdict(row), evidence(i))
                    out.alerts.append((i, alert))
            if verdicts:
                for row, i in enumerate(indices):
                    out.verdicts[i] = result.verdict(row)
        out.alerts.sort(key=lambda pair: pair[0])
        return out

    def model_version(self, generation: str) -> str:
        """The version string alerts carry: engine, configuration and generation."""
        return model_version_string(self.engine, self.config_id, generation)

    def models_of(self, services: Iterable[str]) -> dict[str, ServiceAnomalyModel]:
        """The models of those services this pipeline holds (live objects: pickle them, do
        not keep them)."""
        models = self._models
        return {s: models[s] for s in services if s in models}

    def install(self, models: Mapping[str, ServiceAnomalyModel]) -> None:
        """Take over models restored from a snapshot (replacing any held for the same
        services); this pipeline's decisions (budgets, directions, ...) apply to them at
        once."""
        for model in models.values():
            model.reconfigure(self.config)
        self._models.update(models)

    def forget(self, services: Iterable[str]) -> None:
        """Drop services' models (their partition went to another detector)."""
        for service in services:
            self._models.pop(service, None)

    def episodes_per_service_day(self) -> float:
        """Anomaly episodes opened per service-day of event time (NaN before any span)."""
        return episodes_per_service_day(self._models.values())

    def nbytes(self) -> int:
        """Bytes of array state held by all models."""
        return sum(m.nbytes() for m in self._models.values())

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
                    "cadence_s": m.cadence_s,
                    "budget_per_day": m.budget_per_day,
                    "episodes_opened": m.episodes_opened,
                    "episodes_per_day": _finite_or_none(m.episodes_per_day()),
                    "episode_open": m.episode_open,
                }
                for m in self._models.values()
            },
        }

    def _alert(self, event: MetricSample, verdict: Verdict, evidence: Evidence) -> Alert:
        """The firing alert of an episode's first sample, or the resolved one of its last."""
        features = metric_features(event)
        kind = "anomaly" if not verdict.resolved else "anomaly-resolved"
        return Alert(
            alert_id=alert_id_for(kind, "metrics", event.service, event.ts, features),
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
                top_features=top_features(verdict),
                missing_features=list(verdict.missing_features),
                z_scores=verdict.z_scores,
            ),
            evidence=evidence,
            labels=labels_of(event),
            **episode_fields(
                "anomaly", "metrics", event.service, verdict.started_s, verdict.resolved
            ),
        )


def labels_of(event: MetricSample) -> dict[str, str]:
    """The event's labels an alert carries: ``region`` and ``host`` where given, and
    ``deploy_recent`` when the event was sent with it (a root-cause suspect's evidence)."""
    labels = {
        name: value for name, value in (("region", event.region), ("host", event.host)) if value
    }
    if event.deploy_recent:
        labels["deploy_recent"] = "true"
    return labels


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
